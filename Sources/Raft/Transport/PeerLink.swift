import NIOCore
import NIOPosix
import Synchronization

/// The outbound connection to one peer: a bounded queue of encoded frames (any thread may
/// enqueue; the node's actor does), and a connection owned by one event loop that drains it,
/// reconnecting with exponential backoff after failures.
final class PeerLink: Sendable {
    let peer: ServerID
    let eventLoop: any EventLoop
    /// Strong: links live in the transport's table until `shutdown` drops them.
    private let transport: RaftTCPTransport

    private struct Queue {
        var frames: [ByteBuffer] = []
        var bytes = 0
        var address: String
        /// A `pump` is already scheduled on the event loop.
        var pumpScheduled = false
        var closed = false
    }

    /// Touched on `eventLoop` only.
    private struct Connection {
        var channel: (any Channel)?
        var connecting = false
        var retry: Scheduled<Void>?
        var delay: TimeAmount
    }

    private let queue: Mutex<Queue>
    private let connection: NIOLoopBoundBox<Connection>

    init(peer: ServerID, address: String, transport: RaftTCPTransport, eventLoop: any EventLoop) {
        self.peer = peer
        self.eventLoop = eventLoop
        self.transport = transport
        self.queue = Mutex(Queue(address: address))
        self.connection = NIOLoopBoundBox.makeBoxSendingValue(
            Connection(delay: transport.limits.minReconnectDelay), eventLoop: eventLoop)
    }

    /// Queues a frame, or drops and counts it when the queue is full.
    func enqueue(_ frame: ByteBuffer) {
        let limits = transport.limits
        let (accepted, schedule) = queue.withLock { queue -> (Bool, Bool) in
            guard !queue.closed, queue.frames.count < limits.maxQueuedMessagesPerPeer,
                  queue.bytes + frame.readableBytes <= limits.maxQueuedBytesPerPeer
            else { return (false, false) }
            queue.frames.append(frame)
            queue.bytes += frame.readableBytes
            defer { queue.pumpScheduled = true }
            return (true, !queue.pumpScheduled)
        }
        guard accepted else {
            transport.counters.add(\.droppedQueueFull)
            return
        }
        if schedule { eventLoop.execute { self.pump() } }
    }

    /// Writes what is queued now, on the link's loop (a node running there flushes its urgent
    /// sends before going on with its step); the pump already scheduled then finds nothing.
    func pumpNow() {
        eventLoop.assertInEventLoop()
        pump()
    }

    /// Reconnects to `address` (the old connection is closed; queued frames go to the new one).
    func move(to address: String) {
        queue.withLock { $0.address = address }
        eventLoop.execute {
            let channel = self.connection.value.channel
            self.connection.value.channel = nil
            channel?.close(promise: nil)
            self.pump()
        }
    }

    func close() async {
        queue.withLock { queue in
            queue.closed = true
            queue.frames.removeAll()
            queue.bytes = 0
        }
        let channel = try? await eventLoop.submit { () -> (any Channel)? in
            self.connection.value.retry?.cancel()
            self.connection.value.retry = nil
            defer { self.connection.value.channel = nil }
            return self.connection.value.channel
        }.get()
        if let channel { try? await channel.close() }
    }

    // MARK: - On the event loop

    /// Writes what is queued if the connection is up and NIO's buffer has room; connects otherwise.
    private func pump() {
        eventLoop.assertInEventLoop()
        queue.withLock { $0.pumpScheduled = false }
        guard let channel = connection.value.channel else {
            connectIfIdle()
            return
        }
        guard channel.isActive else {
            // Closed before `disconnected` could see it as the current channel.
            connection.value.channel = nil
            scheduleRetry()
            return
        }
        guard channel.isWritable else { return }  // `writable()` pumps again
        let frames = queue.withLock { queue in
            defer {
                queue.frames.removeAll(keepingCapacity: true)
                queue.bytes = 0
            }
            return queue.frames
        }
        guard !frames.isEmpty else { return }
        for frame in frames { channel.write(frame, promise: nil) }
        channel.flush()
        transport.counters.add(\.framesSent, frames.count)
    }

    private func connectIfIdle() {
        let state = connection.value
        guard state.channel == nil, !state.connecting, state.retry == nil else { return }
        let (address, closed, empty) = queue.withLock { ($0.address, $0.closed, $0.frames.isEmpty) }
        guard !closed, !empty else { return }
        guard let (host, port) = splitHostPort(address) else {
            // Nothing can be sent anywhere: drop what waits (counted as undeliverable).
            let dropped = queue.withLock { queue in
                defer { queue.frames.removeAll(); queue.bytes = 0 }
                return queue.frames.count
            }
            transport.counters.add(\.droppedNoAddress, dropped)
            return
        }
        connection.value.connecting = true
        let security = transport.security
        let peer = peer
        ClientBootstrap(group: eventLoop)
            .connectTimeout(transport.limits.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: transport.limits.writeBufferHighWater / 2, high: transport.limits.writeBufferHighWater))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try security.secureClient(channel, peer: peer, host: host)
                    try channel.pipeline.syncOperations.addHandler(PeerLinkHandler(link: self))
                }
            }
            .connect(host: host, port: port)
            .whenComplete { result in self.connected(result, to: address) }
    }

    private func connected(_ result: Result<any Channel, any Error>, to address: String) {
        eventLoop.assertInEventLoop()
        connection.value.connecting = false
        switch result {
        case .success(let channel):
            let (closed, current) = queue.withLock { ($0.closed, $0.address) }
            guard !closed, current == address else {
                // Closed or moved while connecting.
                channel.close(promise: nil)
                if !closed { pump() }
                return
            }
            transport.counters.add(\.connectsSucceeded)
            connection.value.channel = channel
            connection.value.delay = transport.limits.minReconnectDelay
            channel.write(ByteBuffer(bytes: [RaftTCPTransport.protocolByte]), promise: nil)
            pump()
        case .failure:
            transport.counters.add(\.connectsFailed)
            scheduleRetry()
        }
    }

    private func scheduleRetry() {
        let delay = connection.value.delay
        connection.value.delay = min(delay * 2, transport.limits.maxReconnectDelay)
        connection.value.retry = eventLoop.scheduleTask(in: delay) {
            self.connection.value.retry = nil
            self.pump()
        }
    }

    /// The connection closed (peer gone, reset, or moved): reconnect after the backoff delay.
    fileprivate func disconnected(_ channel: any Channel) {
        eventLoop.assertInEventLoop()
        guard let current = connection.value.channel, current === channel else { return }
        connection.value.channel = nil
        if !queue.withLock({ $0.closed }) { scheduleRetry() }
    }

    fileprivate func writable() { pump() }
}

/// Watches an outbound connection: writability and closure. Peers send nothing back on it.
private final class PeerLinkHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let link: PeerLink

    init(link: PeerLink) {
        self.link = link
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { link.writable() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        link.disconnected(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
