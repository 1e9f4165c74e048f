import NIOCore

/// A name/value pair of a forwarded request's query or a header.
struct RPCPair: Sendable, Hashable {
    var name: String
    var value: String
}

/// An API request carried to another agent (after the server port's `0x00` byte). It is the HTTP
/// request itself, so the agent that answers runs it through its own request path (forwarder,
/// ACL gate, endpoint) exactly as if it had arrived over HTTP.
struct RPCRequestFrame: Sendable, Hashable {
    /// Chosen by the sending connection; the answer carries it back (many requests share a connection).
    var id: UInt64 = 0
    /// How many agents forwarded it so far (the first forward sends 1); bounds forwarding loops.
    var hops: UInt8
    var method: String
    var path: String
    var query: [RPCPair]
    var headers: [RPCPair]
    var body: [UInt8]
}

/// The answer to an `RPCRequestFrame`, passed back to the HTTP client unchanged.
struct RPCResponseFrame: Sendable, Hashable {
    var id: UInt64
    var status: UInt16
    var contentType: String
    var headers: [RPCPair]
    var body: [UInt8]
}

enum RPCFrame: Sendable, Hashable {
    case request(RPCRequestFrame)
    case response(RPCResponseFrame)

    var id: UInt64 {
        switch self {
        case .request(let request): return request.id
        case .response(let response): return response.id
        }
    }
}

/// Why bytes are not a frame. Either way the connection's framing can no longer be trusted, so the
/// connection is closed (and the reason counted); nothing is ever guessed.
enum RPCFrameError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A length prefix over the limit for this direction.
    case oversized(length: Int, limit: Int)
    /// The body does not decode (bad kind, truncated field, a count or string over its limit, bad
    /// UTF-8, trailing bytes), or it is a frame the receiver never expects.
    case malformed(String)
    /// Refused while encoding: the request or answer exceeds what a peer would accept.
    case tooLarge(String)

    var description: String {
        switch self {
        case .oversized(let length, let limit): return "RPC frame of \(length) bytes is over the limit of \(limit) bytes"
        case .malformed(let reason): return "malformed RPC frame: \(reason)"
        case .tooLarge(let what): return "too large to forward: \(what)"
        }
    }
}

/// The frame format of agent RPC:
///
/// ```
/// frame    := length:u32be body                  (1 ≤ length ≤ the direction's frame limit)
/// body     := kind:u8 id:u64be (request | response)     kind 1: request, 2: response
/// request  := hops:u8 method:str path:str query:pairs headers:pairs body:blob
/// response := status:u16be contentType:str headers:pairs body:blob
/// str      := length:u32be UTF-8 bytes           (≤ maxStringBytes)
/// pairs    := count:u16be (str str)*             (count ≤ maxPairs)
/// blob     := length:u32be bytes                 (≤ maxBodyBytes)
/// ```
/// Decoding consumes exactly `length` bytes or fails.
enum RPCCodec {
    struct Limits: Sendable, Hashable {
        /// Requests carry an HTTP body (≤ `HTTPServer.maxBodyBytes`) plus its path, query and headers.
        var maxRequestFrameBytes = HTTPServer.maxBodyBytes + (1 << 20)
        /// Answers can be large listings (catalog, KV recurse).
        var maxResponseFrameBytes = 64 << 20
        var maxStringBytes = 64 << 10
        var maxPairs = 256

        static let `default` = Limits()
    }

    static let kindRequest: UInt8 = 1
    static let kindResponse: UInt8 = 2
    /// Bytes before a frame's id: the length prefix and the kind.
    static let idOffset = 5

    // MARK: Encoding

    /// Writes one frame. Throws `tooLarge` when a field or the frame exceeds the limits a peer
    /// decodes with, so nothing is sent that the other side would have to refuse.
    /// On failure the buffer is left as it was.
    static func encode(_ frame: RPCFrame, limits: Limits = .default, into buffer: inout ByteBuffer) throws(RPCFrameError) {
        let start = buffer.writerIndex
        do {
            try encodeUnchecked(frame, limits: limits, into: &buffer)
        } catch {
            buffer.moveWriterIndex(to: start)
            throw error
        }
    }

