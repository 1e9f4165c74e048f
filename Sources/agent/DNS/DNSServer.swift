#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore
import NIOCore
import NIOPosix
import Synchronization

enum DNSServerError: Error, Equatable, CustomStringConvertible {
    case badRecursor(String)
    case bindFailed(host: String, port: Int, reason: String)

    var description: String {
        switch self {
        case .badRecursor(let text): return "invalid recursor address \"\(text)\" (want ip or ip:port)"
        case .bindFailed(let host, let port, let reason): return "DNS cannot listen on \(host):\(port): \(reason)"
        }
    }
}

/// Where and how the DNS server listens; the limits are named here so none is implicit.
struct DNSServerConfiguration: Sendable {
    /// Every address to answer on (Consul listens on each `client_addr`), the same port on each.
    var hosts = ["127.0.0.1"]
    var host: String {
        get { hosts.first ?? "127.0.0.1" }
        set { hosts = [newValue] }
    }
    /// 0 picks a free port (the same one for UDP and TCP).
    var port = 8600
    var settings: DNSResolverSettings
    /// `ip` or `ip:port`, tried in order.
    var recursors: [String] = []
    /// Consul's `recursor_timeout`.
    var recursorTimeout: Duration = .seconds(2)
    /// Datagrams read by one `recvmmsg` call.
    var vectorReadCount = 32
    /// Reads per readiness event before the loop turns to other work.
    var maxMessagesPerRead = 4
    /// A UDP query larger than this is cut by the kernel and answered FORMERR (queries are small).
    var maxUDPQuerySize = 4096
    /// Open TCP connections at once; more are closed as they arrive.
    var maxTCPConnections = 256
    /// Forwarded queries one TCP connection may have waiting; more get SERVFAIL.
    var maxForwardsPerTCPConnection = 16
    /// A TCP connection with no traffic for this long is closed.
    var tcpIdleTimeout: Duration = .seconds(8)

    init(settings: DNSResolverSettings) {
        self.settings = settings
    }

    init(config: AgentConfig) {
        settings = DNSResolverSettings(config: config)
        hosts = config.clientAddrs.isEmpty ? ["127.0.0.1"] : config.clientAddrs
        port = config.ports.dns
        recursors = config.recursors
    }
}

/// Counts of what the server did, readable at any time from any thread.
final class DNSServerCounters: Sendable {
    struct Snapshot: Equatable, Sendable {
        var queries = 0
        var answers: [DNSResponseCode: Int] = [:]
        var malformedDropped = 0
        var forwarded = 0
    }

    let queries = Atomic<Int>(0)
    let malformedDropped = Atomic<Int>(0)
    let forwarded = Atomic<Int>(0)
    private let noError = Atomic<Int>(0)
    private let formatError = Atomic<Int>(0)
    private let serverFailure = Atomic<Int>(0)
    private let nameError = Atomic<Int>(0)
    private let notImplemented = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)

    func answered(_ code: DNSResponseCode) {
        switch code {
        case .noError: noError.wrappingAdd(1, ordering: .relaxed)
        case .formatError: formatError.wrappingAdd(1, ordering: .relaxed)
        case .serverFailure: serverFailure.wrappingAdd(1, ordering: .relaxed)
        case .nameError: nameError.wrappingAdd(1, ordering: .relaxed)
        case .notImplemented: notImplemented.wrappingAdd(1, ordering: .relaxed)
        case .refused: refused.wrappingAdd(1, ordering: .relaxed)
        }
    }

    private func count(_ code: DNSResponseCode) -> Int {
        switch code {
        case .noError: noError.load(ordering: .relaxed)
        case .formatError: formatError.load(ordering: .relaxed)
        case .serverFailure: serverFailure.load(ordering: .relaxed)
        case .nameError: nameError.load(ordering: .relaxed)
        case .notImplemented: notImplemented.load(ordering: .relaxed)
        case .refused: refused.load(ordering: .relaxed)
        }
    }

    var snapshot: Snapshot {
        var snapshot = Snapshot(
            queries: queries.load(ordering: .relaxed), malformedDropped: malformedDropped.load(ordering: .relaxed),
            forwarded: forwarded.load(ordering: .relaxed))
        for code in [DNSResponseCode.noError, .formatError, .serverFailure, .nameError, .notImplemented, .refused] {
            let count = count(code)
            if count > 0 { snapshot.answers[code] = count }
        }
        return snapshot
    }
}

