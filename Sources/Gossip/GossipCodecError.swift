import ConsulCore

/// Why a packet, stream frame or message was rejected. Peers' bytes end here or in a value; the
/// codec never traps on them.
package enum GossipCodecError: Error, Equatable, Sendable {
    /// A packet or part with no bytes at all (not even a type byte).
    case empty
    case packetTooLarge(size: Int, limit: Int)
    /// The first byte is not a memberlist message type.
    case unknownMessageType(UInt8)
    /// A known type that cannot appear where it was found (push/pull in a datagram, a wrapper
    /// where a plain message was expected, a CRC wrapper inside a compound).
    case unexpectedMessageType(MemberlistMessageType)
    case malformedBody(MemberlistMessageType, MessagePackError)
    case checksumMismatch(expected: UInt32, actual: UInt32)
    case truncatedChecksumHeader
    case compoundHeaderTruncated
    case tooManyCompoundParts(count: Int, limit: Int)
    case compoundPartTooLarge(size: Int)
    case wrapperTooDeep(limit: Int)
    case tooManyMessages(limit: Int)
    case unknownCompressionAlgorithm(Int)
    case lzw(LZWError)
    case decompressedTooLarge(limit: Int)
    /// The cipher could not open the envelope (wrong key, tampering, not encrypted).
    case decryptionFailed(String)
    case encryptionFailed(String)
    /// A plaintext stream arrived while encryption with incoming verification is on.
    case plaintextRejected
    /// An encrypted stream arrived but no cipher is configured.
    case encryptedButNoKeys
    case streamFrameTooLarge(size: Int, limit: Int)
    /// A field value outside what the protocol allows (negative length, meta too large, ...).
    case invalidField(String)
    /// Serf layer: the payload's first byte is not a serf message type.
    case unknownSerfMessageType(UInt8)
    case malformedSerfBody(SerfMessageType, MessagePackError)
}
