import Testing
@testable import ConsulCore

@Suite struct JSONConfigParserTests {
    /// Seed 002's service definition, as the tutorial writes it.
    static let web3 = """
        {
          "service": {
            "name": "web3",
            "tags": ["master"],
            "address": "127.0.0.1",
            "port": 10000,
            "checks": [
              {
                "http": "http://localhost:10000/health",
                "interval": "10s"
              }
            ]
          }
        }
        """

    @Test func readsSeedServiceDefinition() throws {
        let config = try JSONConfigParser.parse(Self.web3, file: "conf/web3.json")
        #expect(config.objectValue?.keys == ["service"])
        let service = try #require(config["service"])
        #expect(service.objectValue?.keys == ["name", "tags", "address", "port", "checks"])
        #expect(service["name"] == .string("web3"))
        #expect(service["tags"] == .array([.string("master")]))
        #expect(service["port"]?.integerValue == 10000)
        #expect(config.lookup(["service", "checks", 0, "interval"]) == .string("10s"))
        #expect(config.lookup(["service", "checks", 1]) == nil)
        #expect(config.objectValue?.member("service")?.position == SourcePosition(line: 2, column: 3))
    }

    @Test func keepsKeyOrderAndLastDuplicateWins() throws {
        let config = try JSONConfigParser.parse(#"{"z": 1, "a": {"x": 1}, "m": 2, "a": {"y": 2}}"#, file: "d.json")
        #expect(config.objectValue?.keys == ["z", "a", "m"])
        #expect(config["a"] == .object(ConfigObject(["y": .integer(2)])))
    }

    @Test func numbersKeepKindAndText() throws {
        let config = try JSONConfigParser.parse(
            #"{"i": -42, "f": 0.5, "e": 1E3, "big": 9223372036854775808, "zero": 0, "min": -9223372036854775808}"#,
            file: "n.json")
        #expect(config["i"]?.numberValue?.value == .integer(-42))
        #expect(config["f"]?.numberValue?.value == .float(0.5))
        #expect(config["e"]?.numberValue?.value == .float(1000))
        #expect(config["e"]?.numberValue?.text == "1E3")
        #expect(config["e"]?.integerValue == 1000)
        #expect(config["big"]?.numberValue?.value == .float(9_223_372_036_854_775_808))
        #expect(config["zero"]?.numberValue?.value == .integer(0))
        #expect(config["min"]?.numberValue?.value == .integer(Int64.min))
    }

    @Test func decodesStringEscapes() throws {
        let config = try JSONConfigParser.parse(
            #"{"s": "a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00\udc00x", "t": "${node.name}"}"#, file: "s.json")
        #expect(config["s"] == .string("a\"b\\c/d\u{8}\u{C}\n\r\té😀\u{FFFD}x"))
        #expect(config["t"] == .string("${node.name}"))
    }

    @Test func readsLiteralsAndNesting() throws {
        let value = try JSONConfigParser.parseValue(
            bytes: Array(#" [true, false, null, [], {}, [[1]]] "#.utf8), file: "v.json")
        #expect(value == .array([.bool(true), .bool(false), .null, .array([]), .object(ConfigObject()),
                                 .array([.array([.integer(1)])])]))
    }

    @Test(arguments: [
        // The example from the design brief: a missing comma before "port".
        ("{\n  \"service\": {\n    \"name\": \"web3\",\n    \"address\": \"x\" \"port\": 1\n  }\n}",
         "conf/web3.json:4:20: expected ',' or '}' after object member, found '\"port\"'"),
        ("{\"a\": 1,}", "conf/web3.json:1:9: JSON does not allow a comma before '}'"),
        ("{\"a\": [1, 2,]}", "conf/web3.json:1:13: JSON does not allow a comma before ']'"),
        ("{\"a\" 1}", "conf/web3.json:1:6: expected ':' after object key, found '1'"),
        ("{a: 1}", "conf/web3.json:1:2: expected a string as object key, found 'a'"),
        ("{\"a\": tru}", "conf/web3.json:1:7: expected a value, found 'tru'"),
        ("{\"a\": 01}", "conf/web3.json:1:7: invalid number '01': leading zeros are not allowed in JSON"),
        ("{\"a\": 1e999}", "conf/web3.json:1:7: number 1e999 is out of range"),
        ("{\"a\": \"x\ny\"}", "conf/web3.json:1:7: string is not terminated (missing closing '\"')"),
        ("{\"a\": \"\\q\"}", "conf/web3.json:1:8: invalid escape sequence '\\q' in string"),
        ("{\"a\": \"\\u12\"}", "conf/web3.json:1:8: invalid escape sequence '\\u12' in string"),
        ("{\"a\": {\"b\": 1}", "conf/web3.json:1:15: expected '}' to close the '{' opened at 1:1, found end of file"),
        ("{\"a\": [1", "conf/web3.json:1:9: expected ']' to close the '[' opened at 1:7, found end of file"),
        ("", "conf/web3.json:1:1: expected '{' at the start of the configuration, found end of file"),
        ("[1]", "conf/web3.json:1:1: expected '{' at the start of the configuration, found '['"),
        ("{} x", "conf/web3.json:1:4: expected end of file after the top-level value, found 'x'"),
        ("{\"é\": \"ü\" @}", "conf/web3.json:1:11: expected ',' or '}' after object member, found '@'"),
        ("{\"a\": \"\u{1}\"}", "conf/web3.json:1:8: control character U+0001 in string must be escaped"),
    ])
    func reportsErrorsWithPositions(source: String, message: String) {
        #expect {
            try JSONConfigParser.parse(source, file: "conf/web3.json")
        } throws: { error in
            (error as? ConfigParseError)?.description == message
        }
    }

    @Test func unclosedArrayInsideObjectNamesTheArray() {
        #expect(throws: ConfigParseError(
            file: "f.json", position: SourcePosition(line: 1, column: 9),
            problem: .unclosed(opening: "[", at: SourcePosition(line: 1, column: 7), found: "end of file"))
        ) {
            try JSONConfigParser.parse("{\"a\": [1", file: "f.json")
        }
    }

    @Test func enforcesLimits() throws {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: ConfigParseError.self) {
            try JSONConfigParser.parseValue(bytes: Array(deep.utf8), file: "deep.json")
        }
        let ok = String(repeating: "[", count: 50) + String(repeating: "]", count: 50)
        _ = try JSONConfigParser.parseValue(bytes: Array(ok.utf8), file: "ok.json")
        let limits = ConfigParseLimits(maxInputBytes: 10, maxDepth: 5)
        #expect(throws: ConfigParseError(
            file: "big.json", position: SourcePosition(line: 1, column: 1), problem: .tooLarge(size: 17, limit: 10))
        ) {
            try JSONConfigParser.parse(#"{"a": "01234567"}"#, file: "big.json", limits: limits)
        }
        #expect(throws: ConfigParseError.self) {
            try JSONConfigParser.parse([0xEF, 0xBB, 0xBF] + Array("{}".utf8), file: "bom.json")
        }
    }

    @Test func invalidUTF8InStringsBecomesReplacementCharacter() throws {
        let bytes: [UInt8] = Array(#"{"a": ""#.utf8) + [0xFF, 0x41] + Array(#""}"#.utf8)
        #expect(try JSONConfigParser.parse(bytes: bytes, file: "u.json")["a"] == .string("\u{FFFD}A"))
    }
}

extension JSONConfigParser {
    static func parse(_ bytes: [UInt8], file: String) throws(ConfigParseError) -> ConfigValue {
        try parse(bytes: bytes, file: file)
    }
}
