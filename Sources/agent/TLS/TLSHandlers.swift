import ConsulCrypto
import ConsulTLS
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

/// Sits behind a TLS handler and holds back everything written until the handshake is done and,
/// when `requiredName` is set, the peer's certificate names it among its DNS names. NIOSSL's own
/// hostname check also accepts a certificate whose IP address matches the socket's, and every
/// certificate `consul tls` makes names 127.0.0.1, so a client certificate would pass it as a
/// server on loopback; `verify_server_hostname` is checked here instead, by name only, before a
/// single frame (Raft entries, forwarded requests) leaves.
///
/// Also turns a failed handshake into one log line with a reason an operator understands
/// (unknown CA, wrong name, expired, no certificate), closes the connection, and gives up a
/// handshake that does not finish in time.
final class TLSHandshakeObserver: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private let events: TLSEvents?
    private let material: TLSMaterial?
    private let peer: String
    private let outgoing: Bool
    private let requiredName: String?
    private var timeout: Scheduled<Void>?
    private var failed = false
    /// Writes waiting for the handshake (and the name check); nil once they may pass.
    private var held: [(data: NIOAny, promise: EventLoopPromise<Void>?)]? = []
    private var flushHeld = false

    /// `events` nil (the CLI): failures are only passed on as errors, not logged.
    init(events: TLSEvents?, material: TLSMaterial?, peer: String, outgoing: Bool, requiredName: String?) {
        self.events = events
        self.material = material
        self.peer = peer
        self.outgoing = outgoing
        self.requiredName = requiredName
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timeout = context.eventLoop.scheduleTask(in: InternalRPCTLS.handshakeTimeout) {
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        failHeld(ChannelError.ioOnClosedChannel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        failHeld(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard held != nil else { return context.write(data, promise: promise) }
        held?.append((data, promise))
    }

    func flush(context: ChannelHandlerContext) {
        guard held != nil else { return context.flush() }
        flushHeld = true
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .handshakeCompleted = event as? TLSUserEvent else { return context.fireUserInboundEventTriggered(event) }
        timeout?.cancel()
        if let requiredName {
            let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLHandler.self).peerCertificate
            let names = certificate.map(TLSMaterial.dnsNames(of:)) ?? []
            guard names.contains(where: { $0.lowercased() == requiredName.lowercased() }) else {
                // Reported, passed on and the connection closed as any TLS failure is.
                errorCaught(context: context, error: TLSNameMismatch(required: requiredName, names: names))
                return
            }
        }
        events?.handshakeSucceeded(peer: peer, outgoing: outgoing)
        context.fireUserInboundEventTriggered(event)
        // Now the held writes may go, in order.
        let waiting = held ?? []
        held = nil
        for write in waiting { context.write(write.data, promise: write.promise) }
        if flushHeld || !waiting.isEmpty { context.flush() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !failed, Self.isTLSError(error) else { return context.fireErrorCaught(error) }
        failed = true
        failHeld(error)
        if let events {
            let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLHandler.self).peerCertificate
            events.handshakeFailed(peer: peer, outgoing: outgoing, reason: Self.reason(
                for: error, peerCertificate: certificate, material: material, expectedName: requiredName, outgoing: outgoing))
        }
        // The handlers behind learn why before they see the connection close.
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    private func failHeld(_ error: any Error) {
        let waiting = held ?? []
        held = []
        for write in waiting { write.promise?.fail(error) }
    }

    static func isTLSError(_ error: any Error) -> Bool {
        error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError || error is TLSNameMismatch
    }

    /// The words for a failed handshake. BoringSSL names alerts and checks in capitals
    /// ("CERTIFICATE_VERIFY_FAILED", "TLSV1_ALERT_UNKNOWN_CA"); a local verification failure is
    /// explained from the certificate itself.
    static func reason(
        for error: any Error, peerCertificate: NIOSSLCertificate?, material: TLSMaterial?, expectedName: String?, outgoing: Bool
    ) -> String {
        if let mismatch = error as? TLSNameMismatch {
            return "certificate is valid for \(mismatch.names.joined(separator: ", ")), not \(mismatch.required)"
        }
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

/// The peer's certificate does not carry the DNS name that had to be there.
struct TLSNameMismatch: Error, Sendable {
    var required: String
    var names: [String]
}