/// The agent's DNS interface: one UDP channel with vectored reads answering on its event loop
/// (parse, resolve against the current catalog snapshot, write; one flush per read burst), a TCP
/// listener with 2-byte length framing, and the recursor client for foreign names.
///
/// The catalog comes from `catalog`, called once per query, so each answer reads one immutable
/// snapshot and health changes show up in the very next answer.
final class DNSServer: Sendable {
    let counters: DNSServerCounters
    /// Where the server listens (the real port when 0 was asked).
    let localPort: Int
    /// UDP and TCP on each address.
    private let channels: [any Channel]
    private let resolvers: DNSResolverSlot
    /// How recursor clients are made: the one at start and those a reload makes.
    private let recursorLoop: any EventLoop
    private let recursorTimeout: Duration
    private let seed: UInt64

    private init(
        counters: DNSServerCounters, localPort: Int, channels: [any Channel], resolvers: DNSResolverSlot,
        recursorLoop: any EventLoop, recursorTimeout: Duration, seed: UInt64
    ) {
        self.resolvers = resolvers
        self.counters = counters
        self.localPort = localPort
        self.channels = channels
        self.recursorLoop = recursorLoop
        self.recursorTimeout = recursorTimeout
        self.seed = seed
    }

    /// Binds UDP and TCP on every `configuration.hosts` address (one port for all; with port 0 the
    /// first UDP bind picks it) and starts answering. All share one resolver and its counters.
    /// - Parameters:
    ///   - catalog: the current catalog snapshot; called on the event loop for every query.
    ///   - serial: the SOA serial (Consul's is the Unix time in seconds).
    ///   - seed: seeds the answer shuffles and recursor query ids.
    static func start(
        configuration: DNSServerConfiguration, group: any EventLoopGroup, catalog: @escaping @Sendable () -> any DNSCatalogView,
        serial: @escaping @Sendable () -> UInt32 = DNSServer.unixTime, seed: UInt64,
        serverRelay: DNSServerRelay? = nil
    ) async throws -> DNSServer {
        let recursorAddresses = try configuration.recursors.map { text throws(DNSServerError) in try DNSRecursorClient.address(text) }
        let loop = group.next()
        let recursorClient: DNSRecursorClient? =
            recursorAddresses.isEmpty
            ? nil : try await DNSRecursorClient.start(recursors: recursorAddresses, timeout: configuration.recursorTimeout, eventLoop: loop, seed: seed)
        var settings = configuration.settings
        settings.recursorsConfigured = recursorClient != nil
        let context = DNSServerContext(
            resolvers: DNSResolverSlot(DNSResolver(settings: settings), recursors: configuration.recursors, client: recursorClient),
            catalog: catalog, serial: serial, counters: DNSServerCounters(), configuration: configuration, seed: seed, serverRelay: serverRelay)
        var channels: [any Channel] = []
        var port = configuration.port
        for host in configuration.hosts {
            do {
                // Each address's UDP channel on its own loop, so several addresses share the work.
                let udp = try await bindUDP(configuration, host: host, port: port, loop: channels.isEmpty ? loop : group.next(), context: context)
                channels.append(udp)
                port = udp.localAddress?.port ?? port
                channels.append(try await bindTCP(configuration, host: host, port: port, group: group, context: context))
            } catch {
                for channel in channels { try? await channel.close() }
                await recursorClient?.close()
                throw DNSServerError.bindFailed(host: host, port: port, reason: "\(error)")
            }
        }
        return DNSServer(
            counters: context.counters, localPort: port, channels: channels, resolvers: context.resolvers,
            recursorLoop: loop, recursorTimeout: configuration.recursorTimeout, seed: seed)
    }

    /// A reload's new DNS configuration, made ready (recursor addresses parsed, their client's
    /// socket bound) but not yet answering: `apply` puts it in place, `discard` drops it.
    struct Reconfiguration: Sendable {
        fileprivate var settings: DNSResolverSettings
        fileprivate var recursors: [String]
        /// nil: keep the client in use (the recursors did not change).
        fileprivate var newClient: DNSRecursorClient??
    }

    /// Prepares `settings` and `recursors` for `apply`. Throws when a recursor address is invalid
    /// or its socket cannot be bound; nothing has changed then. Waits for the bind: call it off
    /// any event loop.
    func prepare(settings: DNSResolverSettings, recursors: [String]) throws -> Reconfiguration {
        guard recursors != resolvers.recursors else { return Reconfiguration(settings: settings, recursors: recursors, newClient: nil) }
        let addresses = try recursors.map { text throws(DNSServerError) in try DNSRecursorClient.address(text) }
        let client = addresses.isEmpty
            ? nil : try DNSRecursorClient.startWaiting(recursors: addresses, timeout: recursorTimeout, eventLoop: recursorLoop, seed: seed &+ 1)
        return Reconfiguration(settings: settings, recursors: recursors, newClient: .some(client))
    }

