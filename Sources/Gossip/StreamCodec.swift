import ConsulCore

/// A push/pull exchange as it travels on TCP: `[6][header][node state × Nodes][user state bytes]`.
/// The user state (serf's push/pull) is appended raw, not msgpack-framed.
package struct PushPullMessage: Hashable, Sendable {
    package var join: Bool
    package var nodes: [PushNodeState]
    package var userState: [UInt8]

    package init(join: Bool, nodes: [PushNodeState], userState: [UInt8]) {
        self.join = join
        self.nodes = nodes
        self.userState = userState
    }

    /// Appends header, node states and user state after the type byte already in `writer`.
    fileprivate func write(to writer: inout MessagePackWriter) {
        PushPullHeader(nodes: nodes.count, userStateLength: userState.count, join: join).write(to: &writer)
        for node in nodes { node.write(to: &writer) }
        writer.writeEncoded(userState)
    }

    fileprivate init(from reader: inout MessagePackReader, limits: GossipLimits) throws(StreamParseError) {
        let header = try StreamParseError.wrap(.pushPull) { () throws(MessagePackError) in try PushPullHeader(from: &reader) }
        guard header.nodes >= 0, header.nodes <= limits.maxPushPullNodes else {
            throw .invalid(.invalidField("push/pull node count \(header.nodes)"))
        }
        guard header.userStateLength >= 0, header.userStateLength <= limits.maxStreamBytes else {
            throw .invalid(.invalidField("push/pull user state length \(header.userStateLength)"))
        }
        var nodes: [PushNodeState] = []
        nodes.reserveCapacity(min(header.nodes, reader.remaining))
        for _ in 0..<header.nodes {
            nodes.append(try StreamParseError.wrap(.pushPull) { () throws(MessagePackError) in try PushNodeState(from: &reader) })
        }
        let userState = try StreamParseError.wrap(.pushPull) { () throws(MessagePackError) in
            try reader.readTrailingBytes(header.userStateLength)
        }
        self.init(join: header.join, nodes: nodes, userState: userState)
    }
}

/// A message that arrives on a TCP stream (after decryption and decompression).
package enum StreamMessage: Hashable, Sendable {
    case pushPull(PushPullMessage)
    /// A TCP fallback ping; the answer is an `.ack` on the same stream.
    case ping(PingMessage)
    case ack(AckMessage)
    /// A user (serf) message too large for UDP: `[8][userMsgHeader][bytes]` on the wire.
    case user([UInt8])
    case error(ErrorMessage)

    package var type: MemberlistMessageType {
        switch self {
        case .pushPull: .pushPull
        case .ping: .ping
        case .ack: .ack
        case .user: .user
        case .error: .error
        }
    }

    /// The plaintext stream body, type byte first, before compression and encryption.
    package var encoded: [UInt8] {
        var writer = MessagePackWriter(prefix: [type.rawValue])
        switch self {
        case .pushPull(let body): body.write(to: &writer)
        case .ping(let body): body.write(to: &writer)
        case .ack(let body): body.write(to: &writer)
        case .user(let payload):
            UserMessageHeader(userMessageLength: payload.count).write(to: &writer)
            writer.writeEncoded(payload)
        case .error(let body): body.write(to: &writer)
        }
        return writer.bytes
    }
}

/// Result of feeding the bytes received so far on a stream to `StreamCodec.decode`.
package enum StreamDecodeResult: Equatable, Sendable {
    /// The message is not complete yet: read until at least `minimumBytes` are buffered (a lower
    /// bound, exact for length-prefixed data) and call again with everything. Waiting for the
    /// bound instead of retrying after every read keeps decoding a large push/pull linear.
    case needMoreData(minimumBytes: Int)
    /// A whole message, and how many buffered bytes it used.
    case message(StreamMessage, consumed: Int)
}

