import NIOCore
import NIOPosix
import Synchronization

/// One outbound agent-RPC connection of an `RPCClientPool`: it connects once (inside TLS when the
/// pool dials TLS), writes the `0x00` byte, then carries any number of calls at once, each with an id, a promise and a timeout. It
/// never reconnects: when it fails or closes, its waiting calls fail and the pool forgets it, so
/// the next call opens a fresh connection.
final class RPCClientConnection: Sendable {
    /// The byte that opens an agent-RPC connection on the server port (Consul's RPCConsul).
    static let protocolByte: UInt8 = 0x00

    let address: String
    let eventLoop: any EventLoop
    /// Calls chosen for this connection and not yet finished; changed under the pool's lock.
    let outstanding = Atomic<Int>(0)
    /// Strong: the pool forgets the connection when it closes, which ends the cycle.
    private let pool: RPCClientPool

    private enum Phase {
        case idle
        case connecting
        case ready(any Channel)
        case closed
    }

    private struct Call {
        var promise: EventLoopPromise<RPCResponseFrame>
        var timeout: Scheduled<Void>?
        var written: Bool
    }

    /// Touched on `eventLoop` only.
    private struct LoopState {
        var phase = Phase.idle
        var nextID: UInt64 = 1
        var calls: [UInt64: Call] = [:]
        /// Frames waiting for the connection to come up, in call order.
        var unwritten: [(id: UInt64, frame: ByteBuffer)] = []
        var idleTimer: Scheduled<Void>?
    }

    private let loopState: NIOLoopBoundBox<LoopState>

    init(address: String, pool: RPCClientPool, eventLoop: any EventLoop) {
        self.address = address
        self.pool = pool
        self.eventLoop = eventLoop
        self.loopState = NIOLoopBoundBox.makeBoxSendingValue(LoopState(), eventLoop: eventLoop)
    }

    /// Starts connecting; calls sent meanwhile wait (bounded by the pool's in-flight limit).
    func connect(host: String, port: Int) {
        onLoop { self.startConnecting(host: host, port: port) }
    }

    /// Sends one encoded request frame (its id is filled in here) and completes with the answer.
    func send(_ frame: ByteBuffer, timeout: TimeAmount) -> EventLoopFuture<RPCResponseFrame> {
        let promise = eventLoop.makePromise(of: RPCResponseFrame.self)
        onLoop { self.enqueue(frame, timeout: timeout, promise: promise) }
        return promise.futureResult
    }

    /// Closes the connection; waiting calls fail with `shutDown`.
    func close() async {
        try? await eventLoop.submit { self.closeNow(failing: .shutDown) }.get()
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }

    // MARK: - On the event loop

