import NIOCore
import NIOPosix
import Raft
import Synchronization

/// The server port (8300): one TCP listener whose connections say what they carry in their first
/// byte, as Consul's do. `0x00` (RPCConsul) is agent RPC, served by `RPCServer` (forwarded API
/// requests); `0x01` (RPCRaft) is handed to the Raft transport; `0x03` (RPCTLS) starts a TLS
/// handshake, and inside TLS the first byte again says RPC or Raft. With `verify_incoming`,
/// plaintext RPC and Raft are refused; with `verify_server_hostname` too, Raft inside TLS needs a
/// server certificate. Other kinds (multiplexed streams, snapshots) are not served: such
/// connections are closed and counted rather than misread.
final class ServerPortListener: Sendable {
    enum ConnectionKind: UInt8 {
        case consulRPC = 0x00
        case raft = 0x01
        case multiplex = 0x02
        case tls = 0x03
        case multiplexV2 = 0x04
        case snapshot = 0x05
        case gossip = 0x06
    }

    let channel: any Channel
    /// Connections closed because their first byte names something this build does not serve.
    let refused: RefusedCounter

    private init(channel: any Channel, refused: RefusedCounter) {
        self.channel = channel
        self.refused = refused
    }

    var port: Int? { channel.localAddress?.port }

    /// `rpc` nil: agent-RPC connections are refused like any other unknown kind.
    static func start(
        host: String, port: Int, raft: RaftTCPTransport, rpc: RPCServer?, tls: InternalRPCTLS? = nil, group: any EventLoopGroup,
        logger: AgentLogger
    ) async throws -> ServerPortListener {
        try await start(host: host, port: port, raft: raft, rpc: rpc, tlsSource: { tls }, group: group, logger: logger)
    }

    /// `tlsSource` is asked once per accepted connection: a reload's re-read certificates serve
    /// new connections while open ones keep theirs.
    static func start(
        host: String, port: Int, raft: RaftTCPTransport, rpc: RPCServer?, tlsSource: @escaping @Sendable () -> InternalRPCTLS?,
        group: any EventLoopGroup, logger: AgentLogger
    ) async throws -> ServerPortListener {
        let refusedCounter = RefusedCounter()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FirstByteDemultiplexer(
                        raft: raft, rpc: rpc, tls: tlsSource(), insideTLS: false, refused: refusedCounter, logger: logger))
                }
            }
            .bind(host: host, port: port).get()
        return ServerPortListener(channel: channel, refused: refusedCounter)
    }

    func close() async {
        try? await channel.close()
    }
}

/// Counts refused connections across event loops.
final class RefusedCounter: Sendable {
    let count = Atomic<Int>(0)
}

/// Reads a connection's first byte, then steps aside for the handlers of that protocol.
private final class FirstByteDemultiplexer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let raft: RaftTCPTransport
    private let rpc: RPCServer?
    private let tls: InternalRPCTLS?
    /// This one reads the first byte inside TLS (a second RPCTLS is not accepted there).
    private let insideTLS: Bool
    private let refused: RefusedCounter
    private let logger: AgentLogger

    init(raft: RaftTCPTransport, rpc: RPCServer?, tls: InternalRPCTLS?, insideTLS: Bool, refused: RefusedCounter, logger: AgentLogger) {
        self.raft = raft
        self.rpc = rpc
        self.tls = tls
        self.insideTLS = insideTLS
        self.refused = refused
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard let first = buffer.readInteger(as: UInt8.self) else { return }
        let kind = ServerPortListener.ConnectionKind(rawValue: first)
        let peer = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if kind == .tls && !insideTLS {
            startTLS(context: context, rest: buffer, peer: peer)
            return
        }
        if let tls, kind == .raft || kind == .consulRPC {
            if !insideTLS && tls.verifyIncoming {
                return refuse(context: context) { tls.events.refused(peer: peer, .plaintext) }
            }
            if insideTLS && kind == .raft && !tls.allowsRaft(on: context.channel) {
                return refuse(context: context) { tls.events.refused(peer: peer, .notServer) }
            }
        }
        let install: ((any Channel) throws -> Void)?
        switch kind {
        case .raft: install = raft.installInboundHandlers(on:)
        case .consulRPC: install = rpc.map { rpc in rpc.installHandlers(on:) }
        default: install = nil
        }
        if let install {
            do {
                try install(context.channel)
            } catch {
                context.close(promise: nil)
                return
            }
            // The protocol's handlers sit after this one: hand them what came with the first byte
            // (a client writes it and its first frames at once) before stepping aside — once
            // removed, this context no longer reaches them.
            if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        refuse(context: context) {
            logger.debug("agent.server.rpc", "closing a server-port connection of a kind this build does not serve", ["first-byte": String(first)])
        }
    }

    /// RPCTLS: the TLS handler and, behind it, a demultiplexer for the first byte inside TLS.
    private func startTLS(context: ChannelHandlerContext, rest: ByteBuffer, peer: String) {
        guard let tls, tls.serverContext != nil else {
            return refuse(context: context) { self.tls?.events.refused(peer: peer, .noTLS) }
        }
        do {
            let inner = FirstByteDemultiplexer(raft: raft, rpc: rpc, tls: tls, insideTLS: true, refused: refused, logger: logger)
            try tls.secureIncoming(context, after: self, inner: inner)
        } catch {
            return refuse(context: context) {}
        }
        // The ClientHello may have come with the RPCTLS byte.
        if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func refuse(context: ChannelHandlerContext, _ report: () -> Void) {
        refused.count.add(1, ordering: .relaxed)
        report()
        context.close(promise: nil)
    }
}
