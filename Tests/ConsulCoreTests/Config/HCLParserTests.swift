import Testing
@testable import ConsulCore

@Suite struct HCLParserTests {
    private func parse(_ text: String) throws -> ConfigValue {
        try HCLParser.parse(text, file: "test.hcl")
    }

    @Test func readsAgentConfig() throws {
        let config = try parse("""
            # agent config
            datacenter = "dc1"
            data_dir = "/opt/consul"
            server = true
            bootstrap_expect = 3
            retry_join = ["127.0.0.2", "127.0.0.3",]
            ports {
              http = 8500
              dns = -1
            }
            tls {
              defaults {
                ca_file = "/etc/consul/ca.pem"
                verify_incoming = true
              }
              internal_rpc {
                verify_server_hostname = true
              }
            }
            node_meta = { rack = "r1", "zone" = "z-2" }
            """)
        #expect(config.objectValue?.keys == ["datacenter", "data_dir", "server", "bootstrap_expect", "retry_join", "ports", "tls", "node_meta"])
        #expect(config["server"] == .bool(true))
        #expect(config["bootstrap_expect"] == .integer(3))
        #expect(config["retry_join"] == .array([.string("127.0.0.2"), .string("127.0.0.3")]))
        #expect(config.lookup(["ports", "http"]) == .integer(8500))
        #expect(config.lookup(["ports", "dns"]) == .integer(-1))
        #expect(config.lookup(["tls", "defaults", "verify_incoming"]) == .bool(true))
        #expect(config.lookup(["tls", "internal_rpc", "verify_server_hostname"]) == .bool(true))
        #expect(config.lookup(["node_meta", "zone"]) == .string("z-2"))
        #expect(config.objectValue?.member("ports")?.position == SourcePosition(line: 7, column: 1))
    }

    @Test func readsACLRules() throws {
        let rules = try parse("""
            key_prefix "" { policy = "read" }
            key_prefix "app/" {
              policy = "write"
            }
            service "web" { policy = "write" }
            service "db" { policy = "read" }
            node_prefix "" {
              policy = "read"
            }
            operator = "read"
            """)
        #expect(rules.objectValue?.keys == ["key_prefix", "service", "node_prefix", "operator"])
        #expect(rules.lookup(["key_prefix", ""]) == .object(ConfigObject(["policy": .string("read")])))
        #expect(rules.lookup(["key_prefix", "app/", "policy"]) == .string("write"))
        #expect(rules["service"]?.objectValue?.keys == ["web", "db"])
        #expect(rules.lookup(["service", "db", "policy"]) == .string("read"))
        #expect(rules.lookup(["node_prefix", "", "policy"]) == .string("read"))
        #expect(rules["operator"] == .string("read"))
    }

