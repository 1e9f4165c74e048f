import ConsulCrypto
import ConsulTLS
import NIOCore
import NIOSSL
import Synchronization

/// TLS for what an agent listens on and dials, set up once at start from its configuration, as
/// Consul's TLS configurator does: the server port (agent RPC and Raft, `tls.internal_rpc` over
/// `tls.defaults`) and the HTTPS API (`tls.https` over `tls.defaults`). Certificate files are read
/// here and only here, so a bad file stops the start with its name and no event loop ever reads one.
struct AgentTLS: Sendable {
    /// nil: the server port speaks plaintext only and agents dial it in plaintext.
    let rpc: InternalRPCTLS?
    /// nil: no HTTPS listener.
    let https: NIOSSLContext?
    let httpsVerifyIncoming: Bool
    let events: TLSEvents

    /// Reads the files the configuration names and builds the TLS contexts. The message of the
    /// error names the stanza and the file.
    static func make(_ config: AgentConfig, events: TLSEvents) throws(TLSMaterialError) -> AgentTLS {
        let rpcSettings = config.tls.effectiveInternalRPC
        var rpc: InternalRPCTLS?
        if rpcEnabled(config) {
            rpc = try InternalRPCTLS(
                settings: rpcSettings, serverName: "server.\(config.datacenter).\(config.domainWithoutDot)", events: events)
        }

        var https: NIOSSLContext?
        let httpsSettings = config.tls.effectiveHTTPS
        if config.ports.https > 0 {
            let material = try prefixing("tls.https", TLSMaterial.load(httpsSettings.files))
            guard material.hasCertificate else {
                throw TLSMaterialError("ports.https is \(config.ports.https) but no cert_file and key_file are set for HTTPS (tls.https or tls.defaults)")
            }
            let configuration = try prefixing("tls.https", material.serverConfiguration(
                requireClientCertificate: httpsSettings.verifyIncoming ?? false, minimumVersion: httpsSettings.minimumVersion))
            https = try makeContext(configuration, stanza: "tls.https", files: httpsSettings.files)
        }
        return AgentTLS(rpc: rpc, https: https, httpsVerifyIncoming: httpsSettings.verifyIncoming ?? false, events: events)
    }

    /// Whether the server port speaks TLS at all: any file, or verifying either way. A reload may
    /// change certificates and settings but not this (Consul: TLS cannot be turned on or off by a reload).
    static func rpcEnabled(_ config: AgentConfig) -> Bool {
        let settings = config.tls.effectiveInternalRPC
        return settings.files != TLSFiles() || settings.verifyOutgoing == true || settings.verifyIncoming == true
    }

    static func prefixing<T>(_ stanza: String, _ body: @autoclosure () throws(TLSMaterialError) -> T) throws(TLSMaterialError) -> T {
        do {
            return try body()
        } catch {
            throw TLSMaterialError("\(stanza): \(error.description)")
        }
    }

    static func makeContext(_ configuration: TLSConfiguration, stanza: String, files: TLSFiles) throws(TLSMaterialError) -> NIOSSLContext {
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSMaterialError("\(stanza): cannot use cert_file \(files.certFile ?? "-") with key_file \(files.keyFile ?? "-"): \(error)")
        }
    }

    /// One line per listener for the log at start.
    var summary: [String] {
        var lines: [String] = []
        if let rpc {
            lines.append("server port TLS: accept RPCTLS \(rpc.serverContext != nil), verify_incoming \(rpc.verifyIncoming), "
                + "dial servers over TLS \(rpc.clientContext != nil), verify_server_hostname \(rpc.verifyServerHostname) (\(rpc.serverName))")
        }
        if https != nil { lines.append("HTTPS listener on: verify_incoming \(httpsVerifyIncoming)") }
        return lines
    }

    /// The `tls` section of `consul info` (`/v1/agent/self` Stats).
    func stats(httpsPort: Int) -> [String: String] {
        var stats = events.counters
        stats["rpc_tls"] = rpc?.serverContext != nil ? "enabled" : "disabled"
        stats["rpc_verify_incoming"] = String(rpc?.verifyIncoming ?? false)
        stats["rpc_verify_outgoing"] = String(rpc?.clientContext != nil)
        stats["rpc_verify_server_hostname"] = String(rpc?.verifyServerHostname ?? false)
        stats["https"] = https != nil ? "enabled on port \(httpsPort)" : "disabled"
        stats["https_verify_incoming"] = String(https != nil && httpsVerifyIncoming)
        return stats
    }
}

/// TLS on the server port: what a server accepts after the RPCTLS byte, and how any agent dials
/// servers.
final class InternalRPCTLS: Sendable {
    /// Accepts RPCTLS (0x03) connections; nil when this agent has no certificate.
    let serverContext: NIOSSLContext?
    /// Dials servers over TLS; nil: plaintext (Consul dials TLS only with `verify_outgoing`).
    let clientContext: NIOSSLContext?
    /// Plaintext connections and TLS without a client certificate are refused.
    let verifyIncoming: Bool
    /// Servers must present `serverName`: checked when dialing a server, and, for Raft, on a
    /// server's incoming connections when `verifyIncoming` made the peer show a certificate.
    let verifyServerHostname: Bool
    /// `server.<dc>.<domain>`.
    let serverName: String
    let material: TLSMaterial
    let events: TLSEvents

