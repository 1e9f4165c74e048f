/// The DNS wire format (RFC 1035, with EDNS0 from RFC 6891) for the agent's DNS interface.
///
/// Pure and allocation-light: queries are parsed from bytes into a `DNSQuery`, answers are built by a
/// `DNSResponseWriter` straight into a byte array with name compression. Everything a client sends is
/// untrusted: lengths are checked before every read, compression pointers may only point backwards
/// and are followed a bounded number of times, so a hostile packet yields `DNSParseError` (answered
/// with FORMERR or dropped), never a trap or a loop.
enum DNSLimits {
    /// The largest DNS message at all (TCP length prefix is 16 bits).
    static let maxMessageSize = 65_535
    /// What a UDP answer may use when the query carries no EDNS0 record.
    static let classicUDPSize = 512
    /// Names are at most 255 bytes on the wire, labels 63.
    static let maxNameLength = 255
    static let maxLabelLength = 63
    /// Compression pointers followed while reading one name.
    static let maxPointerHops = 32
    /// Records of each section we are willing to look at in a query.
    static let maxRecordsPerSection = 64
    /// The largest UDP answer whatever the client's EDNS0 buffer says (the IPv4 UDP payload limit).
    static let maxUDPResponseSize = 65_507
    /// Consul's cap on `udp_answer_limit`: answers to a classic 512-byte client.
    static let maxUDPAnswerLimit = 8
    /// Answers built for one response at most; 64 KiB holds fewer than this anyway.
    static let maxAnswers = 4096
    /// Names compiled into a `DNSAnswerMemo` before it starts over (with `maxCompiledAnswers`,
    /// this bounds a memo to about 12 MiB even for the largest answers).
    static let maxMemoEntries = 1024
    /// Answers a compiled answer may hold; larger ones take the general path.
    static let maxCompiledAnswers = 256
    /// Compression pointers have 14 bits: names past this offset cannot be pointed at.
    static let maxCompressionOffset = 0x3FFF
    /// Earlier names a new name is compared with when compressing.
    static let maxCompressionCandidates = 64
}

enum DNSType: UInt16, Sendable {
    case a = 1, ns = 2, cname = 5, soa = 6, ptr = 12, mx = 15, txt = 16, aaaa = 28, srv = 33, opt = 41
    case ixfr = 251, axfr = 252, any = 255
}

enum DNSClass {
    static let internet: UInt16 = 1
    static let any: UInt16 = 255
}

enum DNSResponseCode: UInt8, Sendable {
    case noError = 0, formatError = 1, serverFailure = 2, nameError = 3, notImplemented = 4, refused = 5
}

enum DNSParseError: Error, Equatable, CustomStringConvertible {
    case truncated(at: Int)
    case tooLarge(Int)
    case notAQuery
    case unsupportedOpcode(UInt8)
    case noQuestion
    case tooManyRecords
    case badLabel(at: Int)
    case nameTooLong
    case badPointer(at: Int)
    case tooManyPointers

    var description: String {
        switch self {
        case .truncated(let offset): return "message ends early (at byte \(offset))"
        case .tooLarge(let size): return "message of \(size) bytes exceeds the DNS maximum"
        case .notAQuery: return "message is a response, not a query"
        case .unsupportedOpcode(let code): return "opcode \(code) is not supported"
        case .noQuestion: return "query has no question"
        case .tooManyRecords: return "query has too many records"
        case .badLabel(let offset): return "invalid label at byte \(offset)"
        case .nameTooLong: return "name longer than 255 bytes"
        case .badPointer(let offset): return "compression pointer at byte \(offset) does not point backwards"
        case .tooManyPointers: return "too many compression pointers in one name"
        }
    }
}

/// A parsed query: its header bits, the (first) question and the client's EDNS0 buffer size.
struct DNSQuery: Equatable, Sendable {
    var id: UInt16
    var recursionDesired: Bool
    /// Lower-cased, without the trailing dot: "web.service.consul".
    var name: String
    /// The name exactly as asked (case preserved), echoed back in the question section.
    var originalName: String
    var type: UInt16
    var queryClass: UInt16
    /// The UDP payload size the client accepts (EDNS0), or nil without an OPT record.
    var ednsUDPSize: Int?

    /// The most bytes a UDP answer to this query may have.
    var udpLimit: Int { max(DNSLimits.classicUDPSize, min(ednsUDPSize ?? DNSLimits.classicUDPSize, DNSLimits.maxMessageSize)) }

