import ConsulCore

/// Why a packet, stream frame or message was rejected. Peers' bytes end here or in a value; the
/// codec never traps on them.
package enum GossipCodecError: Error, Equatable, Sendable {
    /// A packet or part with no bytes at all (not even a type byte).
    case empty
    /// A datagram (or a user payload) above `GossipLimits.maxPacketBytes`.
    case packetTooLarge(size: Int, limit: Int)
    /// The first byte is not a memberlist message type.
    case unknownMessageType(UInt8)
    /// A known type that cannot appear where it was found (push/pull in a datagram, a wrapper
    /// where a plain message was expected, a CRC wrapper inside a compound).
    case unexpectedMessageType(MemberlistMessageType)
    /// The msgpack body of a message of this type did not decode.
    case malformedBody(MemberlistMessageType, MessagePackError)
    /// The `hasCrc` wrapper's CRC does not match the rest of the datagram (memberlist drops it).
    case checksumMismatch(expected: UInt32, actual: UInt32)
    /// A `hasCrc` type byte with fewer than four checksum bytes after it.
    case truncatedChecksumHeader
    /// A compound message without its count byte or with a short length table.
    case compoundHeaderTruncated
    /// More compound parts than `GossipLimits.maxCompoundParts` (or than one count byte can say).
    case tooManyCompoundParts(count: Int, limit: Int)
    /// An outgoing part longer than a compound's 16-bit length field.
    case compoundPartTooLarge(size: Int)
    /// Compound/compress wrappers nested deeper than `GossipLimits.maxWrapperDepth`.
    case wrapperTooDeep(limit: Int)
    /// One datagram expanded to more than `GossipLimits.maxMessagesPerPacket` messages.
    case tooManyMessages(limit: Int)
    /// A compress wrapper with an algorithm other than LZW (0).
    case unknownCompressionAlgorithm(Int)
    /// The LZW stream inside a compress wrapper is corrupt.
    case lzw(LZWError)
    /// Inflating would exceed the packet's or stream's decompression bound.
    case decompressedTooLarge(limit: Int)
    /// The cipher could not open the envelope (wrong key, tampering, not encrypted).
    case decryptionFailed(String)
    /// The cipher failed to seal (or produced an envelope of a length it did not announce).
    case encryptionFailed(String)
    /// A plaintext stream arrived while encryption with incoming verification is on.
    case plaintextRejected
    /// An encrypted stream arrived but no cipher is configured.
    case encryptedButNoKeys
    /// A stream frame or plaintext stream message larger than `GossipLimits.maxStreamBytes`.
    case streamFrameTooLarge(size: Int, limit: Int)
    /// A field value outside what the protocol allows (negative length, meta too large, ...).
    case invalidField(String)
    /// Serf layer: the payload's first byte is not a serf message type.
    case unknownSerfMessageType(UInt8)
    /// Serf layer: the msgpack body of a serf message of this type did not decode.
    case malformedSerfBody(SerfMessageType, MessagePackError)
}
