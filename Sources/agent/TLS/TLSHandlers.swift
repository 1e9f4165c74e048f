import ConsulCrypto
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

/// What went wrong with TLS on this agent, counted, and logged once per peer and reason: a peer
/// whose certificate is refused is redialed with backoff for as long as it stays in the
/// configuration, and the log must say why once, not on every attempt.
final class TLSEvents: Sendable {
    /// Distinct (peer, reason) pairs remembered; past this the memory is cleared (a line may repeat).
    static let maxRemembered = 4096

    fileprivate struct State {
        var lastReason: [String: String] = [:]
        var handshakeFailures = 0
        var refusedPlaintext = 0
        var refusedNotServer = 0
        var refusedNoTLS = 0
    }

    private let logger: AgentLogger
    private let state = Mutex(State())

    init(logger: AgentLogger) {
        self.logger = logger
    }

    enum Refusal {
        /// Plaintext RPC or Raft while `verify_incoming` is on.
        case plaintext
        /// A TLS peer without a server certificate asked for Raft.
        case notServer
        /// RPCTLS on a server that has no certificate.
        case noTLS
    }

    func handshakeFailed(peer: String, outgoing: Bool, reason: String) {
        let key = (outgoing ? "to " : "from ") + peer
        let first = state.withLock { state -> Bool in
            state.handshakeFailures += 1
            return state.remember(key, reason)
        }
        guard first else { return }
        logger.warn("agent.tls", outgoing ? "TLS handshake with server failed" : "TLS handshake from peer failed",
                    [outgoing ? "server" : "peer": peer, "reason": reason])
    }

    func handshakeSucceeded(peer: String, outgoing: Bool) {
        let key = (outgoing ? "to " : "from ") + peer
        // A later failure is news again.
        _ = state.withLock { $0.lastReason.removeValue(forKey: key) }
    }

    func refused(peer: String, _ refusal: Refusal) {
        let reason: String
        switch refusal {
        case .plaintext: reason = "plaintext connection refused: verify_incoming requires TLS with a client certificate"
        case .notServer: reason = "Raft over TLS refused: the peer's certificate is not a server certificate (verify_server_hostname)"
        case .noTLS: reason = "TLS connection refused: this server has no certificate (cert_file/key_file)"
        }
        let first = state.withLock { state -> Bool in
            switch refusal {
            case .plaintext: state.refusedPlaintext += 1
            case .notServer: state.refusedNotServer += 1
            case .noTLS: state.refusedNoTLS += 1
            }
            return state.remember("refused " + peer, reason)
        }
        if first { logger.warn("agent.server.rpc", reason, ["peer": peer]) }
    }

    var counters: [String: String] {
        state.withLock { state in
            [
                "handshake_failures": String(state.handshakeFailures), "refused_plaintext": String(state.refusedPlaintext),
                "refused_not_server": String(state.refusedNotServer), "refused_no_tls": String(state.refusedNoTLS),
            ]
        }
    }
}

extension TLSEvents.State {
    /// True if `reason` is new for `key`.
    fileprivate mutating func remember(_ key: String, _ reason: String) -> Bool {
        guard lastReason[key] != reason else { return false }
        if lastReason.count >= TLSEvents.maxRemembered { lastReason.removeAll() }
        lastReason[key] = reason
        return true
    }
}

/// Writes Consul's RPCTLS byte (0x03) in plaintext as the connection comes up, before the TLS
/// handler behind it starts its handshake, then steps aside.
final class RPCTLSPreamble: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    static let byte: UInt8 = 0x03

    func channelActive(context: ChannelHandlerContext) {
        // Written from this handler's place, so it goes straight to the socket, not through TLS.
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: [Self.byte])), promise: nil)
        context.fireChannelActive()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Added to a channel that is already up: nothing will call channelActive.
        if context.channel.isActive {
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: [Self.byte])), promise: nil)
        }
    }
}

/// Sits behind a TLS handler: turns a handshake failure into one log line with a reason an
/// operator understands (unknown CA, wrong name, expired, no certificate) and closes the
/// connection; gives up a handshake that does not finish in time.
final class TLSHandshakeObserver: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let tls: InternalRPCTLS?
    private let events: TLSEvents
    private let material: TLSMaterial?
    private let peer: String
    private let outgoing: Bool
    private let expectedName: String?
    private var timeout: Scheduled<Void>?
    private var done = false

    init(tls: InternalRPCTLS, peer: String, outgoing: Bool, expectedName: String?) {
        self.tls = tls
        self.events = tls.events
        self.material = tls.material
        self.peer = peer
        self.outgoing = outgoing
        self.expectedName = expectedName
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timeout = context.eventLoop.scheduleTask(in: InternalRPCTLS.handshakeTimeout) {
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            timeout?.cancel()
            events.handshakeSucceeded(peer: peer, outgoing: outgoing)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done, Self.isTLSError(error) {
            done = true
            let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLHandler.self).peerCertificate
            events.handshakeFailed(peer: peer, outgoing: outgoing, reason: Self.reason(
                for: error, peerCertificate: certificate, material: material, expectedName: expectedName, outgoing: outgoing))
            context.close(promise: nil)
        }
        context.fireErrorCaught(error)
    }

    static func isTLSError(_ error: any Error) -> Bool {
        error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError
    }

    /// The words for a failed handshake. BoringSSL names alerts and checks in capitals
    /// ("CERTIFICATE_VERIFY_FAILED", "TLSV1_ALERT_UNKNOWN_CA"); a local verification failure is
    /// explained from the certificate itself.
    static func reason(
        for error: any Error, peerCertificate: NIOSSLCertificate?, material: TLSMaterial?, expectedName: String?, outgoing: Bool
    ) -> String {
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            let names = peerCertificate.map(TLSMaterial.dnsNames(of:)) ?? []
            return "certificate is valid for \(names.joined(separator: ", ")), not \(expectedName ?? "the expected name")"
        }
        let text = String(describing: error)
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return material?.explainRejection(of: peerCertificate) ?? "certificate verify failed"
        }
        if text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") {
            return "the peer presented no certificate (verify_incoming requires one)"
        }
        if text.contains("CERTIFICATE_REQUIRED") {
            return "the server requires a client certificate (verify_incoming) and none was sent"
        }
        if text.contains("ALERT_UNKNOWN_CA") { return "the peer does not trust our certificate: unknown certificate authority" }
        if text.contains("ALERT_CERTIFICATE_EXPIRED") { return "the peer refused our certificate: it has expired" }
        if text.contains("ALERT_BAD_CERTIFICATE") || text.contains("ALERT_CERTIFICATE_UNKNOWN") {
            return "the peer refused our certificate"
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("HTTP_REQUEST") || text.contains("PACKET_LENGTH_TOO_LONG") {
            return outgoing ? "the server does not speak TLS on this port" : "the peer does not speak TLS"
        }
        if text.contains("UNSUPPORTED_PROTOCOL") || text.contains("PROTOCOL_VERSION") {
            return "no TLS version in common (tls_min_version)"
        }
        return text
    }
}
