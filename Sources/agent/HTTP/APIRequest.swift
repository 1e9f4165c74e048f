import ConsulCore

/// One HTTP API request, parsed once by the server and read by the request path and endpoints.
struct APIRequest: Sendable {
    var method: String
    /// The path without the query, percent-decoded (`/v1/kv/a b`).
    var path: String
    /// Query parameters; a bare flag (`?recurse`) has the value "". The first occurrence wins;
    /// later ones are kept under `name` + NUL + n (see `values(_:)`) for the few repeatable ones.
    var query: [String: String]
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    /// How many agents forwarded this request over RPC before it got here (0: it came over HTTP).
    var forwardHops = 0
    /// Made by this agent's own parts (its DNS server), not received from an HTTP client.
    var fromAgentItself = false

    func has(_ parameter: String) -> Bool { query[parameter] != nil }

    /// Every occurrence of a repeatable parameter (`?node-meta=a:1&node-meta=b:2`), in order.
    func values(_ parameter: String) -> [String] {
        guard let first = query[parameter] else { return [] }
        var out = [first]
        while let next = query[parameter + "\u{0}\(out.count)"] { out.append(next) }
        return out
    }

    func header(_ name: String) -> String? {
        headers.first { $0.name.equalsIgnoringCase(name) }?.value
    }

    /// The ACL token as Consul takes it: `X-Consul-Token`, then `Authorization: Bearer`, then `?token`.
    var token: String {
        if let token = header("X-Consul-Token"), !token.isEmpty { return token }
        if let authorization = header("Authorization"), authorization.lowercased().hasPrefix("bearer ") {
            return String(authorization.dropFirst(7)).trimmingSpaces()
        }
        return query["token"] ?? ""
    }

    /// Splits a request target into a decoded path and query parameters. Nil when the
    /// percent-encoding is broken. Works on the target's UTF-8 bytes: it runs for every request.
    static func parseTarget(_ target: String) -> (path: String, query: [String: String])? {
        var target = target
        return target.withUTF8 { bytes -> (path: String, query: [String: String])? in
            let question = bytes.firstIndex(of: UInt8(ascii: "?")) ?? bytes.endIndex
            guard let path = percentDecode(UnsafeBufferPointer(rebasing: bytes[..<question]), plusIsSpace: false) else { return nil }
            var query: [String: String] = [:]
            guard question < bytes.endIndex else { return (path, query) }
            var repeats: [String: Int] = [:]
            var start = question + 1
            while start <= bytes.endIndex {
                let end = bytes[start...].firstIndex(of: UInt8(ascii: "&")) ?? bytes.endIndex
                defer { start = end + 1 }
                guard end > start else { continue }
                let pair = bytes[start..<end]
                let equals = pair.firstIndex(of: UInt8(ascii: "=")) ?? end
                guard let key = percentDecode(UnsafeBufferPointer(rebasing: bytes[start..<equals]), plusIsSpace: true),
                      let value = equals < end ? percentDecode(UnsafeBufferPointer(rebasing: bytes[(equals + 1)..<end]), plusIsSpace: true) : ""
                else { return nil }
                if query[key] == nil {
                    query[key] = value
                } else {
                    // A repeat: kept under a numbered name, so the dictionary (and RPC forwarding) stays as it is.
                    // Counted, not searched: a long target of one repeated name stays linear.
                    let n = repeats[key, default: 0] + 1
                    repeats[key] = n
                    query[key + "\u{0}\(n)"] = value
                }
            }
            return (path, query)
        }
    }

    /// `bytes` are a slice of a valid UTF-8 string cut at ASCII delimiters, so they are valid
    /// UTF-8 themselves; only what `%` escapes produce needs validating.
    static func percentDecode(_ bytes: UnsafeBufferPointer<UInt8>, plusIsSpace: Bool) -> String? {
        // Most targets have nothing to decode.
        if !bytes.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                decoded.append(high << 4 | low)
            case UInt8(ascii: "+") where plusIsSpace:
                decoded.append(UInt8(ascii: " "))
            default:
                decoded.append(byte)
            }
        }
        return String(validating: decoded, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension String {
    /// ASCII case-insensitive equality (header names), without making lowercased copies.
    func equalsIgnoringCase(_ other: String) -> Bool {
        guard utf8.count == other.utf8.count else { return false }
        return zip(utf8, other.utf8).allSatisfy { a, b in
            a == b || (a | 0x20 == b | 0x20 && (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(a | 0x20))
        }
    }

    func trimmingSpaces() -> String {
        var slice = Substring(self)
        while slice.first == " " || slice.first == "\t" { slice = slice.dropFirst() }
        while slice.last == " " || slice.last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}

/// What an endpoint answers with.
struct APIResponse: Sendable {
    var status: Int = 200
    var contentType = "application/json"
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []
    /// Set for a streamed answer: `body` is ignored and the stream writes until the client leaves.
    var stream: (any ResponseStream)? = nil

    static func json(_ body: (inout JSONWriter) -> Void) -> APIResponse {
        var writer = JSONWriter()
        body(&writer)
        return APIResponse(body: writer.bytes)
    }

    static func text(_ text: String, status: Int = 200) -> APIResponse {
        APIResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }

    static let `true` = APIResponse(body: Array("true".utf8))
    static let `false` = APIResponse(body: Array("false".utf8))
    static func bool(_ value: Bool) -> APIResponse { value ? .true : .false }
}

/// Every way a request fails, mapped to Consul's status codes in one place (`response`).
enum APIError: Error, Sendable, Equatable {
    case badRequest(String)
    /// 401: a request that needs ACLs while they are off (`/v1/agent/token`).
    case unauthorized(String)
    case forbidden(String)
    case notFound(String)
    case methodNotAllowed(String)
    case tooLarge(String)
    /// Too much is already under way (RPC requests in flight): try again later.
    case tooManyRequests(String)
    /// The cluster has no leader (Consul answers 500 "No cluster leader").
    case noLeader
    /// A client agent with no server to ask.
    case noServers
    case unknownDatacenter(String)
    case notImplemented(String)
    case internalError(String)

    var status: Int {
        switch self {
        case .badRequest: return 400
        case .unauthorized: return 401
        case .forbidden: return 403
        case .notFound: return 404
        case .methodNotAllowed: return 405
        case .tooLarge: return 413
        case .tooManyRequests: return 429
        case .notImplemented: return 501
        case .noLeader, .noServers, .unknownDatacenter, .internalError: return 500
        }
    }

    var message: String {
        switch self {
        case .badRequest(let message), .unauthorized(let message), .forbidden(let message), .notFound(let message), .methodNotAllowed(let message),
            .tooLarge(let message), .tooManyRequests(let message), .notImplemented(let message), .internalError(let message):
            return message
        case .noLeader: return "No cluster leader"
        case .noServers: return "No known Consul servers"
        case .unknownDatacenter(let dc): return "No path to datacenter \(dc)"
        }
    }

    var response: APIResponse { .text(message, status: status) }
}