    static func parse(_ bytes: [UInt8]) throws(DNSParseError) -> DNSQuery {
        guard bytes.count <= DNSLimits.maxMessageSize else { throw .tooLarge(bytes.count) }
        var reader = DNSReader(bytes: bytes)
        let id = try reader.readUInt16()
        let flags = try reader.readUInt16()
        let questions = try reader.readUInt16()
        let answers = try reader.readUInt16()
        let authorities = try reader.readUInt16()
        let additionals = try reader.readUInt16()
        guard flags & 0x8000 == 0 else { throw .notAQuery }
        let opcode = UInt8((flags >> 11) & 0xF)
        guard opcode == 0 else { throw .unsupportedOpcode(opcode) }
        guard questions >= 1 else { throw .noQuestion }
        guard questions <= 1, answers <= DNSLimits.maxRecordsPerSection, authorities <= DNSLimits.maxRecordsPerSection,
              additionals <= DNSLimits.maxRecordsPerSection
        else { throw .tooManyRecords }

        let (name, original) = try reader.readName()
        let type = try reader.readUInt16()
        let queryClass = try reader.readUInt16()

        // Skip answer and authority records; look for the OPT record among the additional ones.
        for _ in 0..<(Int(answers) + Int(authorities)) { try reader.skipRecord() }
        var ednsSize: Int?
        for _ in 0..<Int(additionals) {
            _ = try reader.readName()
            let recordType = try reader.readUInt16()
            let recordClass = try reader.readUInt16()
            try reader.skip(4)  // TTL (extended rcode, version, flags for OPT)
            let length = Int(try reader.readUInt16())
            try reader.skip(length)
            if recordType == DNSType.opt.rawValue { ednsSize = Int(recordClass) }
        }
        return DNSQuery(
            id: id, recursionDesired: flags & 0x0100 != 0, name: name, originalName: original,
            type: type, queryClass: queryClass, ednsUDPSize: ednsSize)
    }
}

/// Bounds-checked reading of a DNS message.
struct DNSReader {
    let bytes: [UInt8]
    private(set) var offset = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func readUInt8() throws(DNSParseError) -> UInt8 {
        guard offset < bytes.count else { throw .truncated(at: offset) }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func readUInt16() throws(DNSParseError) -> UInt16 {
        guard offset + 2 <= bytes.count else { throw .truncated(at: offset) }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func skip(_ count: Int) throws(DNSParseError) {
        guard count >= 0, offset + count <= bytes.count else { throw .truncated(at: offset) }
        offset += count
    }

    mutating func skipRecord() throws(DNSParseError) {
        _ = try readName()
        try skip(8)  // type, class, TTL
        try skip(Int(try readUInt16()))
    }

    /// Reads a possibly compressed name; returns it lower-cased and as written, both without the
    /// final dot. Pointers must point strictly backwards, which alone rules out loops; the hop limit
    /// bounds the work anyway.
    mutating func readName() throws(DNSParseError) -> (lowercased: String, original: String) {
        // First pass: validate, find where the name ends and how long its text is; second pass:
        // write the text straight into the string's storage (one allocation, none for short names).
        var position = offset
        var wireLength = 1
        var hops = 0
        var resumeAt: Int?
        var textLength = 0
        var hasUppercase = false
        while true {
            guard position < bytes.count else { throw .truncated(at: position) }
            let length = Int(bytes[position])
            if length == 0 {
                position += 1
                break
            }
            switch length & 0xC0 {
            case 0xC0:
                guard position + 1 < bytes.count else { throw .truncated(at: position) }
                let target = (length & 0x3F) << 8 | Int(bytes[position + 1])
                guard target < position else { throw .badPointer(at: position) }
                hops += 1
                guard hops <= DNSLimits.maxPointerHops else { throw .tooManyPointers }
                if resumeAt == nil { resumeAt = position + 2 }
                position = target
            case 0x00:
                guard length <= DNSLimits.maxLabelLength, position + 1 + length <= bytes.count else {
                    throw .badLabel(at: position)
                }
                wireLength += length + 1
                guard wireLength <= DNSLimits.maxNameLength else { throw .nameTooLong }
                textLength += (textLength == 0 ? 0 : 1) + length
                for byte in bytes[(position + 1)..<(position + 1 + length)] where byte >= 0x41 && byte <= 0x5A {
                    hasUppercase = true
                }
                position += 1 + length
            default:
                throw .badLabel(at: position)  // 0x40 and 0x80 label types are obsolete/reserved
            }
        }
        let start = offset
        offset = resumeAt ?? position
        let original = nameText(from: start, length: textLength, lowercase: false)
        return (hasUppercase ? nameText(from: start, length: textLength, lowercase: true) : original, original)
    }

    /// The dotted text of the (already validated) name at `start`.
    private func nameText(from start: Int, length: Int, lowercase: Bool) -> String {
        String(unsafeUninitializedCapacity: length) { text in
            var written = 0
            var position = start
            while true {
                let label = Int(bytes[position])
                if label == 0 { break }
                if label & 0xC0 == 0xC0 {
                    position = (label & 0x3F) << 8 | Int(bytes[position + 1])
                    continue
                }
                if written > 0 {
                    text[written] = UInt8(ascii: ".")
                    written += 1
                }
                for index in (position + 1)..<(position + 1 + label) {
                    let byte = bytes[index]
                    text[written] = lowercase && byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
                    written += 1
                }
                position += 1 + label
            }
            return written
        }
    }
}

extension String {
    /// ASCII-only lower-casing (DNS names compare case-insensitively in ASCII only, RFC 4343).
    func lowercasedASCII() -> String {
        guard utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) else { return self }
        var bytes = Array(utf8)
        for index in bytes.indices where bytes[index] >= 0x41 && bytes[index] <= 0x5A { bytes[index] |= 0x20 }
        return String(decoding: bytes, as: UTF8.self)
    }
}
