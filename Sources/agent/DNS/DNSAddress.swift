/// An IPv4 or IPv6 address as plain integers: what A and AAAA records carry. A value type with no
/// heap storage, because every service answer parses one per instance.
enum DNSIP: Hashable, Sendable {
    case v4(UInt32)
    case v6(UInt64, UInt64)

    var isV4: Bool {
        if case .v4 = self { return true }
        return false
    }

    /// Network-order bytes (4 or 16).
    var bytes: [UInt8] {
        switch self {
        case .v4(let value):
            return (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }
        case .v6(let high, let low):
            return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
                + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
        }
    }

    /// From 4 or 16 network-order bytes.
    init?(bytes: some Collection<UInt8>) {
        switch bytes.count {
        case 4:
            self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            let high = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = bytes.dropFirst(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .v6(high, low)
        default:
            return nil
        }
    }
}

/// IP address text ⇄ values for DNS answers, without Foundation and without allocating on the
/// parsing side (the catalog stores addresses as text and every answer reads them).
enum DNSAddress {
    /// The address in `text` (IPv4 dotted quad or IPv6, a `%zone` ignored), or nil for anything
    /// else (a hostname, garbage). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) counts as IPv4,
    /// as Go's `net.IP.To4` treats it in Consul.
    static func parse(_ text: String) -> DNSIP? {
        var text = text
        return text.withUTF8 { utf8 -> DNSIP? in
            var end = utf8.count
            if let percent = utf8.firstIndex(of: UInt8(ascii: "%")) { end = percent }
            let slice = UnsafeBufferPointer(rebasing: utf8[0..<end])
            if let v4 = parseIPv4(slice) { return .v4(v4) }
            guard let (high, low) = parseIPv6(slice) else { return nil }
            if high == 0, low >> 32 == 0xFFFF { return .v4(UInt32(truncatingIfNeeded: low)) }
            return .v6(high, low)
        }
    }

    private static func parseIPv4(_ text: UnsafeBufferPointer<UInt8>) -> UInt32? {
        var result: UInt32 = 0
        var parts = 0
        var value: UInt32 = 0
        var digits = 0
        for byte in text {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                result = result << 8 | value
                parts += 1
                value = 0
                digits = 0
            } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                // No leading zeros (they would mean octal to some parsers), at most 255.
                if digits > 0, value == 0 { return nil }
                value = value * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                guard value <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return result << 8 | value
    }

