import ConsulCore

/// The seam where gossip encryption plugs in. The keyring (ConsulCrypto) conforms to this in the
/// shell; the codec only decides *where* in the pipeline sealing happens and what the additional
/// authenticated data is (none for UDP, the 5-byte frame header for TCP).
///
/// An envelope is memberlist's `[version][nonce][ciphertext][tag]`; its layout is the cipher's
/// business, except that a stream frame header carries the envelope length before sealing.
package protocol GossipCipher: Sendable {
    /// The envelope length `seal` produces for `plaintextLength` bytes (version 1: +29).
    func sealedLength(plaintextLength: Int) -> Int
    /// Encrypts with the primary key.
    func seal(_ plaintext: [UInt8], additionalData: [UInt8]) throws -> [UInt8]
    /// Decrypts with any installed key; throws when none fits.
    func open(_ envelope: [UInt8], additionalData: [UInt8]) throws -> [UInt8]
}

/// A datagram after all wrappers were removed.
package struct DecodedPacket: Equatable, Sendable {
    /// The messages in wire order, compound parts flattened.
    package var messages: [MemberlistMessage] = []
    /// Compound parts whose declared length ran past the end of the data (memberlist logs and
    /// drops these; a count rather than an error because the rest of the packet is still good).
    package var truncatedParts = 0
    /// Compound parts that were present but malformed; the other parts are still delivered, as
    /// memberlist handles each part on its own.
    package var rejectedParts: [GossipCodecError] = []
    /// Whether a `hasCrc` wrapper was present (and matched).
    package var hadChecksum = false
    /// Whether any compress wrapper was peeled off.
    package var wasCompressed = false
}

/// What to do to an outgoing datagram after the messages are packed.
package struct OutboundPacketOptions: Sendable {
    /// Compress with LZW when that makes the datagram smaller (memberlist `EnableCompression`).
    package var compress: Bool
    /// Prefix a CRC; memberlist does so when the destination node advertises protocol max >= 5.
    package var checksum: Bool

    package init(compress: Bool, checksum: Bool) {
        self.compress = compress
        self.checksum = checksum
    }
}

