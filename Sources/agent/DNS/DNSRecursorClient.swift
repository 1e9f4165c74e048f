import ConsulCore
import NIOCore
import NIOPosix

/// Relays queries for names outside our domains to the configured recursors over UDP, in order:
/// each gets `timeout` to answer; an answer with an RCODE other than NOERROR or NXDOMAIN, or none
/// in time, moves on to the next one (Consul's sequential strategy). The first good answer goes
/// back with the client's id; when every recursor failed the caller answers SERVFAIL.
///
/// Everything runs on one event loop: `forward` may be called from any loop and hops there. Each
/// relayed query gets a fresh random id and a reply is accepted only from the recursor it was sent
/// to, with that id, as a response.
final class DNSRecursorClient: Sendable {
    /// Queries waiting for a recursor at once; past this a query is answered SERVFAIL at once.
    static let maxPending = 1024
    /// The largest recursor answer read (the DNS maximum).
    static let maxAnswerSize = 65_535
    /// Tries to draw an id not already pending before giving up (the table is at most 1/64 full).
    private static let idDraws = 16

    let eventLoop: any EventLoop
    private let recursors: [SocketAddress]
    private let timeout: TimeAmount
    private let state: NIOLoopBoundBox<State>

    private struct Pending {
        var clientID: UInt16
        var packet: [UInt8]
        var recursor: Int
        var promise: EventLoopPromise<[UInt8]?>
        var timer: Scheduled<Void>?
    }

    private final class State {
        var channels: [NIOBSDSocket.ProtocolFamily: any Channel] = [:]
        var pending: [UInt16: Pending] = [:]
        var random: SeededRandom

        init(random: SeededRandom) {
            self.random = random
        }
    }

    private init(recursors: [SocketAddress], timeout: TimeAmount, eventLoop: any EventLoop, seed: UInt64) {
        self.recursors = recursors
        self.timeout = timeout
        self.eventLoop = eventLoop
        self.state = .makeBoxSendingValue(State(random: SeededRandom(seed: seed)), eventLoop: eventLoop)
    }

    /// Binds one unconnected UDP socket per address family the recursors use.
    static func start(recursors: [SocketAddress], timeout: Duration, eventLoop: any EventLoop, seed: UInt64) async throws -> DNSRecursorClient {
        let (client, bound) = open(recursors: recursors, timeout: timeout, eventLoop: eventLoop, seed: seed)
        try await bound.get()
        return client
    }

    /// `start` for a reload, which runs outside any event loop and waits for the bind here.
    static func startWaiting(recursors: [SocketAddress], timeout: Duration, eventLoop: any EventLoop, seed: UInt64) throws -> DNSRecursorClient {
        let (client, bound) = open(recursors: recursors, timeout: timeout, eventLoop: eventLoop, seed: seed)
        do {
            try bound.wait()
        } catch {
            Task { await client.close() }
            throw error
        }
        return client
    }

