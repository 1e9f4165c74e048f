import NIOCore
import NIOHTTP1
import NIOPosix

/// How CLI commands talk to their agent: one HTTP/1.1 request per call over a fresh connection,
/// blocking the calling (non-event-loop) thread. TLS (`https://`) arrives with the TLS issue.
struct AgentHTTPClient: Sendable {
    struct Response: Sendable {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: [UInt8]

        var text: String { String(decoding: body, as: UTF8.self) }
        func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Responses larger than this are refused (a CLI never needs more).
    static let maxResponseBytes = 64 << 20

    var host: String
    var port: Int
    var token: String?
    var timeout: Duration = .seconds(660)

    /// Reads `-http-addr` / `CONSUL_HTTP_ADDR` the way Consul does: `host:port`, `http://host:port`,
    /// or `unix://` (not supported here).
    init(address: String, token: String?) throws(Failure) {
        var rest = Substring(address)
        if rest.hasPrefix("http://") {
            rest = rest.dropFirst(7)
        } else if rest.hasPrefix("https://") {
            throw Failure(description: "HTTPS to the agent is not supported by this build yet (\(address))")
        } else if rest.hasPrefix("unix://") {
            throw Failure(description: "unix sockets are not supported by this build (\(address))")
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            port = after.hasPrefix(":") ? Int(after.dropFirst()) ?? -1 : 8500
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            port = Int(rest[rest.index(after: colon)...]) ?? -1
        } else {
            host = String(rest)
            port = 8500
        }
        guard !host.isEmpty, (1...65535).contains(port) else { throw Failure(description: "invalid HTTP address \"\(address)\"") }
        self.token = token
    }

    func send(_ method: HTTPMethod, _ target: String, body: [UInt8] = []) throws(Failure) -> Response {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: Response.self)
        let host = self.host
        do {
            let channel = try ClientBootstrap(group: group)
                .connectTimeout(.seconds(10))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                    }
                }
                .connect(host: host, port: port).wait()
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: "\(host):\(port)")
            headers.add(name: "User-Agent", value: "consul-cli")
            headers.add(name: "Content-Length", value: String(body.count))
            headers.add(name: "Connection", value: "close")
            if let token, !token.isEmpty { headers.add(name: "X-Consul-Token", value: token) }
            let head = HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: headers)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if !body.isEmpty {
                channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
            }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            let timeoutTask = channel.eventLoop.scheduleTask(in: .nanoseconds(timeout.totalNanosecondsForNIO)) {
                promise.fail(Failure(description: "timed out waiting for the agent"))
                channel.close(promise: nil)
            }
            defer { timeoutTask.cancel() }
            return try promise.futureResult.wait()
        } catch let failure as Failure {
            throw failure
        } catch {
            promise.fail(error)
            let text = "\(error)"
            if text.contains("Connection refused") {
                throw Failure(description: "dial tcp \(host):\(port): connect: connection refused")
            }
            throw Failure(description: "\(host):\(port): \(text)")
        }
    }
}

extension Duration {
    fileprivate var totalNanosecondsForNIO: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<AgentHTTPClient.Response>
    private var response: AgentHTTPClient.Response?

    init(promise: EventLoopPromise<AgentHTTPClient.Response>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            response = .init(status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) }, body: [])
        case .body(var buffer):
            guard (response?.body.count ?? 0) + buffer.readableBytes <= AgentHTTPClient.maxResponseBytes else {
                promise.fail(AgentHTTPClient.Failure(description: "response larger than \(AgentHTTPClient.maxResponseBytes) bytes"))
                context.close(promise: nil)
                return
            }
            response?.body.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
        case .end:
            if let response { promise.succeed(response) }
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(AgentHTTPClient.Failure(description: "connection closed before a complete response"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
