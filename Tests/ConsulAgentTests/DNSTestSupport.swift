@testable import ConsulAgent
@testable import ConsulCore

/// A small in-memory catalog for the DNS tests (the state store conforms to the same protocol).
struct DNSTestCatalog: DNSCatalogView {
    var nodes: [DNSNode] = []
    var instances: [DNSServiceInstance] = []
    /// Set to let the resolver memoize compiled answers.
    var generation: UInt64?

    var dnsGeneration: UInt64? { generation }

    func dnsNode(named name: String) -> DNSNode? {
        nodes.first { $0.name.equalsIgnoringASCIICase(name) }
    }

    func dnsServiceInstances(named name: String) -> [DNSServiceInstance] {
        instances.filter { $0.serviceName.equalsIgnoringASCIICase(name) }
    }

    func dnsNodes(withAddress address: String) -> [DNSNode] {
        nodes.filter { node in
            node.address == address || instances.contains { $0.node.name == node.name && $0.serviceAddress == address }
        }
    }

    static func node(_ name: String, _ address: String, meta: [(String, String)] = [], health: DNSHealth = .passing, dc: String = "dc1")
        -> DNSNode
    {
        DNSNode(name: name, datacenter: dc, address: address, taggedAddresses: [:], meta: meta.map { (key: $0.0, value: $0.1) }, health: health)
    }

    static func instance(
        _ service: String, on node: DNSNode, id: String? = nil, address: String = "", port: Int = 8080, tags: [String] = [],
        health: DNSHealth = .passing, weights: (Int, Int) = (1, 1)
    ) -> DNSServiceInstance {
        DNSServiceInstance(
            node: node, serviceID: id ?? "\(service)-\(node.name)", serviceName: service, serviceAddress: address, port: port,
            tags: tags, weightPassing: weights.0, weightWarning: weights.1, health: health)
    }

    /// Adds a node and instances of `service` on it.
    mutating func add(_ node: DNSNode, services: [DNSServiceInstance] = []) {
        nodes.append(node)
        instances += services
    }
}

/// A decoded response, read independently of the writer, for assertions.
struct DNSTestResponse {
    enum Data: Hashable {
        case a(String)
        case aaaa([UInt8])
        case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
        case txt([String])
        case soa(primary: String, mailbox: String, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32, minimum: UInt32)
        case name(String)  // NS, PTR, CNAME
        case opt(UInt16)
        case other([UInt8])
    }

    struct Record: Hashable {
        var name: String
        var type: UInt16
        var ttl: UInt32
        var data: Data
    }

    var id: UInt16
    var flags: UInt16
    var question: String
    var questionType: UInt16
    var answers: [Record] = []
    var authority: [Record] = []
    var additional: [Record] = []

    var code: UInt8 { UInt8(flags & 0x0F) }
    var truncated: Bool { flags & 0x0200 != 0 }
    var authoritative: Bool { flags & 0x0400 != 0 }
    var recursionAvailable: Bool { flags & 0x0080 != 0 }
    /// ADDITIONAL without the OPT pseudo-record.
    var extra: [Record] { additional.filter { $0.type != DNSType.opt.rawValue } }
    var opt: UInt16? {
        for record in additional { if case .opt(let size) = record.data { return size } }
        return nil
    }

    init(_ message: [UInt8]) throws {
        var reader = DNSReader(bytes: message)
        id = try reader.readUInt16()
        flags = try reader.readUInt16()
        let counts = try (0..<4).map { _ in Int(try reader.readUInt16()) }
        question = ""
        questionType = 0
        if counts[0] == 1 {
            question = try reader.readName().original
            questionType = try reader.readUInt16()
            try reader.skip(2)
        }
        for section in 0..<3 {
            for _ in 0..<counts[section + 1] {
                let record = try Self.readRecord(&reader, message)
                switch section {
                case 0: answers.append(record)
                case 1: authority.append(record)
                default: additional.append(record)
                }
            }
        }
        guard reader.offset == message.count else { throw DNSParseError.truncated(at: reader.offset) }
    }

    private static func readRecord(_ reader: inout DNSReader, _ message: [UInt8]) throws -> Record {
        let name = try reader.readName().original
        let type = try reader.readUInt16()
        let recordClass = try reader.readUInt16()
        let ttl = UInt32(try reader.readUInt16()) << 16 | UInt32(try reader.readUInt16())
        let length = Int(try reader.readUInt16())
        let start = reader.offset
        try reader.skip(length)
        let rdata = Array(message[start..<(start + length)])
        var inner = DNSReader(bytes: message)
        try inner.skip(start)
        let data: Data
        switch type {
        case DNSType.a.rawValue:
            data = .a(rdata.map { String($0) }.joined(separator: "."))
        case DNSType.aaaa.rawValue:
            data = .aaaa(rdata)
        case DNSType.srv.rawValue:
            let priority = try inner.readUInt16(), weight = try inner.readUInt16(), port = try inner.readUInt16()
            data = .srv(priority: priority, weight: weight, port: port, target: try inner.readName().original)
        case DNSType.txt.rawValue:
            var strings: [String] = []
            var index = 0
            while index < rdata.count {
                let count = Int(rdata[index])
                strings.append(String(decoding: rdata[(index + 1)..<(index + 1 + count)], as: UTF8.self))
                index += 1 + count
            }
            data = .txt(strings)
        case DNSType.soa.rawValue:
            let primary = try inner.readName().original, mailbox = try inner.readName().original
            let values = try (0..<5).map { _ in UInt32(try inner.readUInt16()) << 16 | UInt32(try inner.readUInt16()) }
            data = .soa(primary: primary, mailbox: mailbox, serial: values[0], refresh: values[1], retry: values[2], expire: values[3], minimum: values[4])
        case DNSType.ns.rawValue, DNSType.ptr.rawValue, DNSType.cname.rawValue:
            data = .name(try inner.readName().original)
        case DNSType.opt.rawValue:
            data = .opt(recordClass)
        default:
            data = .other(rdata)
        }
        return Record(name: name, type: type, ttl: ttl, data: data)
    }
}

/// Builds query packets the way dig does.
enum DNSTestQuery {
    static func packet(_ name: String, _ type: DNSType, id: UInt16 = 0xBEEF, edns: UInt16? = nil) -> [UInt8] {
        DNSMessageTests.query(name, type: type.rawValue, id: id, edns: edns)
    }
}