/// Datagram (UDP) pipeline, both directions.
///
/// - Outbound: messages → compound (if more than one) → compress if smaller → CRC → encrypt.
/// - Inbound: decrypt → verify and strip CRC → dispatch on type, peeling compress and compound.
package struct PacketCodec: Sendable {
    package var limits: GossipLimits

    package init(limits: GossipLimits = .default) {
        self.limits = limits
    }

    /// Builds one datagram from already encoded messages (each with its type byte).
    package func encode(
        _ messages: [[UInt8]], options: OutboundPacketOptions, cipher: (any GossipCipher)?
    ) throws(GossipCodecError) -> [UInt8] {
        guard !messages.isEmpty else { throw .empty }
        var packet = messages.count == 1 ? messages[0] : try Compound.make(messages)
        if options.compress {
            let compressed = Compression.wrap(packet)
            if compressed.count < packet.count { packet = compressed }
        }
        if options.checksum {
            packet = PacketCodec.withChecksum(packet)
        }
        if let cipher {
            do {
                packet = try cipher.seal(packet, additionalData: [])
            } catch {
                throw .encryptionFailed(String(describing: error))
            }
        }
        return packet
    }

    /// Decodes a received datagram.
    ///
    /// With a cipher, the datagram must decrypt unless `verifyIncoming` is false, in which case a
    /// datagram that does not decrypt is read as plaintext (memberlist's `GossipVerifyIncoming`,
    /// used while rolling encryption out).
    package func decode(
        _ datagram: [UInt8], cipher: (any GossipCipher)?, verifyIncoming: Bool = true
    ) throws(GossipCodecError) -> DecodedPacket {
        guard datagram.count <= limits.maxPacketBytes else {
            throw .packetTooLarge(size: datagram.count, limit: limits.maxPacketBytes)
        }
        var plain = datagram
        if let cipher {
            do {
                plain = try cipher.open(datagram, additionalData: [])
            } catch {
                if verifyIncoming { throw .decryptionFailed(String(describing: error)) }
            }
        }
        var packet = DecodedPacket()
        var start = 0
        if plain.count >= 5 && plain[0] == MemberlistMessageType.hasCrc.rawValue {
            let expected = UInt32(plain[1]) << 24 | UInt32(plain[2]) << 16 | UInt32(plain[3]) << 8 | UInt32(plain[4])
            let actual = CRC32.checksum(plain[5...])
            guard expected == actual else { throw .checksumMismatch(expected: expected, actual: actual) }
            packet.hadChecksum = true
            start = 5
        } else if plain.first == MemberlistMessageType.hasCrc.rawValue {
            throw .truncatedChecksumHeader
        }
        var inflateBudget = limits.maxDecompressedPacketBytes
        try dispatch(plain, range: start..<plain.count, depth: 0, into: &packet, inflateBudget: &inflateBudget)
        return packet
    }

    /// `[12][crc32 BE of message][message]`.
    package static func withChecksum(_ message: [UInt8]) -> [UInt8] {
        let crc = CRC32.checksum(message)
        var output: [UInt8] = [MemberlistMessageType.hasCrc.rawValue,
                               UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)]
        output.append(contentsOf: message)
        return output
    }

    /// memberlist's `handleCommand`: wrappers recurse, plain messages are decoded. Errors inside a
    /// compound part are recorded and the other parts still delivered; at top level they throw.
    /// `inflateBudget` is shared by every compress wrapper in the datagram, so nesting compressed
    /// parts inside a compound cannot multiply the decompression bound.
    private func dispatch(
        _ bytes: [UInt8], range: Range<Int>, depth: Int, into packet: inout DecodedPacket, inflateBudget: inout Int
    ) throws(GossipCodecError) {
        guard let first = range.first.map({ bytes[$0] }) else { throw .empty }
        switch MemberlistMessageType(rawValue: first) {
        case .compound?:
            guard depth < limits.maxWrapperDepth else { throw .wrapperTooDeep(limit: limits.maxWrapperDepth) }
            let (parts, truncated) = try Compound.split(bytes[range.lowerBound + 1..<range.upperBound])
            guard parts.count + truncated <= limits.maxCompoundParts else {
                throw .tooManyCompoundParts(count: parts.count + truncated, limit: limits.maxCompoundParts)
            }
            packet.truncatedParts += truncated
            for part in parts {
                do {
                    try dispatch(bytes, range: part, depth: depth + 1, into: &packet, inflateBudget: &inflateBudget)
                } catch {
                    switch error {
                    case .tooManyMessages, .decompressedTooLarge: throw error  // packet-wide limits
                    default: break
                    }
                    packet.rejectedParts.append(error)
                    if packet.rejectedParts.count + packet.messages.count > limits.maxMessagesPerPacket {
                        throw .tooManyMessages(limit: limits.maxMessagesPerPacket)
                    }
                }
            }
        case .compress?:
            guard depth < limits.maxWrapperDepth else { throw .wrapperTooDeep(limit: limits.maxWrapperDepth) }
            let inflated: [UInt8]
            do {
                inflated = try Compression.unwrap(
                    bytes, range: range.lowerBound + 1..<range.upperBound,
                    maxOutput: inflateBudget, limits: limits.messagePack)
            } catch .decompressedTooLarge {
                throw .decompressedTooLarge(limit: limits.maxDecompressedPacketBytes)
            }
            inflateBudget -= inflated.count
            packet.wasCompressed = true
            try dispatch(inflated, range: 0..<inflated.count, depth: depth + 1, into: &packet, inflateBudget: &inflateBudget)
        default:
            let message = try MemberlistMessage.decode(bytes, range: range, limits: limits.messagePack)
            guard packet.messages.count + packet.rejectedParts.count < limits.maxMessagesPerPacket else {
                throw .tooManyMessages(limit: limits.maxMessagesPerPacket)
            }
            packet.messages.append(message)
        }
    }
}
