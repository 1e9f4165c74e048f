/// One resource record to put in an answer.
struct DNSRecord: Equatable, Sendable {
    enum Data: Equatable, Sendable {
        case a([UInt8])
        case aaaa([UInt8])
        case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
        case txt([String])
        case soa(primary: String, mailbox: String, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32, minimumTTL: UInt32)
        case ns(String)
        case ptr(String)
        case cname(String)
        /// EDNS0 pseudo-record: the UDP payload size we accept.
        case opt(udpPayloadSize: UInt16)

        var type: DNSType {
            switch self {
            case .a: return .a
            case .aaaa: return .aaaa
            case .srv: return .srv
            case .txt: return .txt
            case .soa: return .soa
            case .ns: return .ns
            case .ptr: return .ptr
            case .cname: return .cname
            case .opt: return .opt
            }
        }
    }

    var name: String
    var ttl: UInt32
    var data: Data
}

/// Builds a response to one query: header, the question echoed, then records section by section,
/// with name compression. `add` refuses a record that would push the message past `sizeLimit`,
/// which is how UDP answers are trimmed (the caller then sets the TC bit when it asks for it).
struct DNSResponseWriter {
    enum Section: Int, Comparable {
        case answer = 0, authority, additional
        static func < (lhs: Section, rhs: Section) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    private(set) var bytes: [UInt8] = []
    let sizeLimit: Int
    private var compression: [String: Int] = [:]
    private var counts = [0, 0, 0]
    private var currentSection = Section.answer

    init(query: DNSQuery, code: DNSResponseCode, authoritative: Bool, recursionAvailable: Bool, sizeLimit: Int) {
        self.sizeLimit = min(sizeLimit, DNSLimits.maxMessageSize)
        bytes.reserveCapacity(min(self.sizeLimit, 1_232))
        appendUInt16(query.id)
        var flags: UInt16 = 0x8000  // QR: response; opcode 0 (query)
        if authoritative { flags |= 0x0400 }
        if query.recursionDesired { flags |= 0x0100 }
        if recursionAvailable { flags |= 0x0080 }
        flags |= UInt16(code.rawValue)
        appendUInt16(flags)
        appendUInt16(1)  // question count
        bytes.append(contentsOf: [0, 0, 0, 0, 0, 0])  // record counts, patched in `finish`
        var added: [String] = []
        appendName(query.originalName, recording: &added)
        appendUInt16(query.type)
        appendUInt16(query.queryClass)
    }

    var recordCount: Int { counts.reduce(0, +) }

    /// Appends a record to `section` (sections must be filled in order). Returns false, leaving the
    /// message unchanged, when the record does not fit within `sizeLimit`.
    @discardableResult
    mutating func add(_ record: DNSRecord, to section: Section) -> Bool {
        precondition(section >= currentSection, "DNS sections must be written in order")
        currentSection = section
        let checkpoint = bytes.count
        var added: [String] = []
        if case .opt = record.data {
            bytes.append(0)  // the root name
        } else {
            appendName(record.name, recording: &added)
        }
        appendUInt16(record.data.type.rawValue)
        switch record.data {
        case .opt(let size):
            appendUInt16(size)  // class carries the payload size
            appendUInt32(0)  // extended rcode, version 0, no flags
        default:
            appendUInt16(DNSClass.internet)
            appendUInt32(record.ttl)
        }
        let lengthOffset = bytes.count
        appendUInt16(0)
        switch record.data {
        case .a(let address), .aaaa(let address):
            bytes.append(contentsOf: address)
        case .srv(let priority, let weight, let port, let target):
            appendUInt16(priority)
            appendUInt16(weight)
            appendUInt16(port)
            appendName(target, recording: &added, compress: false)  // RFC 2782: no compression in SRV targets
        case .txt(let strings):
            for string in strings {
                // A character-string holds at most 255 bytes; longer text is split across several.
                var remaining = Array(string.utf8)[...]
                repeat {
                    let chunk = remaining.prefix(255)
                    bytes.append(UInt8(chunk.count))
                    bytes.append(contentsOf: chunk)
                    remaining = remaining.dropFirst(chunk.count)
                } while !remaining.isEmpty
            }
        case .soa(let primary, let mailbox, let serial, let refresh, let retry, let expire, let minimum):
            appendName(primary, recording: &added)
            appendName(mailbox, recording: &added)
            for value in [serial, refresh, retry, expire, minimum] { appendUInt32(value) }
        case .ns(let target), .ptr(let target), .cname(let target):
            appendName(target, recording: &added)
        case .opt:
            break
        }
        let dataLength = bytes.count - lengthOffset - 2
        guard bytes.count <= sizeLimit, dataLength <= Int(UInt16.max) else {
            bytes.removeSubrange(checkpoint...)
            for key in added { compression[key] = nil }
            return false
        }
        bytes[lengthOffset] = UInt8(dataLength >> 8)
        bytes[lengthOffset + 1] = UInt8(dataLength & 0xFF)
        counts[section.rawValue] += 1
        return true
    }

    /// The finished message, with the record counts and (when asked) the TC bit set.
    func finish(truncated: Bool = false) -> [UInt8] {
        var message = bytes
        if truncated { message[2] |= 0x02 }
        for (index, count) in counts.enumerated() {
            message[6 + 2 * index] = UInt8(count >> 8)
            message[7 + 2 * index] = UInt8(count & 0xFF)
        }
        return message
    }

    /// A bare response with no records (errors, and answers to unparseable but identifiable queries).
    static func errorResponse(id: UInt16, code: DNSResponseCode) -> [UInt8] {
        [UInt8(id >> 8), UInt8(id & 0xFF), 0x80, code.rawValue, 0, 0, 0, 0, 0, 0, 0, 0]
    }

    // MARK: Encoding helpers

    private mutating func appendUInt16(_ value: UInt16) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(value & 0xFF))
    }

    private mutating func appendUInt32(_ value: UInt32) {
        appendUInt16(UInt16(value >> 16))
        appendUInt16(UInt16(value & 0xFFFF))
    }

    /// Writes `name` (dots between labels, trailing dot optional), reusing an earlier copy of any
    /// suffix through a compression pointer. Labels longer than 63 bytes are cut, so a bad name in
    /// the catalog cannot produce an invalid packet.
    private mutating func appendName(_ name: String, recording added: inout [String], compress: Bool = true) {
        var labels = name.split(separator: ".", omittingEmptySubsequences: true).map { Array($0.utf8.prefix(DNSLimits.maxLabelLength)) }
        // Keep the whole name within 255 bytes on the wire by dropping leading labels if needed.
        while labels.reduce(1, { $0 + $1.count + 1 }) > DNSLimits.maxNameLength { labels.removeFirst() }
        for index in labels.indices {
            let suffix = labels[index...].map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".").lowercasedASCII()
            if compress, let target = compression[suffix] {
                appendUInt16(0xC000 | UInt16(target))
                return
            }
            if bytes.count < 0x3FFF, compression[suffix] == nil {
                compression[suffix] = bytes.count
                added.append(suffix)
            }
            bytes.append(UInt8(labels[index].count))
            bytes.append(contentsOf: labels[index])
        }
        bytes.append(0)
    }
}
