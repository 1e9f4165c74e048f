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
                    // NIO parses requests; answers are encoded here, head and body in one buffer
                    // and one write (NIO's pipelining handler, error handler and response encoder
                    // took a fifth of a small answer's CPU). Header values that come from elsewhere
                    // (answers forwarded from another agent) are checked before they are written.
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
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

/// One connection's requests, answered one at a time and in order: requests pipelined behind one
/// whose answer is still being made wait. Once 16 wait, no more is read from the socket until
/// they are answered, so what waits is at most that plus what one read already held (the
/// decoder parses a whole read). Answers are HTTP/1.1 (or 1.0, as asked) encoded here.
private final class HTTPAPIHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Complete requests held while an earlier one is answered; reading pauses from this many on.
    static let maxWaitingRequests = 16

    /// A complete request, or the answer it already has (a refusal made while reading it).
    private struct Pending {
        enum Work {
            case dispatch(APIRequest)
            /// `close`: the connection cannot go on (an unread body is still coming).
            case refuse(APIResponse, close: Bool)
        }
        var head: HTTPRequestHead
        var work: Work
    }

    private let dispatcher: APIDispatcher
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false
    private var waiting = CircularBuffer<Pending>(initialCapacity: 4)
    private var answering = false
    /// A `read` held back while `waiting` is full.
    private var readHeld = false
    private var closing = false
    /// The streamed answer this connection is carrying, if any: it owns the connection until it closes.
    private var stream: (any ResponseStream)?

    init(dispatcher: APIDispatcher) {
        self.dispatcher = dispatcher
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A streaming answer never ends while the connection lives: nothing after it is answered.
        guard stream == nil, !closing else { return }
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
            waiting.append(pending(head))
            answerNext(context: context)
        }
    }

    /// The request just read, or the refusal it gets without reaching the dispatcher.
    private func pending(_ head: HTTPRequestHead) -> Pending {
        if bodyTooLarge {
            let refusal = APIError.tooLarge("Request body too large, max size: \(HTTPServer.maxBodyBytes) bytes").response
            return Pending(head: head, work: .refuse(refusal, close: true))
        }
        guard let target = APIRequest.parseTarget(head.uri) else {
            return Pending(head: head, work: .refuse(APIError.badRequest("Invalid URL encoding in \(head.uri)").response, close: false))
        }
        let request = APIRequest(
            method: head.method.rawValue, path: target.path, query: target.query,
            headers: head.headers.map { ($0.name, $0.value) }, body: body)
        body = []
        return Pending(head: head, work: .dispatch(request))
    }

    /// Starts on the oldest waiting request unless an answer is being made.
    private func answerNext(context: ChannelHandlerContext) {
        guard !answering, !closing, stream == nil, let next = waiting.popFirst() else { return }
        answering = true
        let request: APIRequest
        switch next.work {
        case .refuse(let refusal, let close):
            finish(refusal, head: next.head, keepAlive: next.head.isKeepAlive && !close, context: context)
            return
        case .dispatch(let dispatched):
            request = dispatched
        }
        let keepAlive = next.head.isKeepAlive
        let pretty = request.has("pretty")
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        dispatcher.handle(request, on: context.eventLoop).whenSuccess { response in
            var response = response
            if pretty, response.contentType == "application/json" { response.body = JSONPretty.format(response.body) }
            let (handler, context) = loopBound.value
            handler.finish(response, head: next.head, keepAlive: keepAlive, context: context)
        }
    }

    private func finish(_ response: APIResponse, head: HTTPRequestHead, keepAlive: Bool, context: ChannelHandlerContext) {
        answering = false
        guard context.channel.isActive else { return }
        if let stream = response.stream {
            startStream(stream, response, version: head.version, context: context)
            return
        }
        let buffer = HTTPAnswer.encode(response, version: head.version, keepAlive: keepAlive, omitBody: head.method == .HEAD, allocator: context.channel.allocator)
        guard keepAlive else {
            closing = true
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        if readHeld && waiting.count < Self.maxWaitingRequests {
            readHeld = false
            context.read()
        }
        answerNext(context: context)
    }

    func read(context: ChannelHandlerContext) {
        // Backpressure on pipelining: no more reading while the waiting requests are many.
        if waiting.count >= Self.maxWaitingRequests {
            readHeld = true
            return
        }
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A request NIO cannot parse: answered 400 (when nothing else is being answered) and the
        // connection closed, as a Go server does; anything else just closes it.
        if error is HTTPParserError, !answering, waiting.isEmpty, stream == nil, !closing, context.channel.isActive {
            closing = true
            let refusal = APIResponse(status: 400, contentType: "text/plain; charset=utf-8", body: Array("400 Bad Request".utf8))
            let buffer = HTTPAnswer.encode(refusal, version: .http1_1, keepAlive: false, omitBody: false, allocator: context.channel.allocator)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        context.close(promise: nil)
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

    /// The head of a streamed answer, flushed at once so the client knows it is connected. HTTP/1.1
    /// gets chunked encoding; HTTP/1.0 gets the body until the connection closes.
    private func startStream(_ stream: any ResponseStream, _ response: APIResponse, version: HTTPVersion, context: ChannelHandlerContext) {
        let chunked = version.minor >= 1
        let buffer = HTTPAnswer.encodeStreamHead(response, version: version, chunked: chunked, allocator: context.channel.allocator)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        guard context.channel.isActive else { return }
        self.stream = stream
        stream.attach(StreamConnection(context: context, chunked: chunked))
    }
}

/// HTTP/1.x answers as bytes: status line, headers, blank line, body.
enum HTTPAnswer {
    static func encode(_ response: APIResponse, version: HTTPVersion, keepAlive: Bool, omitBody: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 160 + response.headers.count * 48 + response.body.count)
        writeStatusLine(response.status, version: version, into: &buffer)
        writeHeader("Content-Type", contentType(response), into: &buffer)
        buffer.writeStaticString("Content-Length: ")
        buffer.writeString(String(response.body.count))
        buffer.writeStaticString("\r\nVary: Accept-Encoding\r\n")
        for header in response.headers where HTTPServer.isSafeHeader(header) && !isFraming(header.name) {
            writeHeader(header.name, header.value, into: &buffer)
        }
        if !keepAlive {
            buffer.writeStaticString("Connection: close\r\n")
        } else if version.minor == 0 {
            buffer.writeStaticString("Connection: keep-alive\r\n")
        }
        buffer.writeStaticString("\r\n")
        if !omitBody { buffer.writeBytes(response.body) }
        return buffer
    }

    static func encodeStreamHead(_ response: APIResponse, version: HTTPVersion, chunked: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 256)
        writeStatusLine(response.status, version: version, into: &buffer)
        writeHeader("Content-Type", contentType(response), into: &buffer)
        buffer.writeStaticString("Vary: Accept-Encoding\r\n")
        for header in response.headers where HTTPServer.isSafeHeader(header) && !isFraming(header.name) {
            writeHeader(header.name, header.value, into: &buffer)
        }
        buffer.writeStaticString(chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Connection: close\r\n\r\n")
        return buffer
    }

    private static func contentType(_ response: APIResponse) -> String {
        HTTPServer.isSafeHeader(("Content-Type", response.contentType)) ? response.contentType : "application/octet-stream"
    }

    /// Framing is this server's to decide: a forwarded answer's own framing headers are dropped.
    private static func isFraming(_ name: String) -> Bool {
        name.equalsIgnoringCase("Content-Length") || name.equalsIgnoringCase("Transfer-Encoding") || name.equalsIgnoringCase("Connection")
    }

    private static func writeStatusLine(_ status: Int, version: HTTPVersion, into buffer: inout ByteBuffer) {
        buffer.writeStaticString(version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        switch status {
        case 200: buffer.writeStaticString("200 OK\r\n")
        case 404: buffer.writeStaticString("404 Not Found\r\n")
        default:
            buffer.writeString(String(status))
            buffer.writeStaticString(" ")
            buffer.writeString(HTTPResponseStatus(statusCode: status).reasonPhrase)
            buffer.writeStaticString("\r\n")
        }
    }

    private static func writeHeader(_ name: String, _ value: String, into buffer: inout ByteBuffer) {
        buffer.writeString(name)
        buffer.writeStaticString(": ")
        buffer.writeString(value)
        buffer.writeStaticString("\r\n")
    }
}
