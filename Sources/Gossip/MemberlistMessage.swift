import ConsulCore

/// One memberlist message that can travel in a datagram, decoded. Wrappers (compound, compress,
/// CRC, encryption) are peeled off by `PacketCodec`; push/pull travels only on streams
/// (`StreamMessage`).
package enum MemberlistMessage: Hashable, Sendable {
    case ping(PingMessage)
    case indirectPing(IndirectPingMessage)
    case ack(AckMessage)
    case nack(NackMessage)
    case suspect(SuspectMessage)
    case alive(AliveMessage)
    case dead(DeadMessage)
    /// A delegate (serf) message: the bytes after the type byte, opaque to memberlist.
    case user([UInt8])
    case error(ErrorMessage)

    package var type: MemberlistMessageType {
        switch self {
        case .ping: .ping
        case .indirectPing: .indirectPing
        case .ack: .ack
        case .nack: .nack
        case .suspect: .suspect
        case .alive: .alive
        case .dead: .dead
        case .user: .user
        case .error: .error
        }
    }

    /// Type byte followed by the msgpack body (or the raw payload for `.user`) — Go's `encode`.
    package var encoded: [UInt8] {
        var writer = MessagePackWriter(prefix: [type.rawValue])
        switch self {
        case .ping(let body): body.write(to: &writer)
        case .indirectPing(let body): body.write(to: &writer)
        case .ack(let body): body.write(to: &writer)
        case .nack(let body): body.write(to: &writer)
        case .suspect(let body): body.write(to: &writer)
        case .alive(let body): body.write(to: &writer)
        case .dead(let body): body.write(to: &writer)
        case .user(let payload): writer.writeEncoded(payload)
        case .error(let body): body.write(to: &writer)
        }
        return writer.bytes
    }

    /// Decodes one plain message occupying `bytes[range]` (type byte first). Like Go's decoder,
    /// bytes after the msgpack body are ignored. Wrapper and stream-only types are rejected with
    /// `unexpectedMessageType`.
    package static func decode(
        _ bytes: [UInt8], range: Range<Int>? = nil, limits: MessagePackLimits = GossipLimits.defaultMessagePack
    ) throws(GossipCodecError) -> MemberlistMessage {
        let span = range ?? bytes.startIndex..<bytes.endIndex
        guard span.lowerBound >= bytes.startIndex, span.upperBound <= bytes.endIndex else {
            throw .invalidField("message range \(span) outside \(bytes.count) bytes")
        }
        guard let first = span.first.map({ bytes[$0] }) else { throw .empty }
        guard let type = MemberlistMessageType(rawValue: first) else { throw .unknownMessageType(first) }
        let body = span.lowerBound + 1..<span.upperBound
        func read<T: MessagePackStruct>(_: T.Type) throws(GossipCodecError) -> T {
            do {
                var reader = try MessagePackReader(bytes, range: body, limits: limits)
                return try T(from: &reader)
            } catch {
                throw .malformedBody(type, error)
            }
        }
        switch type {
        case .ping: return .ping(try read(PingMessage.self))
        case .indirectPing: return .indirectPing(try read(IndirectPingMessage.self))
        case .ack: return .ack(try read(AckMessage.self))
        case .nack: return .nack(try read(NackMessage.self))
        case .suspect: return .suspect(try read(SuspectMessage.self))
        case .alive: return .alive(try read(AliveMessage.self))
        case .dead: return .dead(try read(DeadMessage.self))
        case .error: return .error(try read(ErrorMessage.self))
        case .user:
            guard body.count <= limits.maxInputBytes else {
                throw .packetTooLarge(size: body.count, limit: limits.maxInputBytes)
            }
            return .user(Array(bytes[body]))
        case .pushPull, .compound, .compress, .encrypt, .hasCrc:
            throw .unexpectedMessageType(type)
        }
    }
}
