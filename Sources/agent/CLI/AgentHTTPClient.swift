import ConsulCrypto
import ConsulTLS
import Dispatch
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// How CLI commands talk to their agent: one HTTP/1.1 request per call over a fresh connection,
/// blocking the calling (non-event-loop) thread; HTTPS when the address says `https://` (or
/// `CONSUL_HTTP_SSL=true`), checked against `-ca-file`/`-ca-path` (else the system's CAs), with a
/// client certificate when the agent's `verify_incoming` asks for one.
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

    /// HTTPS settings: the CLI's `-ca-file`, `-client-cert`, … and their environment variables.
    struct TLSOptions: Sendable, Equatable {
        var caFile: String?
        var caPath: String?
        var clientCert: String?
        var clientKey: String?
        /// `-tls-server-name`: the name to ask for (SNI) and to check the certificate against.
        var serverName: String?
        /// `CONSUL_HTTP_SSL_VERIFY=false`: no certificate check at all.
        var verify = true
    }

    var host: String
    var port: Int
    var token: String?
    var timeout: Duration = .seconds(660)
    /// Set for HTTPS.
    private(set) var tls: NIOSSLContext?
    private(set) var tlsServerName: String?
    private var tlsMaterial: TLSMaterial?
    private var tlsVerify = true

    var scheme: String { tls == nil ? "http" : "https" }

    /// Reads `-http-addr` / `CONSUL_HTTP_ADDR` the way Consul does: `host:port`, `http://host:port`,
    /// `https://host:port`, or `unix://` (not supported here). `defaultHTTPS`: `CONSUL_HTTP_SSL`
    /// for an address without a scheme.
    init(address: String, token: String?, defaultHTTPS: Bool = false, tlsOptions: TLSOptions = TLSOptions()) throws(Failure) {
        var rest = Substring(address)
        var https = defaultHTTPS
        if rest.hasPrefix("http://") {
            rest = rest.dropFirst(7)
            https = false
        } else if rest.hasPrefix("https://") {
            rest = rest.dropFirst(8)
            https = true
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
        if https { try configureTLS(tlsOptions) }
    }

    /// Reads the CA and client certificate files once, before any connection.
    private mutating func configureTLS(_ options: TLSOptions) throws(Failure) {
        if (options.clientCert == nil) != (options.clientKey == nil) {
            throw Failure(description: "-client-cert and -client-key must be given together")
        }
        let material: TLSMaterial
        do throws(TLSMaterialError) {
            material = try TLSMaterial.load(TLSFiles(
                caFile: options.caFile, caPath: options.caPath, certFile: options.clientCert, keyFile: options.clientKey))
        } catch {
            throw Failure(description: "Error loading TLS files: \(error.description)")
        }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if material.hasCertificate, let key = material.privateKey {
            configuration.certificateChain = material.certificateChain.map { .certificate($0) }
            configuration.privateKey = .privateKey(key)
        }
        // An IP address is never sent as SNI; NIOSSL then checks the certificate's IP names.
        tlsServerName = options.serverName ?? (AgentConfigValidator.isIP(host) ? nil : host)
        tlsVerify = options.verify
        if !options.verify {
            configuration.certificateVerification = .none
        } else {
            if material.hasAuthorities { configuration.trustRoots = .certificates(material.authorities) }
            // With a name, `TLSHandshakeObserver` checks it (DNS names only); without, NIOSSL the IP.
            configuration.certificateVerification = tlsServerName == nil ? .fullVerification : .noHostnameVerification
        }
        do {
            tls = try NIOSSLContext(configuration: configuration)
        } catch {
            throw Failure(description: "Error setting up TLS with -client-cert \(options.clientCert ?? "-") and -client-key \(options.clientKey ?? "-"): \(error)")
        }
        tlsMaterial = material
    }

    func send(_ method: HTTPMethod, _ target: String, body: [UInt8] = []) throws(Failure) -> Response {
        let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Response.self)
        do {
            let channel = try open(method, target, body: body, handler: { ResponseCollector(promise: promise) }).wait()
            let timeoutTask = channel.eventLoop.scheduleTask(in: .nanoseconds(timeout.totalNanosecondsForNIO)) {
                promise.fail(Failure(description: "timed out waiting for the agent"))
                channel.close(promise: nil)
            }
            defer { timeoutTask.cancel() }
            return try promise.futureResult.wait()
        } catch {
            promise.fail(error)
            throw failure(for: error, target: target)
        }
    }

    /// `send` for async callers (`consul lock`): the calling task is suspended, not a thread
    /// blocked, and cancelling the task closes the connection (a blocking query ends at once).
    func send(_ method: HTTPMethod, _ target: String, body: [UInt8] = []) async throws(Failure) -> Response {
        let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Response.self)
        let connecting = open(method, target, body: body, handler: { ResponseCollector(promise: promise) })
        let timeout = self.timeout
        connecting.whenSuccess { channel in
            let timeoutTask = channel.eventLoop.scheduleTask(in: .nanoseconds(timeout.totalNanosecondsForNIO)) {
                promise.fail(Failure(description: "timed out waiting for the agent"))
                channel.close(promise: nil)
            }
            promise.futureResult.whenComplete { _ in timeoutTask.cancel() }
        }
        connecting.whenFailure { promise.fail($0) }
        do {
            return try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                promise.fail(CancellationError())
                connecting.whenSuccess { $0.close(promise: nil) }
            }
        } catch {
            throw failure(for: error, target: target)
        }
    }

    /// How a streamed answer (`/v1/agent/monitor`) ended.
    enum StreamEnd: Sendable, Equatable {
        /// The agent closed the connection.
        case closedByAgent
        /// `interrupt` was called (SIGINT).
        case interrupted
        /// A non-2xx answer instead of a stream: its status and body text.
        case refused(status: Int, message: String)
    }

    /// A streamed GET: each piece of the body goes to `onChunk` (on a queue of its own, so a slow
    /// standard output holds back reading from the agent, never the event loop) until the agent
    /// closes the connection or `interrupt` is called. Blocks the calling (non-loop) thread.
    func stream(
        _ target: String, interrupt: (@escaping @Sendable () -> Void) -> Void, onChunk: @escaping @Sendable ([UInt8]) -> Void
    ) throws(Failure) -> StreamEnd {
        let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: StreamEnd.self)
        interrupt { promise.succeed(.interrupted) }
        do {
            let channel = try open(.GET, target, body: [], handler: { StreamReader(promise: promise, onChunk: onChunk) }).wait()
            promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
            return try promise.futureResult.wait()
        } catch {
            promise.fail(error)
            throw failure(for: error, target: target)
        }
    }

    /// Connects (TLS when configured), installs the HTTP client handlers and `handler`, and sends
    /// the request; the future is the connected channel.
    private func open<Handler: ChannelInboundHandler>(
        _ method: HTTPMethod, _ target: String, body: [UInt8], handler: @escaping @Sendable () -> Handler
    ) -> EventLoopFuture<any Channel> where Handler.InboundIn == HTTPClientResponsePart {
        let host = self.host
        let port = self.port
        let tls = self.tls
        let serverName = self.tlsServerName
        let checkName = tlsVerify && serverName != nil
        let token = self.token
        return ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // A name (-tls-server-name, or the host) is checked against the certificate's DNS
                        // names only, as Go's client does; an IP address against its IP names (NIOSSL).
                        try channel.pipeline.syncOperations.addHandlers(
                            NIOSSLClientHandler(context: tls, serverHostname: serverName),
                            TLSHandshakeObserver(events: nil, material: nil, peer: host, outgoing: true, requiredName: checkName ? serverName : nil))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler())
                }
            }
            .connect(host: host, port: port)
            .map { channel in
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
                return channel
            }
    }

    /// Consul's wording for what went wrong on the way to the agent.
    private func failure(for error: any Error, target: String) -> Failure {
        if let failure = error as? Failure { return failure }
        if let failure = error as? TLSFailure {
            // Go's client words it "x509: …"; ours says the same things in its own words.
            let reason = TLSHandshakeObserver.reason(
                for: failure.error, peerCertificate: failure.peerCertificate, material: tlsMaterial,
                expectedName: tlsServerName ?? host, outgoing: true)
            return Failure(description: "Get \"\(scheme)://\(host):\(port)\(target)\": tls: \(reason)")
        }
        if error is CancellationError { return Failure(description: "request cancelled") }
        let text = "\(error)"
        if text.contains("Connection refused") {
            return Failure(description: "dial tcp \(host):\(port): connect: connection refused")
        }
        return Failure(description: "\(host):\(port): \(text)")
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
        if TLSHandshakeObserver.isTLSError(error) {
            // Kept with the error: what the agent presented is what explains a refused handshake.
            let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLHandler.self).peerCertificate
            promise.fail(TLSFailure(error: error, peerCertificate: certificate))
        } else {
            promise.fail(error)
        }
        context.close(promise: nil)
    }
}