    /// A TLS handshake that has not finished after this long is given up (a peer cannot hold a
    /// connection open by sending 0x03 and nothing else).
    static let handshakeTimeout: TimeAmount = .seconds(10)

    init(settings: AgentConfig.TLSSettings, serverName: String, events: TLSEvents) throws(TLSMaterialError) {
        let stanza = "tls.internal_rpc"
        material = try AgentTLS.prefixing(stanza, TLSMaterial.load(settings.files))
        verifyIncoming = settings.verifyIncoming ?? false
        // Consul: verify_server_hostname implies verify_outgoing.
        verifyServerHostname = settings.verifyServerHostname ?? false
        let verifyOutgoing = (settings.verifyOutgoing ?? false) || verifyServerHostname
        self.serverName = serverName
        self.events = events
        if material.hasCertificate {
            let configuration = try AgentTLS.prefixing(stanza, material.serverConfiguration(
                requireClientCertificate: verifyIncoming, minimumVersion: settings.minimumVersion))
            serverContext = try AgentTLS.makeContext(configuration, stanza: stanza, files: settings.files)
        } else {
            serverContext = nil
        }
        if verifyOutgoing {
            // The chain is checked by NIOSSL, the name by `TLSHandshakeObserver` (DNS names only).
            let configuration = try AgentTLS.prefixing(stanza, material.clientConfiguration(
                verify: true, verifyHostname: false, minimumVersion: settings.minimumVersion))
            clientContext = try AgentTLS.makeContext(configuration, stanza: stanza, files: settings.files)
        } else {
            clientContext = nil
        }
    }

    /// Client side of a new outgoing server-port connection, before it connects: when dialing
    /// TLS, the RPCTLS byte goes out first, then the handshake; the caller's own first byte (RPC
    /// or Raft) and frames then travel inside TLS. `peer` is the host, so agent RPC and Raft to one
    /// server share one "logged once" entry. Call on the channel's event loop.
    func secureOutgoing(_ channel: any Channel, peer: String) throws {
        guard let clientContext else { return }
        // The name is sent (SNI) but checked by the observer: see `TLSHandshakeObserver`.
        let handler = try NIOSSLClientHandler(context: clientContext, serverHostname: verifyServerHostname ? serverName : nil)
        try channel.pipeline.syncOperations.addHandlers(
            RPCTLSPreamble(),
            handler,
            TLSHandshakeObserver(events: events, material: material, peer: peer, outgoing: true, requiredName: verifyServerHostname ? serverName : nil))
    }

    /// Server side, after the RPCTLS byte was read by `demultiplexer`: the TLS handler, its
    /// observer, and a demultiplexer for the inner first byte, placed right after it.
    func secureIncoming(_ context: ChannelHandlerContext, after demultiplexer: any ChannelHandler, inner: any ChannelHandler) throws {
        guard let serverContext else { throw TLSRefusal.notConfigured }
        let peer = context.channel.remoteAddress?.ipAddress ?? "unknown"
        try context.pipeline.syncOperations.addHandlers(
            [NIOSSLServerHandler(context: serverContext), TLSHandshakeObserver(events: events, material: material, peer: peer, outgoing: false, requiredName: nil), inner],
            position: .after(demultiplexer))
    }

    /// On a server's TLS connection that asks for Raft: with `verify_server_hostname` the peer
    /// must have shown a server certificate, so a client certificate cannot join Raft.
    func allowsRaft(on channel: any Channel) -> Bool {
        guard verifyServerHostname, verifyIncoming else { return true }
        let certificate = try? channel.pipeline.syncOperations.handler(type: NIOSSLHandler.self).peerCertificate
        guard let certificate else { return false }
        return TLSMaterial.dnsNames(of: certificate).contains(serverName)
    }
}

enum TLSRefusal: Error {
    case notConfigured
}

/// Agent-facing views of a stanza's settings.
extension AgentConfig.TLSSettings {
    var files: TLSFiles { TLSFiles(caFile: caFile, caPath: caPath, certFile: certFile, keyFile: keyFile) }
    /// TLS 1.2 unless configured (Consul's default); the validator rejected unknown names.
    var minimumVersion: TLSVersion { tlsMinVersion.flatMap { TLSVersion(consulName: $0) } ?? .tlsv12 }
}

extension AgentConfig {
    /// `domain` as certificates spell it: "consul", not "consul.".
    var domainWithoutDot: String { domain.hasSuffix(".") ? String(domain.dropLast()) : domain }
}

/// The agent's TLS while it runs, replaced by a reload that re-read the certificate files.
/// Listeners and dialers ask it as each new connection starts, so new connections use the new
/// certificates and connections already open keep the ones they started with.
final class LiveTLS: Sendable {
    private let state: Mutex<AgentTLS>

    init(_ tls: AgentTLS) {
        state = Mutex(tls)
    }

    var current: AgentTLS { state.withLock { $0 } }
    var rpc: InternalRPCTLS? { current.rpc }
    var https: NIOSSLContext? { current.https }

    func replace(_ tls: AgentTLS) { state.withLock { $0 = tls } }
}
