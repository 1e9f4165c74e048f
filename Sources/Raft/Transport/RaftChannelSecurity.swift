import NIOCore

/// What the Raft transport does to a connection before its own handlers: nothing (plaintext),
/// or, once the TLS issue plugs it in, add a TLS handler. Called on the channel's event loop, so
/// implementations add handlers with `channel.pipeline.syncOperations`.
///
/// Ordering on a connection: the client hook runs first (a TLS hook may write Consul's outer
/// RPCTLS byte itself before adding its handler), then the transport writes Consul's RPCRaft byte
/// (0x01) through the pipeline, then frames. On the server side the hook runs before the Raft
/// inbound handlers, which then expect the RPCRaft byte inside whatever the hook set up (the
/// standalone listener), or not at all (`installInboundHandlers`, where a demultiplexer read it).
package protocol RaftChannelSecurity: Sendable {
    func secureClient(_ channel: any Channel, peer: ServerID, host: String) throws
    func secureServer(_ channel: any Channel) throws
}

/// No TLS: the default.
package struct PlaintextRaftChannels: RaftChannelSecurity {
    package init() {}
    package func secureClient(_ channel: any Channel, peer: ServerID, host: String) throws {}
    package func secureServer(_ channel: any Channel) throws {}
}
