import NIOCore
import Raft

/// Raft between servers over TLS, as Consul runs it: the dialing server writes RPCTLS (0x03),
/// shakes hands (checking `server.<dc>.<domain>` with `verify_server_hostname`), then writes
/// RPCRaft (0x01) inside TLS. The agent's inbound side is the server port's demultiplexer, which
/// applies the same rules to agent RPC and Raft; `secureServer` serves a standalone Raft listener
/// (tests, benchmarks) the same way.
struct TLSRaftChannels: RaftChannelSecurity {
    /// Asked per connection: a reload may have re-read the certificates.
    let source: @Sendable () -> InternalRPCTLS
    var tls: InternalRPCTLS { source() }

    init(tls: InternalRPCTLS) { source = { tls } }
    init(source: @escaping @Sendable () -> InternalRPCTLS) { self.source = source }

    func secureClient(_ channel: any Channel, peer: ServerID, host: String) throws {
        try tls.secureOutgoing(channel, peer: host)
    }

    func secureServer(_ channel: any Channel) throws {
        let tls = self.tls
        try channel.pipeline.syncOperations.addHandler(StandaloneRPCTLSAcceptor(tls: tls))
    }
}

/// For a listener that only serves Raft: expects the RPCTLS byte, then TLS; anything else closes.
private final class StandaloneRPCTLSAcceptor: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let tls: InternalRPCTLS

    init(tls: InternalRPCTLS) {
        self.tls = tls
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard let first = buffer.readInteger(as: UInt8.self) else { return }
        let peer = context.channel.remoteAddress?.ipAddress ?? "unknown"
        guard first == RPCTLSPreamble.byte else {
            tls.events.refused(peer: peer, .plaintext)
            context.close(promise: nil)
            return
        }
        do {
            try tls.secureIncoming(context, after: self, inner: RaftServerNameGate(tls: tls))
        } catch {
            tls.events.refused(peer: peer, .noTLS)
            context.close(promise: nil)
            return
        }
        if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// Checks the peer's certificate once, on the first bytes inside TLS, then steps aside.
private final class RaftServerNameGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let tls: InternalRPCTLS

    init(tls: InternalRPCTLS) {
        self.tls = tls
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard tls.allowsRaft(on: context.channel) else {
            tls.events.refused(peer: context.channel.remoteAddress?.ipAddress ?? "unknown", .notServer)
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
