/// The compound wrapper (type 7): `[7][count u8][count × length u16 BE][part 1][part 2]...`, where
/// each part is a whole message with its own type byte. Memberlist piggy-backs gossip on probes
/// with it and packs queued broadcasts into one datagram.
package enum Compound {
    /// Bytes of the compound header (type and count), memberlist's `compoundHeaderOverhead`.
    package static let headerOverhead = 2
    /// Bytes each part adds to the header (its length), memberlist's `compoundOverhead`.
    package static let perPartOverhead = 2

    /// Size of the compound holding parts of these sizes; for packing a datagram up to
    /// `GossipLimits.udpBufferSize` (minus the cipher's overhead) the way memberlist does.
    package static func encodedSize(partSizes: [Int]) -> Int {
        headerOverhead + partSizes.reduce(0) { $0 + perPartOverhead + $1 }
    }

    /// Builds a compound message. Throws rather than silently wrapping the one-byte count or the
    /// two-byte lengths as Go's `makeCompoundMessage` would.
    package static func make(_ parts: [[UInt8]]) throws(GossipCodecError) -> [UInt8] {
        guard parts.count <= 255 else { throw .tooManyCompoundParts(count: parts.count, limit: 255) }
        var output: [UInt8] = [MemberlistMessageType.compound.rawValue, UInt8(parts.count)]
        output.reserveCapacity(2 + parts.reduce(0) { $0 + 2 + $1.count })
        for part in parts {
            guard part.count <= 0xFFFF else { throw .compoundPartTooLarge(size: part.count) }
            output.append(UInt8(part.count >> 8))
            output.append(UInt8(part.count & 0xFF))
        }
        for part in parts { output.append(contentsOf: part) }
        return output
    }

    /// Splits a compound body (the bytes after the type byte) into its parts as ranges of `body`.
    /// Parts whose declared length runs past the end are not returned but counted in `truncated`,
    /// as memberlist does (a sender may cut a datagram short); a missing count or length table is
    /// an error.
    package static func split(_ body: ArraySlice<UInt8>) throws(GossipCodecError) -> (parts: [Range<Int>], truncated: Int) {
        guard let count = body.first.map(Int.init) else { throw .compoundHeaderTruncated }
        let lengthsStart = body.startIndex + 1
        guard body.endIndex - lengthsStart >= count * 2 else { throw .compoundHeaderTruncated }
        var cursor = lengthsStart + count * 2
        var parts: [Range<Int>] = []
        parts.reserveCapacity(count)
        for index in 0..<count {
            let offset = lengthsStart + index * 2
            let length = Int(body[offset]) << 8 | Int(body[offset + 1])
            if body.endIndex - cursor < length {
                return (parts, count - index)
            }
            parts.append(cursor..<cursor + length)
            cursor += length
        }
        return (parts, 0)
    }
}