    private static func encodeUnchecked(_ frame: RPCFrame, limits: Limits, into buffer: inout ByteBuffer) throws(RPCFrameError) {
        let start = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        let frameLimit: Int
        switch frame {
        case .request(let request):
            frameLimit = limits.maxRequestFrameBytes
            buffer.writeInteger(kindRequest)
            buffer.writeInteger(request.id)
            buffer.writeInteger(request.hops)
            try writeString(request.method, "method", limits, &buffer)
            try writeString(request.path, "path", limits, &buffer)
            try writePairs(request.query, "query", limits, &buffer)
            try writePairs(request.headers, "headers", limits, &buffer)
            try writeBlob(request.body, frameLimit, &buffer)
        case .response(let response):
            frameLimit = limits.maxResponseFrameBytes
            guard (100...599).contains(response.status) else { throw .malformed("status \(response.status)") }
            buffer.writeInteger(kindResponse)
            buffer.writeInteger(response.id)
            buffer.writeInteger(response.status)
            try writeString(response.contentType, "content type", limits, &buffer)
            try writePairs(response.headers, "headers", limits, &buffer)
            try writeBlob(response.body, frameLimit, &buffer)
        }
        let length = buffer.writerIndex - start - 4
        guard length <= frameLimit else { throw .tooLarge("a frame of \(length) bytes (limit \(frameLimit))") }
        buffer.setInteger(UInt32(length), at: start)
    }

    static func encode(_ frame: RPCFrame, limits: Limits = .default) throws(RPCFrameError) -> ByteBuffer {
        var buffer = ByteBuffer()
        try encode(frame, limits: limits, into: &buffer)
        return buffer
    }

    private static func writeString(_ text: String, _ what: String, _ limits: Limits, _ buffer: inout ByteBuffer) throws(RPCFrameError) {
        let count = text.utf8.count
        guard count <= limits.maxStringBytes else { throw .tooLarge("\(what) of \(count) bytes (limit \(limits.maxStringBytes))") }
        buffer.writeInteger(UInt32(count))
        buffer.writeString(text)
    }

    private static func writePairs(_ pairs: [RPCPair], _ what: String, _ limits: Limits, _ buffer: inout ByteBuffer) throws(RPCFrameError) {
        guard pairs.count <= limits.maxPairs else { throw .tooLarge("\(pairs.count) \(what) (limit \(limits.maxPairs))") }
        buffer.writeInteger(UInt16(pairs.count))
        for pair in pairs {
            try writeString(pair.name, what, limits, &buffer)
            try writeString(pair.value, what, limits, &buffer)
        }
    }

    private static func writeBlob(_ bytes: [UInt8], _ limit: Int, _ buffer: inout ByteBuffer) throws(RPCFrameError) {
        guard bytes.count <= limit else { throw .tooLarge("a body of \(bytes.count) bytes (limit \(limit))") }
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
    }

    // MARK: Decoding