    @Test func multipleLabelsNest() throws {
        let config = try parse(#"a "b" "c" { x = 1 }  a "b" "d" { y = 2 }"#)
        #expect(config == .object(ConfigObject([
            "a": .object(ConfigObject(["b": .object(ConfigObject([
                "c": .object(ConfigObject(["x": .integer(1)])),
                "d": .object(ConfigObject(["y": .integer(2)])),
            ]))])),
        ])))
    }

    @Test func repeatedBlocksBecomeLists() throws {
        let config = try parse("""
            services { name = "a" }
            services { name = "b" }
            checks = [{ id = "c1" }]
            checks { id = "c2" }
            key "x" { policy = "read" }
            key "x" { policy = "write" }
            log_level = "INFO"
            log_level = "DEBUG"
            """)
        #expect(config["services"] == .array([
            .object(ConfigObject(["name": .string("a")])), .object(ConfigObject(["name": .string("b")])),
        ]))
        #expect(config["checks"] == .array([
            .object(ConfigObject(["id": .string("c1")])), .object(ConfigObject(["id": .string("c2")])),
        ]))
        #expect(config.lookup(["key", "x"])?.arrayValue?.count == 2)
        #expect(config.lookup(["key", "x", 1, "policy"]) == .string("write"))
        #expect(config["log_level"] == .string("DEBUG"))
        #expect(config.objectValue?.keys == ["services", "checks", "key", "log_level"])
    }

    @Test func readsStringsAndEscapes() throws {
        let config = try parse(#"""
            a = "tab\there \"q\" back\\slash \u00e9 \U0001F600 \x41 \101 \a"
            b = "${node.name}-${ "x" }"
            "quoted key" = "v"
            c = ""
            d = "é日本"
            """#)
        #expect(config["a"] == .string("tab\there \"q\" back\\slash é 😀 A A \u{7}"))
        #expect(config["b"] == .string(#"${node.name}-${ "x" }"#))
        #expect(config["quoted key"] == .string("v"))
        #expect(config["c"] == .string(""))
        #expect(config["d"] == .string("é日本"))
    }

    @Test func readsHeredocs() throws {
        let config = try parse("""
            script = <<EOF
            #!/bin/sh
              echo hi
            EOF
            indented = <<-EOT
                line one
                  line two
                EOT
            ragged = <<-EOT
                a
              b
                EOT
            after = 1
            """)
        #expect(config["script"] == .string("#!/bin/sh\n  echo hi\n"))
        #expect(config["indented"] == .string("line one\n  line two\n"))
        #expect(config["ragged"] == .string("    a\n  b\n"))
        #expect(config["after"] == .integer(1))
    }

    @Test func readsNumbers() throws {
        let config = try parse("a = 42\nb = -7\nc = 0x1F\nd = 010\ne = 1.5\nf = -2.5e3\ng = 1e3\nh = 0\ni = 0.25")
        #expect(config["a"]?.numberValue?.value == .integer(42))
        #expect(config["b"]?.numberValue?.value == .integer(-7))
        #expect(config["c"]?.numberValue?.value == .integer(31))
        #expect(config["c"]?.numberValue?.text == "0x1F")
        #expect(config["d"]?.numberValue?.value == .integer(8))
        #expect(config["e"]?.numberValue?.value == .float(1.5))
        #expect(config["f"]?.numberValue?.value == .float(-2500))
        #expect(config["g"]?.numberValue?.value == .float(1000))
        #expect(config["h"]?.numberValue?.value == .integer(0))
        #expect(config["i"]?.numberValue?.value == .float(0.25))
    }

    @Test func acceptsCommentsColonsAndOptionalCommas() throws {
        let config = try parse("""
            // line comment
            a: 1, b = 2 /* block
            comment */ c = { x: "y", z = [1, /* inner */ 2] } # trailing
            """)
        #expect(config == .object(ConfigObject([
            "a": .integer(1), "b": .integer(2),
            "c": .object(ConfigObject(["x": .string("y"), "z": .array([.integer(1), .integer(2)])])),
        ])))
        #expect(try parse("") == .object(ConfigObject()))
        #expect(try parse("  # only a comment\n") == .object(ConfigObject()))
        #expect(try parse("list = [[1], {a = 1}, []]")["list"] == .array([
            .array([.integer(1)]), .object(ConfigObject(["a": .integer(1)])), .array([]),
        ]))
    }

    @Test(arguments: [
        ("ports {\n  http = 8500\n", "web.hcl:3:1: expected '}' to close the '{' opened at 1:7, found end of file"),
        ("a = [1, 2\nb = 3", "web.hcl:2:1: expected ',' or ']' after list element, found 'b'"),
        ("datacenter = dc1", "web.hcl:1:14: unquoted word 'dc1' cannot be a value; write \"dc1\" if it is a string"),
        ("a = \"open\nb = 1", "web.hcl:1:5: string is not terminated before the end of the line (use \\n for a newline, or a heredoc)"),
        ("service \"web\" = 1", "web.hcl:1:15: expected '{' after the block labels, found '='"),
        ("port 8500", "web.hcl:1:6: expected '=' or '{' after key 'port', found '8500'"),
        ("a = 1 }", "web.hcl:1:7: expected a key, found '}'"),
        ("a = 10s", "web.hcl:1:5: invalid number '10s': a number cannot run into letters; quote it if it is a string such as \"10s\""),
        ("a = 09", "web.hcl:1:5: invalid number '09': a leading 0 makes it octal, and octal has no digits 8 or 9"),
        ("a = 99999999999999999999", "web.hcl:1:5: number 99999999999999999999 is out of range"),
        ("/* open\n a = 1", "web.hcl:1:1: comment starting here is not terminated (missing '*/')"),
        ("x = <<EOF\nbody\n", "web.hcl:1:5: heredoc <<EOF is not terminated; expected a line containing only 'EOF'"),
        ("x = <<EOF body\nEOF\n", "web.hcl:1:10: heredoc marker must be followed by a newline"),
        ("a = \"\\z\"", "web.hcl:1:6: invalid escape sequence '\\z' in string"),
        ("a = \"\\uD800\"", "web.hcl:1:6: invalid escape sequence '\\uD800' in string"),
        ("a = @", "web.hcl:1:5: unexpected character '@'"),
        ("a = ", "web.hcl:1:5: expected a value for 'a', found end of file"),
        ("a = [1,,]", "web.hcl:1:8: expected a list element or ']', found ','"),
        ("tls {\n  defaults {\n    verify_incoming = true\n  }\n", "web.hcl:5:1: expected '}' to close the '{' opened at 1:5, found end of file"),
    ])
    func reportsErrorsWithPositions(source: String, message: String) {
        #expect {
            try HCLParser.parse(source, file: "web.hcl")
        } throws: { error in
            (error as? ConfigParseError)?.description == message
        }
    }

    @Test func rejectsInvalidUTF8AndBOM() {
        #expect(throws: ConfigParseError(file: "u.hcl", position: SourcePosition(line: 2, column: 5), problem: .invalidUTF8)) {
            try HCLParser.parse(bytes: Array("a = 1\nb = ".utf8) + [0xC3, 0x28], file: "u.hcl")
        }
        #expect(throws: ConfigParseError(file: "u.hcl", position: SourcePosition(line: 1, column: 5), problem: .invalidUTF8)) {
            try HCLParser.parse(bytes: Array("a = \"".utf8) + [0xFF] + Array("\"".utf8), file: "u.hcl")
        }
        #expect(throws: ConfigParseError(file: "u.hcl", position: SourcePosition(line: 1, column: 1), problem: .byteOrderMark)) {
            try HCLParser.parse(bytes: [0xEF, 0xBB, 0xBF] + Array("a = 1".utf8), file: "u.hcl")
        }
    }

    @Test func handlesWindowsLineEndingsAndCountsCharactersAsColumns() throws {
        let config = try parse("a = 1\r\nb {\r\n  c = \"x\"\r\n}\r\nd = <<EOF\r\nline\r\nEOF\r\n")
        #expect(config.lookup(["b", "c"]) == .string("x"))
        #expect(config["d"] == .string("line\r\n"))
        #expect(throws: ConfigParseError(
            file: "test.hcl", position: SourcePosition(line: 2, column: 14),
            problem: .expected("'=' or '{' after key 'x'", found: "'1'"))
        ) {
            try parse("a = 1\n\tné = \"日本\" x 1")
        }
    }

    @Test func enforcesDepthLimitIncludingLabels() throws {
        let limits = ConfigParseLimits(maxInputBytes: 1 << 20, maxDepth: 4)
        _ = try HCLParser.parse("a { b { c { d = 1 } } }", file: "d.hcl", limits: limits)
        #expect(throws: ConfigParseError(file: "d.hcl", position: SourcePosition(line: 1, column: 15), problem: .tooDeep(limit: 4))) {
            try HCLParser.parse("a { b { c { d { } } } }", file: "d.hcl", limits: limits)
        }
        #expect(throws: ConfigParseError.self) {
            try HCLParser.parse(#"a "1" "2" "3" "4" { }"#, file: "d.hcl", limits: limits)
        }
        let deepList = "a = " + String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect(throws: ConfigParseError.self) { try HCLParser.parse(deepList, file: "d.hcl") }
    }
}
