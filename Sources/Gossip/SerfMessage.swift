import ConsulCore

/// A serf message decoded from a memberlist user-message payload (`[serf type][msgpack]`).
package enum SerfMessage: Hashable, Sendable {
    case leave(SerfLeaveMessage)
    case join(SerfJoinMessage)
    case pushPull(SerfPushPullMessage)
    case userEvent(SerfUserEventMessage)
    case query(SerfQueryMessage)
    case queryResponse(SerfQueryResponseMessage)
    /// Answer to the `_serf_conflict` query: the member the responder knows under the name, or nil
    /// (Go encodes a nil `*Member` as msgpack nil).
    case conflictResponse(SerfMember?)
    case keyRequest(SerfKeyRequest)
    case keyResponse(SerfKeyResponse)
    /// A response to be forwarded by the receiving node: the header says where, `inner` is the
    /// complete serf message (type byte first) to send there as a user message.
    case relay(SerfRelayHeader, inner: [UInt8])

    package var type: SerfMessageType {
        switch self {
        case .leave: .leave
        case .join: .join
        case .pushPull: .pushPull
        case .userEvent: .userEvent
        case .query: .query
        case .queryResponse: .queryResponse
        case .conflictResponse: .conflictResponse
        case .keyRequest: .keyRequest
        case .keyResponse: .keyResponse
        case .relay: .relay
        }
    }

    /// `[serf type][msgpack body]`, as serf's `encodeMessage` (and `encodeRelayMessage`) write it.
    package var encoded: [UInt8] {
        var writer = MessagePackWriter(prefix: [type.rawValue])
        switch self {
        case .leave(let body): body.write(to: &writer)
        case .join(let body): body.write(to: &writer)
        case .pushPull(let body): body.write(to: &writer)
        case .userEvent(let body): body.write(to: &writer)
        case .query(let body): body.write(to: &writer)
        case .queryResponse(let body): body.write(to: &writer)
        case .conflictResponse(let member?): member.write(to: &writer)
        case .conflictResponse(nil): writer.writeNil()
        case .keyRequest(let body): body.write(to: &writer)
        case .keyResponse(let body): body.write(to: &writer)
        case .relay(let header, let inner):
            header.write(to: &writer)
            writer.writeEncoded(inner)
        }
        return writer.bytes
    }

    /// The memberlist user message carrying this serf message: `[8][serf type][msgpack]`.
    package var memberlistMessage: MemberlistMessage { .user(encoded) }

    /// Decodes a user-message payload. Bytes after the body are ignored, as serf's decoder does.
    package static func decode(
        _ payload: [UInt8], limits: MessagePackLimits = GossipLimits.defaultMessagePack
    ) throws(GossipCodecError) -> SerfMessage {
        guard let first = payload.first else { throw .empty }
        guard let type = SerfMessageType(rawValue: first) else { throw .unknownSerfMessageType(first) }
        do {
            var reader = try MessagePackReader(payload, range: 1..<payload.count, limits: limits)
            switch type {
            case .leave: return .leave(try SerfLeaveMessage(from: &reader))
            case .join: return .join(try SerfJoinMessage(from: &reader))
            case .pushPull: return .pushPull(try SerfPushPullMessage(from: &reader))
            case .userEvent: return .userEvent(try SerfUserEventMessage(from: &reader))
            case .query: return .query(try SerfQueryMessage(from: &reader))
            case .queryResponse: return .queryResponse(try SerfQueryResponseMessage(from: &reader))
            case .conflictResponse:
                return .conflictResponse(try reader.readNilIfPresent() ? nil : try SerfMember(from: &reader))
            case .keyRequest: return .keyRequest(try SerfKeyRequest(from: &reader))
            case .keyResponse: return .keyResponse(try SerfKeyResponse(from: &reader))
            case .relay:
                let header = try SerfRelayHeader(from: &reader)
                return .relay(header, inner: try reader.readTrailingBytes(reader.remaining))
            }
        } catch {
            throw .malformedSerfBody(type, error)
        }
    }
}

