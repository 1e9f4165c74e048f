import NIOCore
import NIOPosix
import Raft
import Synchronization

/// Why a call to another agent failed. `wasSent` tells whether the request may have been handled.
enum RPCError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Not sent: no connection could be made, or it closed before the request was written. Safe
    /// to send elsewhere.
    case unreachable(address: String, reason: String)
    /// Sent, but the connection closed before the answer came: it may or may not have been handled.
    case connectionLost(address: String)
    /// Sent, and no answer came in time.
    case timedOut(address: String, after: TimeAmount)
    /// The pool already carries `limit` calls.
    case tooManyInFlight(limit: Int)
    /// The request exceeds what a peer accepts.
    case requestTooLarge(String)
    case shutDown

    var wasSent: Bool {
        switch self {
        case .connectionLost, .timedOut: return true
        case .unreachable, .tooManyInFlight, .requestTooLarge, .shutDown: return false
        }
    }

    var description: String {
        switch self {
        case .unreachable(let address, let reason): return "cannot reach \(address): \(reason)"
        case .connectionLost(let address): return "connection to \(address) closed before the answer came"
        case .timedOut(let address, let after): return "no answer from \(address) within \(after.nanoseconds / 1_000_000) ms"
        case .tooManyInFlight(let limit): return "\(limit) RPC requests already in flight from this agent"
        case .requestTooLarge(let what): return "request \(what)"
        case .shutDown: return "the agent is shutting down"
        }
    }
}

/// Outbound agent RPC: a bounded set of connections per server address, each carrying many
/// requests at once (matched to their answers by id), so a forwarded blocking query never holds
/// back another request. Connections open on demand (each with a connect timeout), close after
/// being idle for a while, and a failed one is dropped from the pool so the next call reconnects.
///
/// Bounds: `maxConnectionsPerServer` connections per address; `maxInFlight` calls across the pool
/// (more fail at once with `tooManyInFlight`); each call has its own timeout. Everything waits on
/// futures; nothing blocks an event loop.
final class RPCClientPool: Sendable {
    struct Limits: Sendable {
        var maxConnectionsPerServer = 2
        /// Calls on the least busy connection to a server before another connection is opened
        /// (up to `maxConnectionsPerServer`).
        var callsPerConnectionBeforeSpreading = 64
        var maxInFlight = 4096
        var connectTimeout: TimeAmount = .seconds(2)
        /// A connection with no call for this long is closed.
        var idleTimeout: TimeAmount = .seconds(120)
        var codec = RPCCodec.Limits.default

        init() {}
    }

    let group: any EventLoopGroup
    let limits: Limits
    let counters = RPCCounters()
    /// With `verify_outgoing`, every connection is RPCTLS (see `InternalRPCTLS.secureOutgoing`).
    /// Asked as each connection is made: a reload may have re-read the certificates.
    var tls: InternalRPCTLS? { tlsSource() }
    private let tlsSource: @Sendable () -> InternalRPCTLS?

    private struct State {
        var connections: [String: [RPCClientConnection]] = [:]
        var inFlight = 0
        var closed = false
    }

    private let state = Mutex(State())

    convenience init(group: any EventLoopGroup, limits: Limits = Limits(), tls: InternalRPCTLS? = nil) {
        self.init(group: group, limits: limits, tlsSource: { tls })
    }

    init(group: any EventLoopGroup, limits: Limits = Limits(), tlsSource: @escaping @Sendable () -> InternalRPCTLS?) {
        self.group = group
        self.limits = limits
        self.tlsSource = tlsSource
    }

    /// Sends `request` to the agent at `address` ("host:port") and completes on `loop` with its
    /// answer, or fails with an `RPCError`. The request's `id` is chosen by the connection.
    func call(_ request: RPCRequestFrame, to address: String, timeout: TimeAmount, on loop: any EventLoop) -> EventLoopFuture<RPCResponseFrame> {
        let frame: ByteBuffer
        do {
            frame = try RPCCodec.encode(.request(request), limits: limits.codec)
        } catch {
            return loop.makeFailedFuture(RPCError.requestTooLarge(error.description))
        }
        guard let (host, port) = splitHostPort(address) else {
            return loop.makeFailedFuture(RPCError.unreachable(address: address, reason: "not a host:port address"))
        }
        let limits = self.limits
        let choice = state.withLock { state -> Result<(RPCClientConnection, created: Bool), RPCError> in
            guard !state.closed else { return .failure(.shutDown) }
            guard state.inFlight < limits.maxInFlight else { return .failure(.tooManyInFlight(limit: limits.maxInFlight)) }
            var list = state.connections[address] ?? []
            let leastBusy = list.min { $0.outstanding.load(ordering: .relaxed) < $1.outstanding.load(ordering: .relaxed) }
            let connection: RPCClientConnection
            var created = false
            if let leastBusy, leastBusy.outstanding.load(ordering: .relaxed) < limits.callsPerConnectionBeforeSpreading
                || list.count >= limits.maxConnectionsPerServer
            {
                connection = leastBusy
            } else {
                connection = RPCClientConnection(address: address, pool: self, eventLoop: group.next())
                list.append(connection)
                state.connections[address] = list
                created = true
            }
            connection.outstanding.add(1, ordering: .relaxed)
            state.inFlight += 1
            return .success((connection, created))
        }
        let connection: RPCClientConnection
        switch choice {
        case .failure(let error):
            if case .tooManyInFlight = error { counters.add(\.callsRejectedInFlight) }
            return loop.makeFailedFuture(error)
        case .success(let chosen):
            connection = chosen.0
            if chosen.created { connection.connect(host: host, port: port) }
        }
        let answer = connection.send(frame, timeout: timeout)
        answer.whenComplete { _ in self.finished(on: connection) }
        return answer.hop(to: loop)
    }

    /// Connections open to `address` (or opening).
    func connectionCount(to address: String) -> Int {
        state.withLock { $0.connections[address]?.count ?? 0 }
    }

    var inFlight: Int { state.withLock { $0.inFlight } }

    /// Closes every connection (their calls fail with `shutDown`) and refuses new calls.
    func shutdown() async {
        let all = state.withLock { state in
            state.closed = true
            defer { state.connections.removeAll() }
            return state.connections.values.flatMap { $0 }
        }
        for connection in all { await connection.close() }
    }

    // MARK: - From connections

    private func finished(on connection: RPCClientConnection) {
        state.withLock { state in
            connection.outstanding.subtract(1, ordering: .relaxed)
            state.inFlight -= 1
        }
    }

    /// A connection failed or closed: the next call to its address opens a new one.
    func remove(_ connection: RPCClientConnection) {
        state.withLock { state in
            guard var list = state.connections[connection.address] else { return }
            list.removeAll { $0 === connection }
            state.connections[connection.address] = list.isEmpty ? nil : list
        }
    }

    /// Takes an idle connection out of the pool, unless a call chose it meanwhile. Calls choose
    /// connections under the same lock, so one that is taken out is never chosen again.
    func retireIfIdle(_ connection: RPCClientConnection) -> Bool {
        state.withLock { state in
            guard connection.outstanding.load(ordering: .relaxed) == 0 else { return false }
            guard var list = state.connections[connection.address] else { return true }
            list.removeAll { $0 === connection }
            state.connections[connection.address] = list.isEmpty ? nil : list
            return true
        }
    }
}