/// Reads a streamed answer: a 2xx body goes out piece by piece through a serial queue; reading
/// pauses while more than `maxPendingBytes` wait there (backpressure reaches the agent, which
/// then drops lines for this client rather than buffer them). Anything else is collected whole.
private final class StreamReader: ChannelDuplexHandler, @unchecked Sendable {
    // @unchecked: every field is touched only on the channel's event loop (the queue hops back).
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Never

    static let maxPendingBytes = 1 << 20
    /// The most of a refusal's body kept for the error message.
    static let maxRefusalBytes = 64 << 10

    private let promise: EventLoopPromise<AgentHTTPClient.StreamEnd>
    private let onChunk: @Sendable ([UInt8]) -> Void
    private let output = DispatchQueue(label: "consul.cli.stream-output")
    private var status = 0
    private var refusedBody: [UInt8] = []
    private var pendingBytes = 0
    private var readHeld = false
    private var finished = false

    init(promise: EventLoopPromise<AgentHTTPClient.StreamEnd>, onChunk: @escaping @Sendable ([UInt8]) -> Void) {
        self.promise = promise
        self.onChunk = onChunk
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(var buffer):
            let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            guard (200..<300).contains(status) else {
                if refusedBody.count < Self.maxRefusalBytes { refusedBody += bytes }
                return
            }
            pendingBytes += bytes.count
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            output.async { [onChunk] in
                onChunk(bytes)
                loop.execute {
                    let (handler, context) = bound.value
                    handler.pendingBytes -= bytes.count
                    if handler.readHeld, handler.pendingBytes <= StreamReader.maxPendingBytes {
                        handler.readHeld = false
                        context.read()
                    }
                }
            }
        case .end:
            finish(context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if pendingBytes > Self.maxPendingBytes {
            readHeld = true
            return
        }
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A stream cut off mid-chunk (the agent stopped) ends like a closed one, as for Consul's CLI.
        if (200..<300).contains(status) {
            finish(context: context)
        } else {
            promise.fail(error)
        }
        context.close(promise: nil)
    }

    private func finish(context: ChannelHandlerContext) {
        guard !finished else { return }
        finished = true
        guard status != 0 else {
            promise.fail(AgentHTTPClient.Failure(description: "connection closed before a complete response"))
            return
        }
        let end: AgentHTTPClient.StreamEnd = (200..<300).contains(status)
            ? .closedByAgent : .refused(status: status, message: String(decoding: refusedBody, as: UTF8.self))
        // What was read is printed before the command reports the end.
        let promise = self.promise
        output.async { promise.succeed(end) }
    }
}

/// A TLS error on the CLI's connection with the certificate the agent presented, if any.
private struct TLSFailure: Error, @unchecked Sendable {
    // NIOSSLCertificate is Sendable; the error is whatever NIOSSL raised (all Sendable types).
    var error: any Error
    var peerCertificate: NIOSSLCertificate?
}