    /// Answers with the prepared configuration from the next query on. A replaced recursor
    /// client is closed once queries already sent to it have had their time.
    func apply(_ reconfiguration: Reconfiguration) {
        var settings = reconfiguration.settings
        let client = reconfiguration.newClient ?? resolvers.recursorClient
        settings.recursorsConfigured = client != nil
        let replaced = resolvers.replace(DNSResolver(settings: settings), recursors: reconfiguration.recursors, client: client)
        if let replaced, replaced !== client {
            let grace = recursorTimeout * max(1, reconfiguration.recursors.count + 1)
            Task {
                try? await Task.sleep(for: grace)
                await replaced.close()
            }
        }
    }

    func discard(_ reconfiguration: Reconfiguration) {
        if case let client?? = reconfiguration.newClient { Task { await client.close() } }
    }

    var settings: DNSResolverSettings { resolvers.resolver.settings }

    func stop() async {
        for channel in channels { try? await channel.close() }
        await resolvers.recursorClient?.close()
    }

    /// Seconds since 1970 from the system's real-time clock (for the SOA serial).
    @Sendable static func unixTime() -> UInt32 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UInt32(truncatingIfNeeded: spec.tv_sec)
    }

    private static func bindUDP(_ configuration: DNSServerConfiguration, host: String, port: Int, loop: any EventLoop, context: DNSServerContext) async throws -> any Channel {
        try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.datagramVectorReadMessageCount, value: configuration.vectorReadCount)
            .channelOption(.maxMessagesPerRead, value: UInt(configuration.maxMessagesPerRead))
            .channelOption(
                .recvAllocator,
                value: FixedSizeRecvByteBufferAllocator(capacity: configuration.maxUDPQuerySize * configuration.vectorReadCount))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DNSUDPHandler(context: context))
                }
            }
            .bind(host: host, port: port)
            .get()
    }

    private static func bindTCP(_ configuration: DNSServerConfiguration, host: String, port: Int, group: any EventLoopGroup, context: DNSServerContext)
        async throws -> any Channel
    {
        let idle = TimeAmount.nanoseconds(configuration.tcpIdleTimeout.totalNanoseconds)
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    try operations.addHandler(IdleStateHandler(allTimeout: idle))
                    try operations.addHandler(ByteToMessageHandler(DNSTCPFrameDecoder()))
                    try operations.addHandler(DNSTCPHandler(context: context, eventLoop: channel.eventLoop))
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}

/// How an agent's DNS server gets answers for names in the Consul domain from a server's catalog
/// (through the agent's request path, `/v1/internal/dns`) when it may not answer from its own: a
/// client agent keeps no catalog; a server must not answer stale when `dns_config.allow_stale` is
/// off, or when it has not heard from the leader within `max_stale`.
struct DNSServerRelay: Sendable {
    /// Asked for every query in the Consul domain: must this one go through the relay?
    var isNeeded: @Sendable () -> Bool
    /// Sends the query; the future's value is the answer, or nil when no server gave one.
    var send: @Sendable (_ packet: [UInt8], _ transport: DNSTransport) -> EventLoopFuture<[UInt8]?>
}

/// The resolver a DNS server answers with and the recursors it forwards to, replaceable while
/// it runs (a reload's `dns_config` and `recursors`). Each handler keeps the resolver it last used
/// (in its memo) and looks again only when the version moved: the hot path pays one atomic load,
/// no lock. The recursor client is looked up per forwarded query.
final class DNSResolverSlot: Sendable {
    private struct Current {
        var version: UInt64
        var resolver: DNSResolver
        var recursors: [String]
        var client: DNSRecursorClient?
    }

    private let current: Mutex<Current>
    private let latestVersion = Atomic<UInt64>(0)

    init(_ resolver: DNSResolver, recursors: [String] = [], client: DNSRecursorClient? = nil) {
        current = Mutex(Current(version: 0, resolver: resolver, recursors: recursors, client: client))
    }

    var resolver: DNSResolver { current.withLock { $0.resolver } }
    var recursorClient: DNSRecursorClient? { current.withLock { $0.client } }
    /// The recursor addresses as configured (text), to tell whether a reload changed them.
    var recursors: [String] { current.withLock { $0.recursors } }

