import ConsulCrypto
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
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: Response.self)
        let host = self.host
        let tls = self.tls
        let serverName = self.tlsServerName
        let checkName = tlsVerify && serverName != nil
        do {
            let channel = try ClientBootstrap(group: group)
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
        } catch let failure as TLSFailure {
            // Go's client words it "x509: …"; ours says the same things in its own words.
            let reason = TLSHandshakeObserver.reason(
                for: failure.error, peerCertificate: failure.peerCertificate, material: tlsMaterial,
                expectedName: tlsServerName ?? host, outgoing: true)
            throw Failure(description: "Get \"\(scheme)://\(host):\(port)\(target)\": tls: \(reason)")
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

/// A TLS error on the CLI's connection with the certificate the agent presented, if any.
private struct TLSFailure: Error, @unchecked Sendable {
    // NIOSSLCertificate is Sendable; the error is whatever NIOSSL raised (all Sendable types).
    var error: any Error
    var peerCertificate: NIOSSLCertificate?
}
