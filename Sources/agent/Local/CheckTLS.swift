import ConsulCrypto
import ConsulTLS
import NIOCore
import NIOTLS
import NIOSSL
import Synchronization

/// TLS client settings for `https://` HTTP checks. A context loads trust roots and is costly to
/// build, so there are at most two, made on first use and shared by every check: one that verifies
/// the server's chain and name, one for `tls_skip_verify`.
///
/// Trust: the system's roots, plus `extraAuthorities` (Consul's `enable_agent_tls_for_checks` makes
/// checks trust the agent's own CA; tests pass a CA they made). The agent's CA may change with a
/// reload that re-reads it: the contexts are made again when the authorities differ.
final class CheckTLS: Sendable {
    private let extraAuthorities: @Sendable () -> [NIOSSLCertificate]
    private let contexts = Mutex<(authorities: [NIOSSLCertificate], byMode: [Mode: NIOSSLContext])>(([], [:]))

    /// `chainOnly`: NIOSSL checks the chain, `CheckServerNameVerifier` the DNS name. NIOSSL alone
    /// would also accept a certificate for the peer's IP address when a name was asked for, which
    /// Go (and so Consul) does not.
    private enum Mode: Hashable { case skip, full, chainOnly }

    convenience init(extraAuthorities: [NIOSSLCertificate] = []) {
        self.init(extraAuthoritiesSource: { extraAuthorities })
    }

    /// `extraAuthoritiesSource` is asked per probe connection (cheap: the agent's live TLS).
    init(extraAuthoritiesSource: @escaping @Sendable () -> [NIOSSLCertificate]) {
        self.extraAuthorities = extraAuthoritiesSource
    }

    private func context(_ mode: Mode) throws -> NIOSSLContext {
        let extraAuthorities = self.extraAuthorities()
        if let cached = contexts.withLock({ $0.authorities == extraAuthorities ? $0.byMode[mode] : nil }) { return cached }
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch mode {
        case .skip: configuration.certificateVerification = .none
        case .full: configuration.certificateVerification = .fullVerification
        case .chainOnly: configuration.certificateVerification = .noHostnameVerification
        }
        if !extraAuthorities.isEmpty { configuration.additionalTrustRoots = [.certificates(extraAuthorities)] }
        let context = try NIOSSLContext(configuration: configuration)
        return contexts.withLock { current in
            if current.authorities != extraAuthorities { current = (extraAuthorities, [:]) }
            if let raced = current.byMode[mode] { return raced }
            current.byMode[mode] = context
            return context
        }
    }

    /// Adds TLS to one probe connection. SNI (and the name checked against the server's
    /// certificate) is `tls_server_name` if given, else the URL's host; an IP literal sends no SNI
    /// and is checked against the certificate's IP addresses instead, as Go's client does.
    func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations, skipVerify: Bool, serverName: String, host: String) throws {
        let name = serverName.isEmpty ? host : serverName
        let isIPLiteral = (try? SocketAddress(ipAddress: name, port: 0)) != nil
        if skipVerify {
            try pipeline.addHandler(NIOSSLClientHandler(context: context(.skip), serverHostname: isIPLiteral ? nil : name))
        } else if isIPLiteral {
            try pipeline.addHandler(NIOSSLClientHandler(context: context(.full), serverHostname: nil))
        } else {
            try pipeline.addHandler(NIOSSLClientHandler(context: context(.chainOnly), serverHostname: name))
            try pipeline.addHandler(CheckServerNameVerifier(expected: name))
        }
    }

    /// Go's wording for a failed handshake, which operators grep for.
    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate verify failed") {
            return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        }
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return "tls: failed to verify certificate: x509: certificate is not valid for this name (\(extra))"
        }
        return "tls: \(text)"
    }
}

/// Checks the server certificate's DNS names against the expected name once the handshake is done,
/// and holds the request back until then, so nothing is sent to a server that is not the one asked for.
final class CheckServerNameVerifier: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny

    private let expected: String
    private var held: [(NIOAny, EventLoopPromise<Void>?)] = []
    private var verified = false

    init(expected: String) { self.expected = expected.lowercased() }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if verified { context.write(data, promise: promise) } else { held.append((data, promise)) }
    }

    func flush(context: ChannelHandlerContext) {
        if verified { context.flush() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent {
            let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate
            let names = certificate.map(TLSMaterial.dnsNames(of:)) ?? []
            if names.contains(where: { Self.matches($0.lowercased(), expected) }) {
                verified = true
                for (data, promise) in held { context.write(data, promise: promise) }
                held = []
                context.flush()
            } else {
                let listed = names.isEmpty ? "no DNS names" : "valid for " + names.joined(separator: ", ")
                let error = CheckProbeError("tls: failed to verify certificate: x509: certificate is \(listed), not \(expected)")
                failHeld(error)
                context.fireErrorCaught(error)
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failHeld(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    private func failHeld(_ error: any Error) {
        let pending = held
        held = []
        for (_, promise) in pending { promise?.fail(error) }
    }

    /// Exact match, or a `*.` wildcard standing for exactly one leftmost label (RFC 6125).
    static func matches(_ pattern: String, _ name: String) -> Bool {
        if pattern == name { return true }
        guard pattern.hasPrefix("*."), let dot = name.firstIndex(of: ".") else { return false }
        return name[name.index(after: dot)...] == pattern.dropFirst(2) && name[..<dot].count > 0
    }
}