    /// Puts a new resolver (and recursor client) in place; answers the client it replaced.
    @discardableResult
    func replace(_ resolver: DNSResolver, recursors: [String]? = nil, client: DNSRecursorClient?? = nil) -> DNSRecursorClient? {
        current.withLock { slot in
            let previous = slot.client
            slot.version += 1
            slot.resolver = resolver
            if let recursors { slot.recursors = recursors }
            if let client { slot.client = client }
            latestVersion.store(slot.version, ordering: .releasing)
            return previous
        }
    }

    /// The current resolver, as cached in `memo`; a newer one replaces the cache and the answers
    /// compiled with the old settings.
    func resolver(for memo: inout DNSAnswerMemo) -> DNSResolver {
        let version = latestVersion.load(ordering: .acquiring)
        if let cached = memo.resolver(version: version) { return cached }
        let (latest, resolver) = current.withLock { ($0.version, $0.resolver) }
        memo.adopt(resolver, version: latest)
        return resolver
    }
}

/// What every handler of one server shares.
final class DNSServerContext: Sendable {
    let resolvers: DNSResolverSlot
    let catalog: @Sendable () -> any DNSCatalogView
    let serial: @Sendable () -> UInt32
    let counters: DNSServerCounters
    let configuration: DNSServerConfiguration
    let seed: UInt64
    /// How names in the Consul domain are answered when this agent may not answer them from its
    /// own catalog; nil: always from its own.
    let serverRelay: DNSServerRelay?
    let tcpConnections = Atomic<Int>(0)
    /// Numbers TCP connections so each gets its own shuffle stream.
    let connectionSerial = Atomic<UInt64>(0)

    init(
        resolvers: DNSResolverSlot, catalog: @escaping @Sendable () -> any DNSCatalogView, serial: @escaping @Sendable () -> UInt32,
        counters: DNSServerCounters, configuration: DNSServerConfiguration, seed: UInt64,
        serverRelay: DNSServerRelay? = nil
    ) {
        self.serverRelay = serverRelay
        self.resolvers = resolvers
        self.catalog = catalog
        self.serial = serial
        self.counters = counters
        self.configuration = configuration
        self.seed = seed
    }

    /// Answers one packet. Returns the immediate answer, or nil when the answer comes later
    /// (`forward` was called with what starts it: a recursor's or a server's answer) or never
    /// (dropped).
    func answer(
        _ packet: [UInt8], transport: DNSTransport, random: inout SeededRandom, memo: inout DNSAnswerMemo,
        forward: (_ start: () -> EventLoopFuture<[UInt8]?>) -> Void
    ) -> [UInt8]? {
        counters.queries.wrappingAdd(1, ordering: .relaxed)
        let resolver = resolvers.resolver(for: &memo)
        let resolution = resolver.resolve(packet, transport: transport, catalog: catalog(), serial: serial(), random: &random, memo: &memo)
        if let serverRelay, serverRelay.isNeeded() {
            // A name in our domain (not a malformed packet), which this agent may not answer itself.
            let ours: Bool
            switch resolution {
            case .respond(_, let code): ours = code != .formatError
            case .otherDatacenter: ours = true
            case .drop, .forward: ours = false
            }
            if ours {
                counters.forwarded.wrappingAdd(1, ordering: .relaxed)
                forward { serverRelay.send(packet, transport) }
                return nil
            }
        }
        switch resolution {
        case .respond(let bytes, let code):
            counters.answered(code)
            return bytes
        case .drop:
            counters.malformedDropped.wrappingAdd(1, ordering: .relaxed)
            return nil
        case .otherDatacenter(_, let query):
            // Cross-datacenter lookups go through the agent's forwarder once WAN federation exists.
            counters.answered(.nameError)
            return resolver.nameError(for: query, serial: serial())
        case .forward(let query):
            guard let recursorClient = resolvers.recursorClient else {
                counters.answered(.serverFailure)
                return resolver.serverFailure(for: query)
            }
            counters.forwarded.wrappingAdd(1, ordering: .relaxed)
            forward { recursorClient.forward(packet) }
            return nil
        }
    }

    /// What goes back to the client for a forwarded query: the recursor's answer, or SERVFAIL.
    func relayed(_ answer: [UInt8]?, for packet: [UInt8]) -> [UInt8] {
        if let answer {
            counters.answered(DNSResponseCode(rawValue: answer[3] & 0x0F) ?? .noError)
            return answer
        }
        counters.answered(.serverFailure)
        guard let query = try? DNSQuery.parse(packet) else {
            return DNSResponseWriter.errorResponse(id: UInt16(packet[0]) << 8 | UInt16(packet[1]), code: .serverFailure)
        }
        return resolvers.resolver.serverFailure(for: query)
    }
}

