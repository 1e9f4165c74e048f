import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The HTTP API listener: SwiftNIO's HTTP/1.1 pipeline (keep-alive, pipelining in order) with one
/// handler that collects a request, hands it to the dispatcher and writes the answer. The HTTPS
/// listener is the same pipeline behind a TLS handler.
final class HTTPServer: Sendable {
    /// Bodies above this are refused with 413 before they are buffered.
    static let maxBodyBytes = 8 << 20

    let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    var port: Int? { channel.localAddress?.port }

    /// `tls`: serve HTTPS with this context (which decides whether client certificates are required).
    static func start(host: String, port: Int, dispatcher: APIDispatcher, group: any EventLoopGroup, tls: NIOSSLContext? = nil) async throws -> HTTPServer {
        var source: (@Sendable () -> NIOSSLContext)?
        if let tls { source = { tls } }
        return try await start(host: host, port: port, dispatcher: dispatcher, group: group, tlsSource: source)
    }

    /// `tlsSource`: serve HTTPS with the context it gives, asked once per accepted connection (a
    /// reload's re-read certificates serve new connections; open ones keep theirs).
    static func start(
        host: String, port: Int, dispatcher: APIDispatcher, group: any EventLoopGroup, tlsSource: (@Sendable () -> NIOSSLContext)?
    ) async throws -> HTTPServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = tlsSource?() {
                        // A failed handshake closes the connection (NIOSSL does); the observer only
                        // keeps the error from reaching the HTTP handlers.
                        try channel.pipeline.syncOperations.addHandlers(NIOSSLServerHandler(context: tls), HTTPSErrorSink())
                    }
                    // NIO's outbound header validator costs about a tenth of a small answer's CPU;
                    // our headers are our own, and the one place values can come from elsewhere
                    // (answers forwarded from another agent) is checked in `write`.
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withErrorHandling: true, withOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(HTTPAPIHandler(dispatcher: dispatcher))
                }
            }
            .bind(host: host, port: port).get()
        return HTTPServer(channel: channel)
    }

    func close() async {
        try? await channel.close()
    }

    /// A header that cannot split the response: a token name, and a value without CR, LF or NUL.
    /// (Answers forwarded from another agent carry that agent's headers.)
    static func isSafeHeader(_ header: (name: String, value: String)) -> Bool {
        !header.name.isEmpty
            && header.name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }
            && !header.value.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }
    }
}

/// Closes an HTTPS connection on a TLS error (a browser that refuses our certificate, a client
/// without the required certificate); nothing is logged per connection.
private final class HTTPSErrorSink: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if TLSHandshakeObserver.isTLSError(error) {
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }
}

/// One connection's requests, one at a time (the pipeline handler holds back pipelined ones).
private final class HTTPAPIHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let dispatcher: APIDispatcher
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false
    /// The streamed answer this connection is carrying, if any: it owns the connection until it closes.
    private var stream: (any ResponseStream)?

    init(dispatcher: APIDispatcher) {
        self.dispatcher = dispatcher
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A streaming answer never ends while the connection lives: nothing after it is answered.
        guard stream == nil else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.removeAll(keepingCapacity: true)
            bodyTooLarge = false
        case .body(var buffer):
            guard !bodyTooLarge else { return }
            if body.count + buffer.readableBytes > HTTPServer.maxBodyBytes {
                bodyTooLarge = true
                body = []
            } else {
                body.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let keepAlive = head.isKeepAlive
            if bodyTooLarge {
                write(APIError.tooLarge("Request body too large, max size: \(HTTPServer.maxBodyBytes) bytes").response, version: head.version, keepAlive: false, context: context)
                return
            }
            guard let target = APIRequest.parseTarget(head.uri) else {
                write(APIError.badRequest("Invalid URL encoding in \(head.uri)").response, version: head.version, keepAlive: keepAlive, context: context)
                return
            }
            let request = APIRequest(
                method: head.method.rawValue, path: target.path, query: target.query,
                headers: head.headers.map { ($0.name, $0.value) }, body: body)
            body = []
            let pretty = request.has("pretty")
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            dispatcher.handle(request, on: context.eventLoop).whenSuccess { response in
                var response = response
                if pretty, response.contentType == "application/json" { response.body = JSONPretty.format(response.body) }
                let (handler, context) = loopBound.value
                handler.write(response, version: head.version, keepAlive: keepAlive, context: context)
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { stream?.resume() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        endStream()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        endStream()
    }

    private func endStream() {
        guard let stream else { return }
        self.stream = nil
        stream.detach()
    }

    /// The head of a streamed answer, flushed at once so the client knows it is connected; no
    /// Content-Length, so HTTP/1.1 gets chunked encoding (HTTP/1.0: the body runs to the close).
    private func startStream(_ stream: any ResponseStream, _ response: APIResponse, version: HTTPVersion, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: HTTPServer.isSafeHeader(("Content-Type", response.contentType)) ? response.contentType : "application/octet-stream")
        headers.add(name: "Vary", value: "Accept-Encoding")
        for header in response.headers where HTTPServer.isSafeHeader(header) { headers.add(name: header.name, value: header.value) }
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers))), promise: nil)
        guard context.channel.isActive else { return }
        self.stream = stream
        stream.attach(StreamConnection(context: context))
    }

    private func write(_ response: APIResponse, version: HTTPVersion, keepAlive: Bool, context: ChannelHandlerContext) {
        if let stream = response.stream {
            startStream(stream, response, version: version, context: context)
            return
        }
        var headers = HTTPHeaders()
        headers.reserveCapacity(6 + response.headers.count)
        let contentType = HTTPServer.isSafeHeader(("Content-Type", response.contentType)) ? response.contentType : "application/octet-stream"
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        headers.add(name: "Vary", value: "Accept-Encoding")
        for header in response.headers where HTTPServer.isSafeHeader(header) { headers.add(name: header.name, value: header.value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !response.body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
