import Testing
@testable import ConsulAgent
@testable import ConsulCore

@Suite struct DNSMessageTests {
    /// A query as dig sends it: id 0xBEEF, RD, one question, one OPT record (EDNS0, 1232 bytes).
    static func query(_ name: String, type: UInt16, id: UInt16 = 0xBEEF, edns: UInt16? = 1232) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, edns == nil ? 0 : 1]
        for label in name.split(separator: ".") {
            bytes.append(UInt8(label.utf8.count))
            bytes.append(contentsOf: label.utf8)
        }
        bytes += [0, UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
        if let edns { bytes += [0, 0, 41, UInt8(edns >> 8), UInt8(edns & 0xFF), 0, 0, 0, 0, 0, 0] }
        return bytes
    }

    /// Walks a response the way a resolver would, following compression pointers, and returns the
    /// names and types of every record: an independent check of what the writer produced.
    static func records(in message: [UInt8]) throws -> (header: [UInt16], question: String, records: [(String, UInt16, [UInt8])]) {
        var reader = DNSReader(bytes: message)
        let header = try (0..<6).map { _ in try reader.readUInt16() }
        let question = try reader.readName().original
        try reader.skip(4)
        var records: [(String, UInt16, [UInt8])] = []
        for _ in 0..<(Int(header[3]) + Int(header[4]) + Int(header[5])) {
            let name = try reader.readName().original
            let type = try reader.readUInt16()
            try reader.skip(6)
            let length = Int(try reader.readUInt16())
            let start = reader.offset
            try reader.skip(length)
            records.append((name, type, Array(message[start..<(start + length)])))
        }
        #expect(reader.offset == message.count, "trailing bytes after the last record")
        return (header, question, records)
    }

    @Test func parsesADigQuery() throws {
        let parsed = try DNSQuery.parse(Self.query("Web.Service.Consul", type: 33))
        #expect(parsed.id == 0xBEEF)
        #expect(parsed.recursionDesired)
        #expect(parsed.name == "web.service.consul")
        #expect(parsed.originalName == "Web.Service.Consul")
        #expect(parsed.type == DNSType.srv.rawValue)
        #expect(parsed.ednsUDPSize == 1232)
        #expect(parsed.udpLimit == 1232)
        #expect(try DNSQuery.parse(Self.query("a.consul", type: 1, edns: nil)).udpLimit == 512)
        #expect(try DNSQuery.parse(Self.query("a.consul", type: 1, edns: 100)).udpLimit == 512)
    }

    @Test func answerForAnARecordIsByteExact() throws {
        let query = try DNSQuery.parse(Self.query("n1.node.consul", type: 1, id: 7, edns: nil))
        var writer = DNSResponseWriter(query: query, code: .noError, authoritative: true, recursionAvailable: false, sizeLimit: 512)
        let added = writer.add(DNSRecord(name: "n1.node.consul", ttl: 0, data: .address(DNSIP(bytes: [127, 0, 0, 1])!)), to: .answer)
        #expect(added)
        let expected: [UInt8] = [
            0, 7, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0,  // id, QR|AA|RD, 1 question, 1 answer
            2, 110, 49, 4, 110, 111, 100, 101, 6, 99, 111, 110, 115, 117, 108, 0, 0, 1, 0, 1,  // n1.node.consul A IN
            0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1,  // pointer to the question name, TTL 0
        ]
        let finished = writer.finish()
        #expect(finished == expected)
    }

    @Test func srvAnswerWithAdditionalRecordsAndCompression() throws {
        let query = try DNSQuery.parse(Self.query("web.service.consul", type: 33))
        var writer = DNSResponseWriter(query: query, code: .noError, authoritative: true, recursionAvailable: false, sizeLimit: query.udpLimit)
        for node in ["n2", "n3"] {
            writer.add(DNSRecord(name: "web.service.consul", ttl: 0, data: .srv(priority: 1, weight: 1, port: 10000, target: "\(node).node.dc1.consul")), to: .answer)
        }
        writer.add(DNSRecord(name: "n2.node.dc1.consul", ttl: 0, data: .address(DNSIP(bytes: [10, 0, 0, 2])!)), to: .additional)
        writer.add(DNSRecord(name: "n3.node.dc1.consul", ttl: 0, data: .address(DNSIP(bytes: [10, 0, 0, 3])!)), to: .additional)
        writer.add(DNSRecord(name: "", ttl: 0, data: .opt(udpPayloadSize: 4096)), to: .additional)
        let message = writer.finish()
        let parsed = try Self.records(in: message)
        #expect(parsed.header[3] == 2 && parsed.header[5] == 3)
        #expect(parsed.question == "web.service.consul")
        #expect(parsed.records.map(\.0) == ["web.service.consul", "web.service.consul", "n2.node.dc1.consul", "n3.node.dc1.consul", ""])
        #expect(parsed.records.map(\.1) == [33, 33, 1, 1, 41])
        // SRV rdata: priority 1, weight 1, port 10000, then the target written out in full.
        #expect(Array(parsed.records[0].2.prefix(6)) == [0, 1, 0, 1, 0x27, 0x10])
        #expect(!parsed.records[0].2.contains(0xC0))
        // Compression made this much smaller than writing every name out.
        #expect(message.count < 160)
    }

    @Test func recordsThatDoNotFitAreRefusedAndTruncationIsFlagged() throws {
        let query = try DNSQuery.parse(Self.query("many.service.consul", type: 1, edns: nil))
        var writer = DNSResponseWriter(query: query, code: .noError, authoritative: true, recursionAvailable: false, sizeLimit: query.udpLimit)
        var accepted = 0
        for index in 0..<100 {
            let added = writer.add(DNSRecord(name: "many.service.consul", ttl: 0, data: .address(DNSIP(bytes: [10, 0, UInt8(index / 256), UInt8(index % 256)])!)), to: .answer)
            if !added { break }
            accepted += 1
        }
        #expect(accepted > 10 && accepted < 100)
        let message = writer.finish(truncated: true)
        #expect(message.count <= 512)
        #expect(message[2] & 0x02 != 0)
        #expect(try Self.records(in: message).records.count == accepted)
    }

    @Test func soaTxtAndLongTextAreWellFormed() throws {
        let query = try DNSQuery.parse(Self.query("nothing.consul", type: 16))
        var writer = DNSResponseWriter(query: query, code: .nameError, authoritative: true, recursionAvailable: false, sizeLimit: 4096)
        writer.add(DNSRecord(name: "n1.node.consul", ttl: 0, data: .txt(["rack=a", String(repeating: "x", count: 300)])), to: .answer)
        writer.add(DNSRecord(name: "consul", ttl: 0, data: .soa(primary: "ns.consul", mailbox: "hostmaster.consul", serial: 1, refresh: 3600, retry: 600, expire: 86400, minimumTTL: 0)), to: .authority)
        let message = writer.finish()
        #expect(message[3] & 0x0F == DNSResponseCode.nameError.rawValue)
        let records = try Self.records(in: message).records
        // "rack=a" (1+6) then 300 bytes as 255 + 45, each with its length byte.
        #expect(records[0].2.count == 7 + 256 + 46)
        #expect(records[1].1 == DNSType.soa.rawValue)
    }

    @Test func hostileNamesAreRejected() {
        // A pointer to itself, a forward pointer, an overlong label, a reserved label type.
        var selfPointer: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        selfPointer += [0xC0, 12, 0, 1, 0, 1]
        #expect(throws: DNSParseError.badPointer(at: 12)) { try DNSQuery.parse(selfPointer) }
        var forward: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        forward += [0xC0, 40, 0, 1, 0, 1]
        #expect(throws: DNSParseError.badPointer(at: 12)) { try DNSQuery.parse(forward) }
        var longLabel: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64] + [UInt8](repeating: 97, count: 64) + [0, 0, 1, 0, 1]
        #expect(throws: DNSParseError.badLabel(at: 12)) { try DNSQuery.parse(longLabel) }
        longLabel[12] = 0x40
        #expect(throws: DNSParseError.badLabel(at: 12)) { try DNSQuery.parse(longLabel) }
        var response = Self.query("a.consul", type: 1)
        response[2] |= 0x80
        #expect(throws: DNSParseError.notAQuery) { try DNSQuery.parse(response) }
        #expect(throws: DNSParseError.truncated(at: 0)) { try DNSQuery.parse([]) }
    }

    @Test func nameLongerThan255BytesIsRejected() {
        var bytes: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        for _ in 0..<5 { bytes += [63] + [UInt8](repeating: 98, count: 63) }
        bytes += [0, 0, 1, 0, 1]
        #expect(throws: DNSParseError.nameTooLong) { try DNSQuery.parse(bytes) }
    }

    /// Random and mutated packets: every one parses or fails with a typed error; none traps.
    @Test func fuzzedQueriesNeverTrap() {
        var random = SeededRandom(seed: 0xD15)
        let seeds = [Self.query("web.service.consul", type: 33), Self.query("n1.node.dc1.consul", type: 1, edns: nil)]
        var parsed = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 4 == 0 {
                bytes = (0..<Int.random(in: 0...80, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            } else {
                bytes = seeds[round % 2]
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    let position = Int.random(in: 0..<bytes.count, using: &random)
                    switch random.next() % 3 {
                    case 0: bytes[position] = UInt8.random(in: 0...255, using: &random)
                    case 1: bytes.removeSubrange(position...)
                    default: bytes.insert(UInt8.random(in: 0...255, using: &random), at: position)
                    }
                    if bytes.isEmpty { break }
                }
            }
            if (try? DNSQuery.parse(bytes)) != nil { parsed += 1 }
        }
        // Mutations that only touch a TTL or the id still parse: the fuzzer exercised both paths.
        #expect(parsed > 0 && parsed < 20_000)
    }
}