/// A query filter (`[0][msgpack []string]` node names, or `[1][msgpack filterTag{Tag, Expr}]`).
package enum SerfQueryFilter: Hashable, Sendable {
    case nodes([String])
    /// Members whose tag `tag` matches the regular expression `expression`.
    case tag(String, expression: String)

    package var encoded: [UInt8] {
        switch self {
        case .nodes(let names):
            var writer = MessagePackWriter(prefix: [0])
            // Serf passes a non-nil slice here, so even an empty list is an array.
            writer.writeArrayHeader(names.count)
            for name in names { writer.writeString(name) }
            return writer.bytes
        case .tag(let tag, let expression):
            var writer = MessagePackWriter(prefix: [1])
            writer.writeMapHeader(2)
            writer.writeKey("Expr"); writer.writeString(expression)
            writer.writeKey("Tag"); writer.writeString(tag)
            return writer.bytes
        }
    }

    package static func decode(
        _ bytes: [UInt8], limits: MessagePackLimits = GossipLimits.defaultMessagePack
    ) throws(GossipCodecError) -> SerfQueryFilter {
        guard let first = bytes.first else { throw .empty }
        guard first <= 1 else { throw .invalidField("query filter type \(first)") }
        do {
            var reader = try MessagePackReader(bytes, range: 1..<bytes.count, limits: limits)
            if first == 0 {
                return .nodes(try reader.readStringArray())
            } else {
                var tag = ""
                var expression = ""
                try reader.readStruct { key, reader throws(MessagePackError) in
                    switch key {
                    case "Tag": tag = try reader.readString()
                    case "Expr": expression = try reader.readString()
                    default: try reader.skipValue()
                    }
                }
                return .tag(tag, expression: expression)
            }
        } catch {
            throw .malformedSerfBody(.query, error)
        }
    }
}

/// Serf's node tags, carried as memberlist node meta: `0xFF` then a msgpack `map[string]string`.
/// Meta without the magic byte is the pre-tags format, a bare role name.
package enum SerfTags {
    package static let magicByte: UInt8 = 0xFF

    /// Encodes tags with sorted keys; throws when the result exceeds memberlist's meta limit.
    package static func encode(_ tags: [String: String], limit: Int = GossipLimits.default.maxMetaBytes) throws(GossipCodecError) -> [UInt8] {
        var writer = MessagePackWriter(prefix: [magicByte])
        writer.writeStringMap(tags)
        guard writer.bytes.count <= limit else {
            throw .invalidField("encoded tags are \(writer.bytes.count) bytes, limit \(limit)")
        }
        return writer.bytes
    }

    package static func decode(
        _ meta: [UInt8], limits: MessagePackLimits = GossipLimits.defaultMessagePack
    ) throws(GossipCodecError) -> [String: String] {
        guard meta.first == magicByte else {
            return ["role": String(decoding: meta, as: UTF8.self)]
        }
        do {
            var reader = try MessagePackReader(meta, range: 1..<meta.count, limits: limits)
            return try reader.readStringMap()
        } catch {
            throw .invalidField("node meta tags: \(error)")
        }
    }
}

/// Serf's ack payload (ping delegate): `[1][msgpack Coordinate{Adjustment, Error, Height, Vec}]`,
/// the responder's Vivaldi network coordinate.
package struct SerfPingPayload: MessagePackStruct, Hashable, Sendable {
    package static let version: UInt8 = 1

    package var vector: [Double]
    package var error: Double
    package var adjustment: Double
    package var height: Double

    package init(vector: [Double], error: Double, adjustment: Double, height: Double) {
        self.vector = vector
        self.error = error
        self.adjustment = adjustment
        self.height = height
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(4)
        writer.writeKey("Adjustment"); writer.writeFloat64(adjustment)
        writer.writeKey("Error"); writer.writeFloat64(error)
        writer.writeKey("Height"); writer.writeFloat64(height)
        writer.writeKey("Vec")
        writer.writeArrayHeader(vector.count)
        for component in vector { writer.writeFloat64(component) }
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(vector: [], error: 0, adjustment: 0, height: 0)
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "Vec":
                let count = try reader.readArrayHeader()
                var vector: [Double] = []
                vector.reserveCapacity(count)
                for _ in 0..<count { vector.append(try reader.readDouble()) }
                self.vector = vector
            case "Error": error = try reader.readDouble()
            case "Adjustment": adjustment = try reader.readDouble()
            case "Height": height = try reader.readDouble()
            default: try reader.skipValue()
            }
        }
    }

    /// The ack payload bytes: version byte then the coordinate.
    package var ackPayload: [UInt8] {
        var writer = MessagePackWriter(prefix: [Self.version])
        write(to: &writer)
        return writer.bytes
    }

    /// Parses an ack payload; throws on an unknown version (serf logs and ignores those).
    package static func decodeAckPayload(
        _ payload: [UInt8], limits: MessagePackLimits = GossipLimits.defaultMessagePack
    ) throws(GossipCodecError) -> SerfPingPayload {
        guard let first = payload.first else { throw .empty }
        guard first == version else { throw .invalidField("ping payload version \(first)") }
        do {
            var reader = try MessagePackReader(payload, range: 1..<payload.count, limits: limits)
            return try SerfPingPayload(from: &reader)
        } catch {
            throw .invalidField("ping payload coordinate: \(error)")
        }
    }
}