    /// Takes the next whole frame off `buffer`; nil (nothing consumed) until all its bytes are
    /// there. `maxFrameBytes` is the limit of the direction read (requests on a server,
    /// answers on a client).
    static func nextFrame(from buffer: inout ByteBuffer, maxFrameBytes: Int, limits: Limits = .default) throws(RPCFrameError) -> RPCFrame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length > 0 else { throw .malformed("empty frame") }
        guard Int(length) <= maxFrameBytes else { throw .oversized(length: Int(length), limit: maxFrameBytes) }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        var body = buffer.readSlice(length: Int(length))!
        return try decodeBody(&body, limits: limits)
    }

    /// Decodes one frame body (without its length prefix); every byte must be used.
    static func decodeBody(_ body: inout ByteBuffer, limits: Limits = .default) throws(RPCFrameError) -> RPCFrame {
        let kind: UInt8 = try read(&body, "kind")
        let id: UInt64 = try read(&body, "id")
        let frame: RPCFrame
        switch kind {
        case kindRequest:
            let hops: UInt8 = try read(&body, "hops")
            let method = try readString(&body, "method", limits)
            let path = try readString(&body, "path", limits)
            let query = try readPairs(&body, "query", limits)
            let headers = try readPairs(&body, "headers", limits)
            let payload = try readBlob(&body)
            frame = .request(RPCRequestFrame(id: id, hops: hops, method: method, path: path, query: query, headers: headers, body: payload))
        case kindResponse:
            let status: UInt16 = try read(&body, "status")
            guard (100...599).contains(status) else { throw .malformed("status \(status)") }
            let contentType = try readString(&body, "content type", limits)
            let headers = try readPairs(&body, "headers", limits)
            let payload = try readBlob(&body)
            frame = .response(RPCResponseFrame(id: id, status: status, contentType: contentType, headers: headers, body: payload))
        default:
            throw .malformed("unknown kind \(kind)")
        }
        guard body.readableBytes == 0 else { throw .malformed("\(body.readableBytes) bytes after the frame's fields") }
        return frame
    }

    private static func read<T: FixedWidthInteger>(_ buffer: inout ByteBuffer, _ what: String) throws(RPCFrameError) -> T {
        guard let value = buffer.readInteger(as: T.self) else { throw .malformed("truncated \(what)") }
        return value
    }

    private static func readString(_ buffer: inout ByteBuffer, _ what: String, _ limits: Limits) throws(RPCFrameError) -> String {
        let count: UInt32 = try read(&buffer, what)
        guard count <= limits.maxStringBytes else { throw .malformed("\(what) of \(count) bytes over the limit of \(limits.maxStringBytes)") }
        guard let bytes = buffer.readBytes(length: Int(count)) else { throw .malformed("truncated \(what)") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .malformed("\(what) is not UTF-8") }
        return text
    }

    private static func readPairs(_ buffer: inout ByteBuffer, _ what: String, _ limits: Limits) throws(RPCFrameError) -> [RPCPair] {
        let count: UInt16 = try read(&buffer, what)
        guard count <= limits.maxPairs else { throw .malformed("\(count) \(what) over the limit of \(limits.maxPairs)") }
        var pairs: [RPCPair] = []
        pairs.reserveCapacity(Int(count))
        for _ in 0..<count {
            let name = try readString(&buffer, what, limits)
            let value = try readString(&buffer, what, limits)
            pairs.append(RPCPair(name: name, value: value))
        }
        return pairs
    }

    private static func readBlob(_ buffer: inout ByteBuffer) throws(RPCFrameError) -> [UInt8] {
        let count: UInt32 = try read(&buffer, "body")
        // The frame length already bounds it: a count beyond what is left is simply truncated.
        guard let bytes = buffer.readBytes(length: Int(count)) else { throw .malformed("truncated body") }
        return bytes
    }
}

// MARK: - Between API requests and frames

extension RPCRequestFrame {
    /// Headers that describe one HTTP connection, not the request: never forwarded.
    static let connectionHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length", "host", "expect",
    ]

    /// The request as the next agent receives it, with the hop count it arrives with.
    init(_ request: APIRequest, hops: UInt8) {
        self.init(
            hops: hops, method: request.method, path: request.path,
            // Sorted, so a request encodes the same way every time.
            query: request.query.map { RPCPair(name: $0.key, value: $0.value) }.sorted { $0.name < $1.name },
            headers: request.headers.filter { !Self.connectionHeaders.contains($0.name.lowercased()) }.map { RPCPair(name: $0.name, value: $0.value) },
            body: request.body)
    }

    var apiRequest: APIRequest {
        var query: [String: String] = [:]
        for pair in self.query where query[pair.name] == nil { query[pair.name] = pair.value }
        return APIRequest(
            method: method, path: path, query: query, headers: headers.map { ($0.name, $0.value) }, body: body, forwardHops: Int(hops))
    }
}

extension RPCResponseFrame {
    init(_ response: APIResponse, id: UInt64) {
        self.init(
            id: id, status: UInt16(clamping: response.status), contentType: response.contentType,
            headers: response.headers.map { RPCPair(name: $0.name, value: $0.value) }, body: response.body)
    }

    var apiResponse: APIResponse {
        APIResponse(status: Int(status), contentType: contentType, headers: headers.map { ($0.name, $0.value) }, body: body)
    }
}
