/// IP address text ⇄ bytes for DNS answers, without Foundation (the resolver runs on the DNS event
/// loop for every query, and the catalog stores addresses as text).
enum DNSAddress {
    /// The 4 or 16 bytes of an IPv4 or IPv6 address in text form, or nil for anything else
    /// (a hostname, garbage). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) counts as IPv4, as Go's
    /// `net.IP.To4` treats it in Consul.
    static func parse(_ text: String) -> [UInt8]? {
        var utf8 = Array(text.utf8)
        // A zone (`fe80::1%eth0`) is not part of the address.
        if let percent = utf8.firstIndex(of: UInt8(ascii: "%")) { utf8.removeSubrange(percent...) }
        if let v4 = parseIPv4(utf8[...]) { return v4 }
        guard let v6 = parseIPv6(utf8[...]) else { return nil }
        if v6[0..<10].allSatisfy({ $0 == 0 }), v6[10] == 0xFF, v6[11] == 0xFF { return Array(v6[12..<16]) }
        return v6
    }

    private static func parseIPv4(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var result: [UInt8] = []
        result.reserveCapacity(4)
        var value = 0
        var digits = 0
        for byte in text {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, result.count < 3 else { return nil }
                result.append(UInt8(value))
                value = 0
                digits = 0
            } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                // No leading zeros (they would mean octal to some parsers), at most 255.
                if digits > 0, value == 0 { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
                digits += 1
                guard value <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, result.count == 3 else { return nil }
        result.append(UInt8(value))
        return result
    }

    private static func parseIPv6(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard text.count >= 2, text.count <= 45 else { return nil }
        var head: [UInt16] = []  // groups before "::"
        var tail: [UInt16] = []  // groups after "::"
        var sawGap = false
        var index = text.startIndex
        if text[index] == UInt8(ascii: ":") {
            guard text[index + 1] == UInt8(ascii: ":") else { return nil }
            sawGap = true
            index += 2
        }
        var embeddedV4: [UInt8]?
        while index < text.endIndex {
            // One group: up to 4 hex digits, or an embedded IPv4 address at the very end.
            var end = index
            while end < text.endIndex, text[end] != UInt8(ascii: ":") { end += 1 }
            let group = text[index..<end]
            if group.contains(UInt8(ascii: ".")) {
                guard end == text.endIndex, let v4 = parseIPv4(group) else { return nil }
                embeddedV4 = v4
                index = end
                break
            }
            guard !group.isEmpty, group.count <= 4 else { return nil }
            var value: UInt16 = 0
            for byte in group {
                guard let nibble = hexValue(byte) else { return nil }
                value = value << 4 | UInt16(nibble)
            }
            if sawGap { tail.append(value) } else { head.append(value) }
            index = end
            if index < text.endIndex {
                index += 1  // the ':'
                if index < text.endIndex, text[index] == UInt8(ascii: ":") {
                    guard !sawGap else { return nil }
                    sawGap = true
                    index += 1
                } else if index == text.endIndex {
                    return nil  // a trailing single ':'
                }
            }
        }
        let groups = head.count + tail.count + (embeddedV4 == nil ? 0 : 2)
        guard sawGap ? groups < 8 : groups == 8 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for value in head { bytes += [UInt8(value >> 8), UInt8(value & 0xFF)] }
        if sawGap { bytes += [UInt8](repeating: 0, count: 2 * (8 - groups)) }
        for value in tail { bytes += [UInt8(value >> 8), UInt8(value & 0xFF)] }
        if let embeddedV4 { bytes += embeddedV4 }
        return bytes
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

    /// Lower-case hex of the address bytes: the label Consul uses in `<hex>.addr.<dc>.<domain>`.
    static func hex(_ bytes: [UInt8]) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The address of an `<hex>.addr` label: 8 hex digits for IPv4, 32 for IPv6.
    static func fromHex(_ label: Substring) -> [UInt8]? {
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
        return bytes
    }

    /// The address named by a reverse-lookup name (lower-cased, no trailing dot):
    /// `4.3.2.1.in-addr.arpa` or the 32 nibbles of `….ip6.arpa`. Nil for partial or bad names.
    static func fromReverseName(_ name: String) -> [UInt8]? {
        if name.hasSuffix(".in-addr.arpa") {
            let labels = name.dropLast(".in-addr.arpa".count).split(separator: ".", omittingEmptySubsequences: false)
            guard labels.count == 4 else { return nil }
            return parseIPv4(Array(labels.reversed().joined(separator: ".").utf8)[...])
        }
        if name.hasSuffix(".ip6.arpa") {
            let labels = name.dropLast(".ip6.arpa".count).split(separator: ".", omittingEmptySubsequences: false)
            guard labels.count == 32 else { return nil }
            var nibbles: [UInt8] = []
            for label in labels.reversed() {
                guard label.utf8.count == 1, let nibble = hexValue(label.utf8.first!) else { return nil }
                nibbles.append(nibble)
            }
            return stride(from: 0, to: 32, by: 2).map { nibbles[$0] << 4 | nibbles[$0 + 1] }
        }
        return nil
    }

    /// Canonical text of an address (dotted quad; RFC 5952 for IPv6: lower case, longest run of
    /// zero groups as `::`), which is how the catalog is asked for a node by address.
    static func text(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map { String($0) }.joined(separator: ".") }
        guard bytes.count == 16 else { return "" }
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