/// The UDP side: every datagram is answered right here on the channel's event loop; writes are
/// flushed once per read burst.
final class DNSUDPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let context: DNSServerContext
    private var random: SeededRandom
    /// Answers compiled for the current catalog generation, private to this event loop.
    private var memo = DNSAnswerMemo()

    init(context: DNSServerContext) {
        self.context = context
        self.random = SeededRandom(seed: context.seed).stream("udp")
    }

    func channelRead(context handlerContext: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let packet = Array(envelope.data.readableBytesView)
        let remote = envelope.remoteAddress
        let channel = handlerContext.channel
        let server = context
        let answer = context.answer(packet, transport: .udp, random: &random, memo: &memo) { start in
            start().hop(to: channel.eventLoop).whenSuccess { answer in
                let bytes = server.relayed(answer, for: packet)
                channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: channel.allocator.buffer(bytes: bytes)), promise: nil)
            }
        }
        guard let answer else { return }
        let buffer = handlerContext.channel.allocator.buffer(bytes: answer)
        handlerContext.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: remote, data: buffer)), promise: nil)
    }

    func channelReadComplete(context handlerContext: ChannelHandlerContext) {
        handlerContext.flush()
    }

    func errorCaught(context handlerContext: ChannelHandlerContext, error: any Error) {
        // A failed send (an unreachable client) must not close the shared UDP socket.
    }
}

/// DNS over TCP: each message is preceded by its length in two bytes (RFC 1035 4.2.2).
struct DNSTCPFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
              buffer.readableBytes >= 2 + Int(length)
        else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 2)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// One TCP connection: queries in, length-prefixed answers out (several per connection, answered
/// in arrival order except forwarded ones, which come when the recursor answers — RFC 7766 allows it).
final class DNSTCPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let context: DNSServerContext
    private var random: SeededRandom
    private var memo = DNSAnswerMemo()
    private let forwardsInFlight: NIOLoopBoundBox<Int>
    private var counted = false

    init(context: DNSServerContext, eventLoop: any EventLoop) {
        self.context = context
        let number = context.connectionSerial.wrappingAdd(1, ordering: .relaxed).newValue
        self.random = SeededRandom(seed: context.seed ^ (number &* 0x9E37_79B9_7F4A_7C15)).stream("tcp")
        self.forwardsInFlight = NIOLoopBoundBox(0, eventLoop: eventLoop)
    }

    func channelActive(context handlerContext: ChannelHandlerContext) {
        let open = context.tcpConnections.wrappingAdd(1, ordering: .relaxed).newValue
        counted = true
        if open > context.configuration.maxTCPConnections {
            handlerContext.close(promise: nil)
            return
        }
        handlerContext.fireChannelActive()
    }

    func channelInactive(context handlerContext: ChannelHandlerContext) {
        if counted {
            context.tcpConnections.wrappingSubtract(1, ordering: .relaxed)
            counted = false
        }
        handlerContext.fireChannelInactive()
    }

    func channelRead(context handlerContext: ChannelHandlerContext, data: NIOAny) {
        let packet = Array(unwrapInboundIn(data).readableBytesView)
        let channel = handlerContext.channel
        let server = context
        let inFlight = forwardsInFlight
        let limit = context.configuration.maxForwardsPerTCPConnection
        let answer = context.answer(packet, transport: .tcp, random: &random, memo: &memo) { start in
            guard inFlight.value < limit else {
                channel.writeAndFlush(Self.frame(server.relayed(nil, for: packet), allocator: channel.allocator), promise: nil)
                return
            }
            inFlight.value += 1
            start().hop(to: channel.eventLoop).whenSuccess { answer in
                inFlight.value -= 1
                channel.writeAndFlush(Self.frame(server.relayed(answer, for: packet), allocator: channel.allocator), promise: nil)
            }
        }
        guard let answer else { return }
        handlerContext.write(wrapOutboundOut(Self.frame(answer, allocator: channel.allocator)), promise: nil)
    }

    func channelReadComplete(context handlerContext: ChannelHandlerContext) {
        handlerContext.flush()
    }

    func userInboundEventTriggered(context handlerContext: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            handlerContext.close(promise: nil)
            return
        }
        handlerContext.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context handlerContext: ChannelHandlerContext, error: any Error) {
        handlerContext.close(promise: nil)
    }

    private static func frame(_ message: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: message.count + 2)
        buffer.writeInteger(UInt16(clamping: message.count))
        buffer.writeBytes(message)
        return buffer
    }
}
