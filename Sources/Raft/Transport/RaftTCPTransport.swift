import NIOCore
import NIOPosix
import Synchronization

/// Raft messages over TCP (SwiftNIO), framed by `RaftWireCodec`.
///
/// - Outbound: one connection per peer, opened on the first message and reopened with backoff
///   when it fails, each with a bounded queue (full: the message is dropped and counted, Raft
///   retransmits). A connection starts with Consul's RPCRaft byte (0x01), then frames; it only
///   ever carries this server's messages to that peer (answers come back on the peer's own
///   connection), so AppendEntries are pipelined and snapshot chunks stream like any message.
/// - Inbound: `listen` accepts connections whose first byte is 0x01 and closes (and counts) the
///   others; `installInboundHandlers` serves a connection whose first byte a demultiplexer on
///   Consul's shared server port already read. Decoded messages arrive in batches (one per read
///   burst) on `inbound`, which the node's owner drains into `RaftNode.receive(_:)`, or, once
///   `onReceive` set a receiver, go straight to it on the connection's event loop (give the
///   transport the node's loop and `RaftNode.deliver` takes them without a thread hand-off).
/// - A frame that decodes to garbage is dropped and counted; a length over
///   `RaftWireCodec.maxFrameBytes` loses the framing, so that connection is closed.
/// - Addresses ("host:port") come from the Raft configuration (`configurationChanged`) or
///   `updateAddresses`; a changed address moves the connection.
/// - TLS is a parameter (`RaftChannelSecurity`), plaintext by default.
package final class RaftTCPTransport: RaftTransport, Sendable {
    package struct Limits: Sendable {
        /// Messages waiting for one peer's connection; more are dropped.
        package var maxQueuedMessagesPerPeer = 8192
        /// Bytes waiting for one peer's connection (snapshot chunks count in full); more are dropped.
        package var maxQueuedBytesPerPeer = 64 << 20
        /// Inbound batches decoded but not yet taken by the node; more are dropped.
        package var maxInboundBatches = 4096
        package var minReconnectDelay: TimeAmount = .milliseconds(20)
        package var maxReconnectDelay: TimeAmount = .seconds(2)
        package var connectTimeout: TimeAmount = .seconds(1)
        /// NIO's own outbound buffer per connection; past it, frames wait in our bounded queue.
        package var writeBufferHighWater = 1 << 20

        package init() {}
    }

    /// Consul's first byte of a Raft connection on the server port (RPCRaft).
    package static let protocolByte: UInt8 = 0x01

    package let localID: ServerID
    let group: any EventLoopGroup
    let security: any RaftChannelSecurity
    let limits: Limits
    let counters = TransportCounters()
    /// Batches of inbound messages, in arrival order per connection.
    package let inbound: AsyncStream<[Message]>
    private let inboundSink: AsyncStream<[Message]>.Continuation

    private struct State {
        var addresses: [ServerID: String] = [:]
        var links: [ServerID: PeerLink] = [:]
        var listeners: [any Channel] = []
        /// Accepted (or handed-over) connections, closed by `shutdown` with the listeners.
        var inboundChannels: [ObjectIdentifier: any Channel] = [:]
        var closed = false
    }

    private let state: Mutex<State>
    private let receiver = Mutex<Callback<[Message]>?>(nil)

    package init(
        localID: ServerID, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        security: any RaftChannelSecurity = PlaintextRaftChannels(), limits: Limits = Limits(), addresses: [ServerID: String] = [:]
    ) {
        self.localID = localID
        self.group = group
        self.security = security
        self.limits = limits
        (inbound, inboundSink) = AsyncStream.makeStream(of: [Message].self, bufferingPolicy: .bufferingOldest(limits.maxInboundBatches))
        state = Mutex(State(addresses: addresses))
    }

    package var stats: RaftTransportStats { counters.snapshot }

    // MARK: - Outbound

    package func send(_ message: Message) {
        let link = state.withLock { state -> PeerLink? in
            if let link = state.links[message.to] { return link }
            guard !state.closed, let address = state.addresses[message.to] else { return nil }
            let link = PeerLink(peer: message.to, address: address, transport: self, eventLoop: group.next())
            state.links[message.to] = link
            return link
        }
        guard let link else {
            counters.add(\.droppedNoAddress)
            return
        }
        link.enqueue(ByteBuffer(bytes: RaftWireCodec.encode(message)))
    }

    /// Writes the queued frames of every link whose loop is the caller's now (see
    /// `RaftTransport.flush`); links on other loops are pumped by their loop as usual.
    package func flush() {
        let links = state.withLock { Array($0.links.values) }
        for link in links where link.eventLoop.inEventLoop { link.pumpNow() }
    }

    /// Sets the addresses of the servers in `book` (others keep theirs); a peer whose address
    /// changed is reconnected there.
    package func updateAddresses(_ book: [ServerID: String]) {
        let moved = state.withLock { state -> [(PeerLink, String)] in
            var moved: [(PeerLink, String)] = []
            for (id, address) in book where id != localID && state.addresses[id] != address {
                state.addresses[id] = address
                if let link = state.links[id] { moved.append((link, address)) }
            }
            return moved
        }
        for (link, address) in moved { link.move(to: address) }
    }

    package func configurationChanged(_ configuration: ClusterConfiguration) {
        updateAddresses(configuration.addresses)
    }

    package func address(of peer: ServerID) -> String? {
        state.withLock { $0.addresses[peer] }
    }

    // MARK: - Inbound

    /// Listens on `host:port` (port 0: any free port) for connections that start with the RPCRaft
    /// byte; returns the bound address.
    package func listen(host: String, port: Int) async throws -> SocketAddress {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    counters.add(\.acceptedConnections)
                    try security.secureServer(channel)
                    try addInboundHandlers(to: channel, expectingProtocolByte: true)
                }
            }
            .bind(host: host, port: port).get()
        let closed = state.withLock { state in
            if !state.closed { state.listeners.append(channel) }
            return state.closed
        }
        if closed {
            try? await channel.close()
            throw ChannelError.ioOnClosedChannel
        }
        guard let address = channel.localAddress else { throw ChannelError.unknownLocalAddress }
        return address
    }

    /// Serves `channel` as an inbound Raft connection whose RPCRaft byte was already consumed (by
    /// the server port's demultiplexer, which also applied any TLS). Call on the channel's event loop.
    package func installInboundHandlers(on channel: any Channel) throws {
        try addInboundHandlers(to: channel, expectingProtocolByte: false)
    }

    private func addInboundHandlers(to channel: any Channel, expectingProtocolByte: Bool) throws {
        let key = ObjectIdentifier(channel)
        let closed = state.withLock { state in
            if !state.closed { state.inboundChannels[key] = channel }
            return state.closed
        }
        guard !closed else { throw ChannelError.ioOnClosedChannel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLock { $0.inboundChannels.removeValue(forKey: key) }
        }
        try channel.pipeline.syncOperations.addHandlers(
            ByteToMessageHandler(RaftFrameDecoder(expectingProtocolByte: expectingProtocolByte, counters: counters)),
            RaftInboundHandler(transport: self))
    }

    /// From now on, hands inbound batches to `receive` (on the connection's event loop, in arrival
    /// order per connection) instead of `inbound`. It must not block: `RaftNode.deliver` is meant.
    package func onReceive(_ receive: @escaping @Sendable ([Message]) -> Void) {
        receiver.withLock { $0 = Callback(receive) }
    }

    /// Hands one read burst's messages to the node; messages for another server are dropped.
    func deliver(_ batch: [Message]) {
        var batch = batch
        let before = batch.count
        batch.removeAll { $0.to != localID }
        if batch.count < before { counters.add(\.misaddressed, before - batch.count) }
        guard !batch.isEmpty else { return }
        counters.add(\.framesReceived, batch.count)
        if let receive = receiver.withLock({ $0 }) { return receive.call(batch) }
        if case .dropped = inboundSink.yield(batch) { counters.add(\.droppedInboundBacklog, batch.count) }
    }

    // MARK: - Lifecycle

    /// Closes the listeners and every connection, and ends `inbound`.
    package func shutdown() async {
        let (channels, links) = state.withLock { state in
            state.closed = true
            defer {
                state.listeners.removeAll()
                state.inboundChannels.removeAll()
                state.links.removeAll()
            }
            return (state.listeners + state.inboundChannels.values, Array(state.links.values))
        }
        for channel in channels { try? await channel.close() }
        for link in links { await link.close() }
        inboundSink.finish()
    }
}