    /// The 8 groups of an IPv6 address as two 64-bit halves.
    private static func parseIPv6(_ text: UnsafeBufferPointer<UInt8>) -> (UInt64, UInt64)? {
        guard text.count >= 2, text.count <= 45 else { return nil }
        // Groups before "::" go to `head`, after it to `tail` (each as one 128-bit accumulator
        // shifted left per group), plus an embedded IPv4 address at the very end.
        var head: (UInt64, UInt64) = (0, 0)
        var tail: (UInt64, UInt64) = (0, 0)
        var headGroups = 0
        var tailGroups = 0
        var sawGap = false
        var index = 0
        func push(_ value: UInt64, into pair: inout (UInt64, UInt64)) {
            pair = (pair.0 << 16 | pair.1 >> 48, pair.1 << 16 | value)
        }
        if text[0] == UInt8(ascii: ":") {
            guard text[1] == UInt8(ascii: ":") else { return nil }
            sawGap = true
            index = 2
        }
        while index < text.count {
            var end = index
            while end < text.count, text[end] != UInt8(ascii: ":") { end += 1 }
            let group = UnsafeBufferPointer(rebasing: text[index..<end])
            if group.contains(UInt8(ascii: ".")) {
                guard end == text.count, let v4 = parseIPv4(group) else { return nil }
                if sawGap {
                    push(UInt64(v4 >> 16), into: &tail)
                    push(UInt64(v4 & 0xFFFF), into: &tail)
                    tailGroups += 2
                } else {
                    push(UInt64(v4 >> 16), into: &head)
                    push(UInt64(v4 & 0xFFFF), into: &head)
                    headGroups += 2
                }
                index = end
                break
            }
            guard !group.isEmpty, group.count <= 4 else { return nil }
            var value: UInt64 = 0
            for byte in group {
                guard let nibble = hexValue(byte) else { return nil }
                value = value << 4 | UInt64(nibble)
            }
            if sawGap {
                push(value, into: &tail)
                tailGroups += 1
            } else {
                push(value, into: &head)
                headGroups += 1
            }
            index = end
            if index < text.count {
                index += 1  // the ':'
                if index < text.count, text[index] == UInt8(ascii: ":") {
                    guard !sawGap else { return nil }
                    sawGap = true
                    index += 1
                } else if index == text.count {
                    return nil  // a trailing single ':'
                }
            }
        }
        let groups = headGroups + tailGroups
        guard sawGap ? groups < 8 : groups == 8 else { return nil }
        // Move the head groups to the top: shift left by the groups that follow them.
        var result = head
        for _ in 0..<(8 - headGroups) { push(0, into: &result) }
        return (result.0 | tail.0, result.1 | tail.1)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Lower-case hex of the address: the label Consul uses in `<hex>.addr.<dc>.<domain>`.
    static func hex(_ ip: DNSIP) -> String {
        let bytes = ip.bytes
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The address of an `<hex>.addr` label: 8 hex digits for IPv4, 32 for IPv6.
    static func fromHex(_ label: Substring) -> DNSIP? {
        let utf8 = Array(label.utf8)
        guard utf8.count == 8 || utf8.count == 32 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = hexValue(utf8[index]), let low = hexValue(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return DNSIP(bytes: bytes)
    }

    /// The address named by a reverse-lookup name (lower-cased, no trailing dot):
    /// `4.3.2.1.in-addr.arpa` or the 32 nibbles of `….ip6.arpa`. Nil for partial or bad names.
    static func fromReverseName(_ name: String) -> DNSIP? {
        if name.hasSuffix(".in-addr.arpa") {
            let labels = name.dropLast(".in-addr.arpa".count).split(separator: ".", omittingEmptySubsequences: false)
            guard labels.count == 4 else { return nil }
            return parse(labels.reversed().joined(separator: ".")).flatMap { $0.isV4 ? $0 : nil }
        }
        if name.hasSuffix(".ip6.arpa") {
            let labels = name.dropLast(".ip6.arpa".count).split(separator: ".", omittingEmptySubsequences: false)
            guard labels.count == 32 else { return nil }
            var nibbles: [UInt8] = []
            for label in labels.reversed() {
                guard label.utf8.count == 1, let nibble = hexValue(label.utf8.first!) else { return nil }
                nibbles.append(nibble)
            }
            return DNSIP(bytes: stride(from: 0, to: 32, by: 2).map { nibbles[$0] << 4 | nibbles[$0 + 1] })
        }
        return nil
    }

    /// Canonical text of an address (dotted quad; RFC 5952 for IPv6: lower case, longest run of
    /// zero groups as `::`), which is how the catalog is asked for a node by address.
    static func text(_ ip: DNSIP) -> String {
        let bytes = ip.bytes
        if bytes.count == 4 { return bytes.map { String($0) }.joined(separator: ".") }
        let groups = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        // The longest run of two or more zero groups (the first one on a tie) becomes "::".
        var bestStart = -1
        var bestLength = 1
        var index = 0
        while index < 8 {
            if groups[index] == 0 {
                var end = index
                while end < 8, groups[end] == 0 { end += 1 }
                if end - index > bestLength {
                    bestStart = index
                    bestLength = end - index
                }
                index = end
            } else {
                index += 1
            }
        }
        func render(_ range: Range<Int>) -> String {
            range.map { String(groups[$0], radix: 16) }.joined(separator: ":")
        }
        if bestStart < 0 { return render(0..<8) }
        return render(0..<bestStart) + "::" + render((bestStart + bestLength)..<8)
    }
}