    private func startConnecting(host: String, port: Int) {
        guard case .idle = loopState.value.phase else { return }
        loopState.value.phase = .connecting
        let limits = pool.limits
        ClientBootstrap(group: eventLoop)
            .connectTimeout(limits.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.pool.tls?.secureOutgoing(channel, peer: host)
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(RPCFrameDecoder(accepts: RPCCodec.kindResponse, limits: limits.codec, counters: self.pool.counters)),
                        RPCClientHandler(connection: self))
                }
            }
            .connect(host: host, port: port)
            .whenComplete { result in self.connected(result) }
    }

    private func connected(_ result: Result<any Channel, any Error>) {
        eventLoop.assertInEventLoop()
        switch result {
        case .success(let channel):
            guard case .connecting = loopState.value.phase else {
                channel.close(promise: nil)  // closed while connecting
                return
            }
            pool.counters.add(\.connectsSucceeded)
            loopState.value.phase = .ready(channel)
            channel.write(ByteBuffer(bytes: [Self.protocolByte]), promise: nil)
            let waiting = loopState.value.unwritten
            loopState.value.unwritten.removeAll()
            for (id, frame) in waiting {
                loopState.value.calls[id]?.written = true
                channel.write(frame, promise: nil)
            }
            channel.flush()
        case .failure(let error):
            pool.counters.add(\.connectsFailed)
            guard case .connecting = loopState.value.phase else { return }
            fail(.unreachable(address: address, reason: "\(error)"))
        }
    }

    private func enqueue(_ frame: ByteBuffer, timeout: TimeAmount, promise: EventLoopPromise<RPCResponseFrame>) {
        loopState.value.idleTimer?.cancel()
        loopState.value.idleTimer = nil
        let id = loopState.value.nextID
        loopState.value.nextID &+= 1
        var frame = frame
        frame.setInteger(id, at: frame.readerIndex + RPCCodec.idOffset)
        switch loopState.value.phase {
        case .closed:
            promise.fail(RPCError.unreachable(address: address, reason: "the connection closed"))
            return
        case .idle, .connecting:
            loopState.value.unwritten.append((id, frame))
            loopState.value.calls[id] = Call(promise: promise, timeout: nil, written: false)
        case .ready(let channel):
            loopState.value.calls[id] = Call(promise: promise, timeout: nil, written: true)
            channel.writeAndFlush(frame, promise: nil)
        }
        loopState.value.calls[id]?.timeout = eventLoop.scheduleTask(in: timeout) { self.timedOut(id, after: timeout) }
    }

    private func timedOut(_ id: UInt64, after timeout: TimeAmount) {
        guard let call = loopState.value.calls.removeValue(forKey: id) else { return }
        if call.written {
            pool.counters.add(\.callsTimedOut)
            call.promise.fail(RPCError.timedOut(address: address, after: timeout))
        } else {
            loopState.value.unwritten.removeAll { $0.id == id }
            call.promise.fail(RPCError.unreachable(address: address, reason: "not connected within \(timeout.nanoseconds / 1_000_000) ms"))
        }
        scheduleIdleCloseIfQuiet()
    }

    fileprivate func received(_ response: RPCResponseFrame) {
        guard let call = loopState.value.calls.removeValue(forKey: response.id) else {
            pool.counters.add(\.unmatchedResponses)
            return
        }
        call.timeout?.cancel()
        call.promise.succeed(response)
        scheduleIdleCloseIfQuiet()
    }

    /// The TLS handshake failed: nothing reached the server's RPC layer (writes wait for the
    /// handshake), so every call is unsent and may go to another server.
    fileprivate func tlsFailed(_ channel: any Channel, _ error: any Error) {
        guard case .ready(let current) = loopState.value.phase, current === channel else { return }
        let reason = TLSHandshakeObserver.reason(for: error, peerCertificate: nil, material: nil, expectedName: nil, outgoing: true)
        fail(.unreachable(address: address, reason: "TLS handshake failed: \(reason)"))
    }

    fileprivate func disconnected(_ channel: any Channel) {
        guard case .ready(let current) = loopState.value.phase, current === channel else { return }
        fail(nil)
    }

    /// The connection is gone: the pool forgets it and every waiting call fails — with `error`, or
    /// by whether it was written (`connectionLost`) or not (`unreachable`).
    private func fail(_ error: RPCError?) {
        if case .ready(let channel) = loopState.value.phase { channel.close(promise: nil) }
        loopState.value.phase = .closed
        loopState.value.idleTimer?.cancel()
        loopState.value.idleTimer = nil
        pool.remove(self)
        let calls = loopState.value.calls
        loopState.value.calls.removeAll()
        loopState.value.unwritten.removeAll()
        for (_, call) in calls.sorted(by: { $0.key < $1.key }) {
            call.timeout?.cancel()
            let reason: RPCError
            if let error {
                reason = error
            } else if call.written {
                pool.counters.add(\.callsLost)
                reason = .connectionLost(address: address)
            } else {
                reason = .unreachable(address: address, reason: "the connection closed")
            }
            call.promise.fail(reason)
        }
    }

    private func closeNow(failing error: RPCError) {
        if case .closed = loopState.value.phase { return }
        fail(error)
    }

    private func scheduleIdleCloseIfQuiet() {
        guard loopState.value.calls.isEmpty, loopState.value.idleTimer == nil, case .ready = loopState.value.phase else { return }
        loopState.value.idleTimer = eventLoop.scheduleTask(in: pool.limits.idleTimeout) {
            self.loopState.value.idleTimer = nil
            guard self.loopState.value.calls.isEmpty else { return }
            if self.pool.retireIfIdle(self) {
                self.closeNow(failing: .shutDown)
            } else {
                // A call chose this connection and is on its way here; look again later.
                self.scheduleIdleCloseIfQuiet()
            }
        }
    }
}

/// Hands an outbound connection's answers to its `RPCClientConnection` and tells it when the
/// connection ends. A bad frame (counted by the decoder) or socket error closes the connection.
private final class RPCClientHandler: ChannelInboundHandler {
    typealias InboundIn = RPCFrame
    private let connection: RPCClientConnection

    init(connection: RPCClientConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .response(let response) = unwrapInboundIn(data) { connection.received(response) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.disconnected(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if TLSHandshakeObserver.isTLSError(error) { connection.tlsFailed(context.channel, error) }
        context.close(promise: nil)
    }
}