/// Counters of what the transport did, dropped or refused.
package struct RaftTransportStats: Sendable, Hashable {
    package var framesSent = 0
    package var framesReceived = 0
    /// A peer's queue was full.
    package var droppedQueueFull = 0
    /// No address is known for the destination.
    package var droppedNoAddress = 0
    /// The node fell behind taking inbound batches.
    package var droppedInboundBacklog = 0
    package var misaddressed = 0
    /// Frames that did not decode (dropped; the connection goes on).
    package var garbageFrames = 0
    /// Length prefixes over the limit (the connection is closed).
    package var oversizedFrames = 0
    /// Inbound connections whose first byte was not RPCRaft (closed).
    package var rejectedConnections = 0
    package var acceptedConnections = 0
    package var connectsSucceeded = 0
    package var connectsFailed = 0
}

final class TransportCounters: Sendable {
    private let values = Mutex(RaftTransportStats())

    func add(_ counter: WritableKeyPath<RaftTransportStats, Int> & Sendable, _ amount: Int = 1) {
        values.withLock { $0[keyPath: counter] += amount }
    }

    var snapshot: RaftTransportStats { values.withLock { $0 } }
}

/// Splits "host:port" (IPv6 hosts in brackets: "[::1]:8300"); nil unless the port is 1...65535.
package func splitHostPort(_ text: String) -> (host: String, port: Int)? {
    guard let colon = text.lastIndex(of: ":") else { return nil }
    var host = text[..<colon]
    guard let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port), !host.isEmpty else { return nil }
    if host.contains(":") {
        guard host.hasPrefix("["), host.hasSuffix("]") else { return nil }
        host = host.dropFirst().dropLast()
    }
    return (String(host), port)
}