/// Internal: separates "ran out of bytes" (wait for more on a plaintext stream) from real errors.
private enum StreamParseError: Error {
    /// Ran out of input; `needed` more bytes are known to be required.
    case incomplete(needed: Int)
    case invalid(GossipCodecError)

    static func wrap<T>(_ type: MemberlistMessageType, _ body: () throws(MessagePackError) -> T) throws(StreamParseError) -> T {
        do {
            return try body()
        } catch {
            if case .truncated(_, let needed) = error { throw .incomplete(needed: needed) }
            throw .invalid(.malformedBody(type, error))
        }
    }
}

/// Stream (TCP) pipeline, both directions.
///
/// - Outbound (`rawSendMsgStream`): body → compress (always, when enabled) → encrypt as
///   `[10][length u32 BE][envelope]` with the 5-byte header as additional data.
/// - Inbound (`readStream`): decrypt if `[10]` → inflate if `[9]` → dispatch on the type byte.
///
/// Decoding is incremental and pure: the shell appends what it read and calls `decode` again once
/// it holds `minimumBytes`; every length is checked against `GossipLimits.maxStreamBytes` first.
/// Encrypted and compressed streams announce their length up front, so the hint is exact and the
/// work linear. A plaintext, uncompressed push/pull has no length prefix: its hint only covers the
/// object being parsed, and re-parsing costs more calls (bounded by the 20 MiB limit).
package struct StreamCodec: Sendable {
    package var limits: GossipLimits

    package init(limits: GossipLimits = .default) {
        self.limits = limits
    }

    package func encode(_ message: StreamMessage, compress: Bool, cipher: (any GossipCipher)?) throws(GossipCodecError) -> [UInt8] {
        var body = message.encoded
        if compress { body = Compression.wrap(body) }
        guard let cipher else { return body }
        let sealedLength = cipher.sealedLength(plaintextLength: body.count)
        guard let length = UInt32(exactly: sealedLength), sealedLength <= limits.maxStreamBytes else {
            throw .streamFrameTooLarge(size: sealedLength, limit: limits.maxStreamBytes)
        }
        let header: [UInt8] = [MemberlistMessageType.encrypt.rawValue,
                               UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
        let envelope: [UInt8]
        do {
            envelope = try cipher.seal(body, additionalData: header)
        } catch {
            throw .encryptionFailed(String(describing: error))
        }
        guard envelope.count == sealedLength else {
            throw .encryptionFailed("cipher produced \(envelope.count) bytes, announced \(sealedLength)")
        }
        return header + envelope
    }

    /// Decodes the first message from the bytes buffered so far.
    ///
    /// `verifyIncoming` mirrors memberlist's `GossipVerifyIncoming`: with a cipher, a plaintext
    /// stream is refused.
    package func decode(
        _ buffered: [UInt8], cipher: (any GossipCipher)?, verifyIncoming: Bool = true
    ) throws(GossipCodecError) -> StreamDecodeResult {
        guard let first = buffered.first else { return .needMoreData(minimumBytes: 1) }
        if first == MemberlistMessageType.encrypt.rawValue {
            guard let cipher else { throw .encryptedButNoKeys }
            guard buffered.count >= 5 else { return .needMoreData(minimumBytes: 5) }
            let length = Int(buffered[1]) << 24 | Int(buffered[2]) << 16 | Int(buffered[3]) << 8 | Int(buffered[4])
            guard length <= limits.maxStreamBytes else {
                throw .streamFrameTooLarge(size: length, limit: limits.maxStreamBytes)
            }
            guard buffered.count - 5 >= length else { return .needMoreData(minimumBytes: 5 + length) }
            let plain: [UInt8]
            do {
                plain = try cipher.open(Array(buffered[5..<5 + length]), additionalData: Array(buffered[0..<5]))
            } catch {
                throw .decryptionFailed(String(describing: error))
            }
            // The frame is complete: running out of bytes inside it is an error, not a wait.
            switch try decodePlain(plain) {
            case .needMoreData: throw .malformedBody(MemberlistMessageType(rawValue: plain.first ?? 0) ?? .encrypt,
                                                     .truncated(offset: plain.count, needed: 1))
            case .message(let message, _): return .message(message, consumed: 5 + length)
            }
        }
        if cipher != nil && verifyIncoming { throw .plaintextRejected }
        let result = try decodePlain(buffered)
        if case .needMoreData(let minimum) = result, minimum > limits.maxStreamBytes {
            throw .streamFrameTooLarge(size: minimum, limit: limits.maxStreamBytes)
        }
        return result
    }

    /// A plaintext stream: optional compress wrapper, then the message.
    private func decodePlain(_ bytes: [UInt8]) throws(GossipCodecError) -> StreamDecodeResult {
        guard let first = bytes.first else { return .needMoreData(minimumBytes: 1) }
        guard let type = MemberlistMessageType(rawValue: first) else { throw .unknownMessageType(first) }
        if type == .compress {
            let compressed: CompressMessage
            let consumed: Int
            do {
                var reader = try MessagePackReader(bytes, range: 1..<bytes.count, limits: limits.messagePack)
                compressed = try CompressMessage(from: &reader)
                consumed = reader.position
            } catch {
                if case .truncated(_, let needed) = error { return .needMoreData(minimumBytes: bytes.count + needed) }
                throw .malformedBody(.compress, error)
            }
            let inflated = try Compression.inflate(compressed, maxOutput: limits.maxDecompressedStreamBytes)
            switch try parseMessage(inflated) {
            case .needMoreData:
                throw .malformedBody(MemberlistMessageType(rawValue: inflated.first ?? 0) ?? .compress,
                                     .truncated(offset: inflated.count, needed: 1))
            case .message(let message, _): return .message(message, consumed: consumed)
            }
        }
        return try parseMessage(bytes)
    }

    private func parseMessage(_ bytes: [UInt8]) throws(GossipCodecError) -> StreamDecodeResult {
        guard let first = bytes.first else { return .needMoreData(minimumBytes: 1) }
        guard let type = MemberlistMessageType(rawValue: first) else { throw .unknownMessageType(first) }
        do {
            var reader: MessagePackReader
            do {
                reader = try MessagePackReader(bytes, range: 1..<bytes.count, limits: limits.messagePack)
            } catch {
                throw StreamParseError.invalid(.malformedBody(type, error))
            }
            let message: StreamMessage
            switch type {
            case .pushPull:
                message = .pushPull(try PushPullMessage(from: &reader, limits: limits))
            case .ping:
                message = .ping(try StreamParseError.wrap(type) { () throws(MessagePackError) in try PingMessage(from: &reader) })
            case .ack:
                message = .ack(try StreamParseError.wrap(type) { () throws(MessagePackError) in try AckMessage(from: &reader) })
            case .error:
                message = .error(try StreamParseError.wrap(type) { () throws(MessagePackError) in try ErrorMessage(from: &reader) })
            case .user:
                let header = try StreamParseError.wrap(type) { () throws(MessagePackError) in try UserMessageHeader(from: &reader) }
                guard header.userMessageLength >= 0, header.userMessageLength <= limits.maxStreamBytes else {
                    throw StreamParseError.invalid(.invalidField("user message length \(header.userMessageLength)"))
                }
                message = .user(try StreamParseError.wrap(type) { () throws(MessagePackError) in
                    try reader.readTrailingBytes(header.userMessageLength)
                })
            default:
                throw StreamParseError.invalid(.unexpectedMessageType(type))
            }
            return .message(message, consumed: reader.position)
        } catch StreamParseError.incomplete(let needed) {
            return .needMoreData(minimumBytes: bytes.count + needed)
        } catch StreamParseError.invalid(let error) {
            throw error
        } catch {
            throw .invalidField("unreachable stream parse state")
        }
    }
}
