import ConsulCore

/// The compress wrapper (type 9): `[9][msgpack compress{Algo, Buf}]` whose inflated content is a
/// whole message again, type byte first.
package enum Compression {
    /// `[9]` + compress{Algo: LZW, Buf: LZW(message)} — Go's `compressPayload`.
    package static func wrap(_ message: [UInt8]) -> [UInt8] {
        let body = CompressMessage(algorithm: CompressMessage.lzwAlgorithm, buffer: LZW.compress(message))
        var writer = MessagePackWriter(prefix: [MemberlistMessageType.compress.rawValue])
        body.write(to: &writer)
        return writer.bytes
    }

    /// Inflates a compress body (the bytes after the type byte). Like Go, bytes after the msgpack
    /// object are ignored.
    package static func unwrap(
        _ body: [UInt8], range: Range<Int>, maxOutput: Int, limits: MessagePackLimits
    ) throws(GossipCodecError) -> [UInt8] {
        let message: CompressMessage
        do {
            var reader = try MessagePackReader(body, range: range, limits: limits)
            message = try CompressMessage(from: &reader)
        } catch {
            throw .malformedBody(.compress, error)
        }
        return try inflate(message, maxOutput: maxOutput)
    }

    /// Inflates an already decoded compress message.
    package static func inflate(_ message: CompressMessage, maxOutput: Int) throws(GossipCodecError) -> [UInt8] {
        guard message.algorithm == CompressMessage.lzwAlgorithm else {
            throw .unknownCompressionAlgorithm(message.algorithm)
        }
        do {
            return try LZW.decompress(message.buffer, maxOutput: maxOutput)
        } catch {
            if case .outputTooLarge(let limit) = error { throw .decompressedTooLarge(limit: limit) }
            throw .lzw(error)
        }
    }
}
