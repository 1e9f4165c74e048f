/// One resource record to put in an answer.
struct DNSRecord: Equatable, Sendable {
    enum Data: Equatable, Sendable {
        /// An A or AAAA record, by the address's family.
        case address(DNSIP)
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
            case .address(let ip): return ip.isV4 ? .a : .aaaa
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
    /// Offsets of every name suffix written so far (each a label followed by the rest of its
    /// name), in increasing order: the candidates for compression pointers.
    private var suffixOffsets: [Int] = []
    private var answerCount = 0
    private var authorityCount = 0
    private var additionalCount = 0
    private var currentSection = Section.answer
    /// The question's name, written at offset 12: records named like it (most answers) point there.
    private let questionName: String
    /// Where the target of the last SRV record added starts.
    private(set) var lastTargetOffset: Int?

    init(query: DNSQuery, code: DNSResponseCode, authoritative: Bool, recursionAvailable: Bool, sizeLimit: Int) {
        self.sizeLimit = min(sizeLimit, DNSLimits.maxMessageSize)
        questionName = query.originalName
        bytes.reserveCapacity(min(self.sizeLimit, DNSLimits.classicUDPSize))
        suffixOffsets.reserveCapacity(16)
        appendUInt16(query.id)
        var flags: UInt16 = 0x8000  // QR: response; opcode 0 (query)
        if authoritative { flags |= 0x0400 }
        if query.recursionDesired { flags |= 0x0100 }
        if recursionAvailable { flags |= 0x0080 }
        flags |= UInt16(code.rawValue)
        appendUInt16(flags)
        appendUInt16(1)  // question count
        bytes.append(contentsOf: [0, 0, 0, 0, 0, 0])  // record counts, patched in `finish`
        appendName(query.originalName)
        appendUInt16(query.type)
        appendUInt16(query.queryClass)
    }

    /// Appends a record to `section` (sections must be filled in order). Returns false, leaving the
    /// message unchanged, when the record does not fit within `sizeLimit`.
    ///
    /// `nameAt` is where the caller knows the record's name was written in full (an SRV target,
    /// from `lastTargetOffset`): the name becomes a pointer there without searching, which keeps
    /// long answers linear. It must be the first place that name appears, as the search would find.
    @discardableResult
    mutating func add(_ record: DNSRecord, to section: Section, nameAt knownOffset: Int? = nil) -> Bool {
        precondition(section >= currentSection, "DNS sections must be written in order")
        currentSection = section
        let checkpoint = bytes.count
        let suffixCheckpoint = suffixOffsets.count
        if case .opt = record.data {
            bytes.append(0)  // the root name
        } else if record.name == questionName {
            appendUInt16(0xC000 | 12)
        } else if let knownOffset, knownOffset < DNSLimits.maxCompressionOffset {
            appendUInt16(0xC000 | UInt16(knownOffset))
        } else {
            appendName(record.name)
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
        case .address(.v4(let value)):
            appendUInt32(value)
        case .address(.v6(let high, let low)):
            appendUInt32(UInt32(truncatingIfNeeded: high >> 32))
            appendUInt32(UInt32(truncatingIfNeeded: high))
            appendUInt32(UInt32(truncatingIfNeeded: low >> 32))
            appendUInt32(UInt32(truncatingIfNeeded: low))
        case .srv(let priority, let weight, let port, let target):
            appendUInt16(priority)
            appendUInt16(weight)
            appendUInt16(port)
            lastTargetOffset = bytes.count
            appendName(target, compress: false)  // RFC 2782: no compression in SRV targets
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
            appendName(primary)
            appendName(mailbox)
            for value in [serial, refresh, retry, expire, minimum] { appendUInt32(value) }
        case .ns(let target), .ptr(let target), .cname(let target):
            appendName(target)
        case .opt:
            break
        }
        let dataLength = bytes.count - lengthOffset - 2
        guard bytes.count <= sizeLimit, dataLength <= Int(UInt16.max) else {
            bytes.removeSubrange(checkpoint...)
            suffixOffsets.removeSubrange(suffixCheckpoint...)
            return false
        }
        bytes[lengthOffset] = UInt8(dataLength >> 8)
        bytes[lengthOffset + 1] = UInt8(dataLength & 0xFF)
        count(section)
        return true
    }

    var byteCount: Int { bytes.count }

    func byte(at offset: Int) -> UInt8 { bytes[offset] }

    /// Appends an already encoded record (a compiled answer's); the caller checked the size.
    mutating func appendRaw(_ record: UnsafeBufferPointer<UInt8>, to section: Section) {
        precondition(section >= currentSection, "DNS sections must be written in order")
        currentSection = section
        bytes.append(contentsOf: record)
        count(section)
    }

    /// Appends a record whose name is a pointer to `offset` followed by its encoded rest.
    mutating func appendRecord(namedByPointerTo offset: Int, tail: UnsafeBufferPointer<UInt8>, to section: Section) {
        precondition(section >= currentSection && offset < DNSLimits.maxCompressionOffset)
        currentSection = section
        appendUInt16(0xC000 | UInt16(offset))
        bytes.append(contentsOf: tail)
        count(section)
    }

