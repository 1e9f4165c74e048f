import Testing
@testable import ConsulCore

/// Mutates valid configs with a seeded generator and feeds every mutant to both readers. Each
/// read must end in a value or a `ConfigParseError` whose position lies inside the input; a trap
/// fails the whole test run. A failure names the seed and iteration that reproduce it.
@Suite struct ConfigFuzzTests {
    static let corpus: [String] = [
        """
        {
          "service": {
            "name": "web3", "tags": ["master"], "address": "127.0.0.1", "port": 10000,
            "checks": [{"http": "http://localhost:10000/health", "interval": "10s"}]
          },
          "x": [1.5e3, -0, true, false, null, "\\u00e9\\ud83d\\ude00\\n"]
        }
        """,
        """
        datacenter = "dc1"
        ports { http = 8500, dns = -1 }
        tls {
          defaults { ca_file = "ca.pem", verify_incoming = true }
          internal_rpc { verify_server_hostname = true }
        }
        retry_join = ["127.0.0.2", "127.0.0.3",]
        n = [0x1F, 010, 1.5e-3, -7]
        """,
        """
        # ACL rules
        key_prefix "" { policy = "read" }
        service "web" { policy = "write" }
        node_prefix "" {
          policy = "read"
        }
        operator = "read"
        a "b" "c" { d = "${node.name} \\t \\x41 \\101 \\U0001F600" }
        """,
        """
        script = <<EOF
        echo "hi"
        EOF
        indented = <<-EOT
            one
          EOT
        /* block */ services { name = "a" } services { name = "b" } // end
        map = { k: "v", list = [[1], {x = 1}] }
        """,
    ]

    /// Bytes that mean something to one of the two grammars, plus invalid and multi-byte UTF-8.
    static let interesting: [[UInt8]] = [
        "{", "}", "[", "]", "\"", ",", "=", ":", "\\", "#", "/", "*", "/*", "*/", "//", "<<", "<<-", "-",
        "0x", "e", ".", "\n", "\r", "\t", " ", "${", "\\u", "\\U", "\\x", "EOF", "true", "null", "é",
    ].map { Array($0.utf8) } + [[0xFF], [0xC3], [0xE2, 0x82], [0xEF, 0xBB, 0xBF], [0x00], [0xF4, 0x90, 0x80, 0x80]]

    @Test func mutatedInputsNeverTrap() throws {
        let seed: UInt64 = 0xC0DE_C0F1
        var random = SeededRandom(seed: seed)
        let corpus = Self.corpus.map { Array($0.utf8) }
        var outcomes = (values: 0, errors: 0)
        let iterations = 4_000
        for iteration in 0..<iterations {
            var bytes = corpus[Int(random.next() % UInt64(corpus.count))]
            let mutations = 1 + Int(random.next() % 4)
            for _ in 0..<mutations { mutate(&bytes, &random, corpus: corpus) }
            let limits = ConfigParseLimits(maxInputBytes: 1 << 16, maxDepth: 8 + Int(random.next() % 40))
            for format in ConfigFormat.allCases {
                do {
                    let first = try format.parse(bytes: bytes, file: "fuzz")
                    // Deterministic: reading again gives the same tree.
                    let again = try format.parse(bytes: bytes, file: "fuzz")
                    #expect(first == again, "seed \(seed) iteration \(iteration) \(format)")
                    // Merging with itself never traps and keeps an object an object.
                    #expect(first.merged(with: first).objectValue != nil)
                    outcomes.values += 1
                } catch {
                    #expect(isInside(error.position, bytes), "seed \(seed) iteration \(iteration) \(format): \(error)")
                    #expect(error.file == "fuzz")
                    outcomes.errors += 1
                }
                _ = try? format.parse(bytes: bytes, file: "fuzz", limits: limits)
            }
        }
        // The mutations must exercise both outcomes, or the test proves little.
        #expect(outcomes.values > iterations / 20)
        #expect(outcomes.errors > iterations / 20)
    }

    @Test func randomBytesNeverTrap() {
        var random = SeededRandom(seed: 7)
        let alphabet = Self.interesting.flatMap { $0 } + Array("abc019 \"{}[]".utf8)
        for _ in 0..<2_000 {
            let length = Int(random.next() % 64)
            let bytes = (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            for format in ConfigFormat.allCases {
                do {
                    _ = try format.parse(bytes: bytes, file: "r")
                } catch {
                    #expect(isInside(error.position, bytes), "\(bytes): \(error)")
                }
            }
        }
    }

    private func mutate(_ bytes: inout [UInt8], _ random: inout SeededRandom, corpus: [[UInt8]]) {
        func position(_ count: Int) -> Int { Int(random.next() % UInt64(count + 1)) }
        switch random.next() % 7 {
        case 0 where !bytes.isEmpty:  // flip a byte
            bytes[position(bytes.count - 1)] = UInt8(truncatingIfNeeded: random.next())
        case 1:  // insert something meaningful
            let piece = Self.interesting[Int(random.next() % UInt64(Self.interesting.count))]
            bytes.insert(contentsOf: piece, at: position(bytes.count))
        case 2 where !bytes.isEmpty:  // delete a range
            let start = position(bytes.count - 1)
            let end = min(bytes.count, start + 1 + Int(random.next() % 8))
            bytes.removeSubrange(start..<end)
        case 3 where !bytes.isEmpty:  // duplicate a range
            let start = position(bytes.count - 1)
            let end = min(bytes.count, start + 1 + Int(random.next() % 16))
            bytes.insert(contentsOf: bytes[start..<end], at: position(bytes.count))
        case 4:  // truncate
            bytes.removeLast(bytes.count - position(bytes.count))
        case 5:  // splice in part of another document
            let other = corpus[Int(random.next() % UInt64(corpus.count))]
            let start = position(other.count - 1)
            let end = min(other.count, start + Int(random.next() % 40))
            bytes.insert(contentsOf: other[start..<end], at: position(bytes.count))
        default:  // deep nesting
            let depth = Int(random.next() % 120)
            let opening: [UInt8] = random.next() % 2 == 0 ? Array("a = [".utf8) : Array("{\"a\": [".utf8)
            bytes.insert(contentsOf: opening + Array(repeating: UInt8(ascii: "["), count: depth), at: position(bytes.count))
        }
    }

    /// An error position must point into the input: at an existing line, at most one column past
    /// its last character.
    private func isInside(_ position: SourcePosition, _ bytes: [UInt8]) -> Bool {
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        guard position.line >= 1, position.line <= lines.count, position.column >= 1 else { return false }
        let characters = lines[position.line - 1].filter { $0 & 0xC0 != 0x80 }.count
        return position.column <= characters + 1
    }
}