    private static func open(
        recursors: [SocketAddress], timeout: Duration, eventLoop: any EventLoop, seed: UInt64
    ) -> (DNSRecursorClient, EventLoopFuture<Void>) {
        let client = DNSRecursorClient(recursors: recursors, timeout: .nanoseconds(timeout.totalNanoseconds), eventLoop: eventLoop, seed: seed)
        var families: [NIOBSDSocket.ProtocolFamily] = []
        for recursor in recursors where !families.contains(recursor.protocol) { families.append(recursor.protocol) }
        let binds = families.map { family in
            DatagramBootstrap(group: eventLoop)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: maxAnswerSize))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ReplyHandler(client: client))
                    }
                }
                .bind(host: family == .inet6 ? "::" : "0.0.0.0", port: 0)
                .flatMap { channel in eventLoop.submit { client.state.value.channels[family] = channel } }
        }
        return (client, EventLoopFuture.andAllSucceed(binds, on: eventLoop))
    }

    /// Sends `packet` (a parsed query) to the recursors; the future holds the answer to relay, with
    /// the client's id, or nil when none answered well.
    func forward(_ packet: [UInt8]) -> EventLoopFuture<[UInt8]?> {
        guard packet.count >= 12, !recursors.isEmpty else { return eventLoop.makeSucceededFuture(nil) }
        return eventLoop.flatSubmit {
            let promise = self.eventLoop.makePromise(of: [UInt8]?.self)
            self.start(packet, promise: promise)
            return promise.futureResult
        }
    }

    func close() async {
        let channels = try? await eventLoop.submit { () -> [any Channel] in
            let state = self.state.value
            for (_, pending) in state.pending {
                pending.timer?.cancel()
                pending.promise.succeed(nil)
            }
            state.pending = [:]
            return Array(state.channels.values)
        }.get()
        for channel in channels ?? [] { try? await channel.close() }
    }

    // MARK: On the event loop

    private func start(_ packet: [UInt8], promise: EventLoopPromise<[UInt8]?>) {
        let state = self.state.value
        guard state.pending.count < Self.maxPending, let id = freshID(state) else {
            promise.succeed(nil)
            return
        }
        var relayed = packet
        relayed[0] = UInt8(id >> 8)
        relayed[1] = UInt8(id & 0xFF)
        let clientID = UInt16(packet[0]) << 8 | UInt16(packet[1])
        state.pending[id] = Pending(clientID: clientID, packet: relayed, recursor: 0, promise: promise)
        send(id)
    }

    private func freshID(_ state: State) -> UInt16? {
        for _ in 0..<Self.idDraws {
            let id = UInt16(truncatingIfNeeded: state.random.next())
            if state.pending[id] == nil { return id }
        }
        return nil
    }

    /// Sends pending query `id` to its current recursor, or fails it when none is left.
    private func send(_ id: UInt16) {
        let state = self.state.value
        guard var pending = state.pending[id] else { return }
        while pending.recursor < recursors.count, state.channels[recursors[pending.recursor].protocol] == nil {
            pending.recursor += 1
        }
        guard pending.recursor < recursors.count, let channel = state.channels[recursors[pending.recursor].protocol] else {
            state.pending[id] = nil
            pending.promise.succeed(nil)
            return
        }
        let recursor = recursors[pending.recursor]
        pending.timer = eventLoop.scheduleTask(in: timeout) { self.next(id) }
        state.pending[id] = pending
        let buffer = channel.allocator.buffer(bytes: pending.packet)
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: recursor, data: buffer), promise: nil)
    }

    /// The current recursor failed (timeout or a bad RCODE): try the next one.
    private func next(_ id: UInt16) {
        let state = self.state.value
        guard var pending = state.pending[id] else { return }
        pending.timer?.cancel()
        pending.recursor += 1
        state.pending[id] = pending
        send(id)
    }

    fileprivate func received(_ envelope: AddressedEnvelope<ByteBuffer>) {
        var data = envelope.data
        guard let bytes = data.readBytes(length: min(data.readableBytes, Self.maxAnswerSize)), bytes.count >= 12,
              bytes[2] & 0x80 != 0
        else { return }
        let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        let state = self.state.value
        guard let pending = state.pending[id], envelope.remoteAddress == recursors[pending.recursor] else { return }
        let code = bytes[3] & 0x0F
        guard code == DNSResponseCode.noError.rawValue || code == DNSResponseCode.nameError.rawValue else {
            next(id)
            return
        }
        pending.timer?.cancel()
        state.pending[id] = nil
        var answer = bytes
        answer[0] = UInt8(pending.clientID >> 8)
        answer[1] = UInt8(pending.clientID & 0xFF)
        pending.promise.succeed(answer)
    }

    private final class ReplyHandler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>

        let client: DNSRecursorClient

        init(client: DNSRecursorClient) {
            self.client = client
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            client.received(unwrapInboundIn(data))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // ICMP port unreachable and the like surface here; the timeout moves the query on.
        }
    }

    /// `host`, `host:port`, `[v6]:port` or a bare IPv6 address; port 53 when none is given.
    static func address(_ text: String) throws(DNSServerError) -> SocketAddress {
        var host = text
        var port = 53
        if DNSAddress.parse(text) == nil {
            guard let colon = text.lastIndex(of: ":"), let parsed = Int(text[text.index(after: colon)...]), (1...65535).contains(parsed) else {
                throw .badRecursor(text)
            }
            host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            port = parsed
        }
        guard DNSAddress.parse(host) != nil, let address = try? SocketAddress(ipAddress: host, port: port) else {
            throw .badRecursor(text)
        }
        return address
    }
}