    private mutating func count(_ section: Section) {
        switch section {
        case .answer: answerCount += 1
        case .authority: authorityCount += 1
        case .additional: additionalCount += 1
        }
    }

    /// The finished message, with the record counts and (when asked) the TC bit set. Patches the
    /// buffer in place and hands it over (the writer is done after this).
    mutating func finish(truncated: Bool = false) -> [UInt8] {
        if truncated { bytes[2] |= 0x02 }
        bytes[6] = UInt8(answerCount >> 8)
        bytes[7] = UInt8(answerCount & 0xFF)
        bytes[8] = UInt8(authorityCount >> 8)
        bytes[9] = UInt8(authorityCount & 0xFF)
        bytes[10] = UInt8(additionalCount >> 8)
        bytes[11] = UInt8(additionalCount & 0xFF)
        return bytes
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

    /// Writes `name` (dots between labels, trailing dot optional), reusing an earlier copy of its
    /// longest already-written suffix through a compression pointer. Works on the name's bytes
    /// and the message itself, without building strings: this runs for every record of every
    /// answer. Labels longer than 63 bytes are cut and leading labels dropped to keep the name
    /// within 255 bytes, so a bad name in the catalog cannot produce an invalid packet.
    private mutating func appendName(_ name: String, compress: Bool = true) {
        var name = name
        name.withUTF8 { appendName($0, compress: compress) }
    }

    private mutating func appendName(_ name: UnsafeBufferPointer<UInt8>, compress: Bool) {
        // Skip leading labels until the rest fits in 255 bytes on the wire.
        var start = 0
        while Self.wireLength(name, from: start) > DNSLimits.maxNameLength {
            start = Self.nextLabel(name, after: start)
        }
        var label = Self.skipDots(name, from: start)
        let nameStart = bytes.count
        while label < name.count {
            if compress, let target = findSuffix(name, from: label, before: nameStart) {
                appendUInt16(0xC000 | UInt16(target))
                return
            }
            if bytes.count < DNSLimits.maxCompressionOffset { suffixOffsets.append(bytes.count) }
            var end = label
            while end < name.count, name[end] != UInt8(ascii: ".") { end += 1 }
            let length = min(end - label, DNSLimits.maxLabelLength)
            bytes.append(UInt8(length))
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: name[label..<(label + length)]))
            label = Self.skipDots(name, from: end)
        }
        bytes.append(0)
    }

    /// The offset of an earlier copy of the name's labels from `label` to the end, if any, among
    /// the complete names written before `limit` (the name being written is not complete yet).
    /// Only the first `maxCompressionCandidates` suffixes are searched, which keeps a long TCP
    /// answer linear; the names repeated late in one (SRV targets in glue records) are pointed at
    /// directly by `add(_:to:nameAt:)`, and the shared suffixes (`node.dc1.consul`) come early.
    private func findSuffix(_ name: UnsafeBufferPointer<UInt8>, from label: Int, before limit: Int) -> Int? {
        for offset in suffixOffsets.prefix(DNSLimits.maxCompressionCandidates) {
            if offset >= limit { break }
            if matches(name, from: label, at: offset) { return offset }
        }
        return nil
    }

    /// Whether the labels written at `offset` (following pointers) equal the name's labels from
    /// `label` on, ignoring ASCII case.
    private func matches(_ name: UnsafeBufferPointer<UInt8>, from label: Int, at offset: Int) -> Bool {
        var position = offset
        var current = label
        var hops = 0
        while true {
            var length = Int(bytes[position])
            while length & 0xC0 == 0xC0 {
                hops += 1
                guard hops <= DNSLimits.maxPointerHops else { return false }
                position = (length & 0x3F) << 8 | Int(bytes[position + 1])
                length = Int(bytes[position])
            }
            if current >= name.count { return length == 0 }
            var end = current
            while end < name.count, name[end] != UInt8(ascii: ".") { end += 1 }
            guard min(end - current, DNSLimits.maxLabelLength) == length else { return false }
            for index in 0..<length {
                var a = name[current + index], b = bytes[position + 1 + index]
                if a >= 0x41, a <= 0x5A { a |= 0x20 }
                if b >= 0x41, b <= 0x5A { b |= 0x20 }
                guard a == b else { return false }
            }
            position += 1 + length
            current = Self.skipDots(name, from: end)
        }
    }

    private static func skipDots(_ name: UnsafeBufferPointer<UInt8>, from index: Int) -> Int {
        var index = index
        while index < name.count, name[index] == UInt8(ascii: ".") { index += 1 }
        return index
    }

    private static func nextLabel(_ name: UnsafeBufferPointer<UInt8>, after index: Int) -> Int {
        var index = skipDots(name, from: index)
        while index < name.count, name[index] != UInt8(ascii: ".") { index += 1 }
        return skipDots(name, from: index)
    }

    /// Bytes the labels from `start` take on the wire, with the final zero.
    private static func wireLength(_ name: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        var total = 1
        var index = skipDots(name, from: start)
        while index < name.count {
            var end = index
            while end < name.count, name[end] != UInt8(ascii: ".") { end += 1 }
            total += 1 + min(end - index, DNSLimits.maxLabelLength)
            index = skipDots(name, from: end)
        }
        return total
    }
}
