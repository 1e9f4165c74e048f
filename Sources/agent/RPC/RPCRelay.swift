import NIOCore
import Synchronization

/// Carries a request that the forwarder sent elsewhere (`ForwardDecision.leader`) to the agent
/// that answers it, over agent RPC, and passes that agent's answer back unchanged:
///
/// - on a server: to the leader, at its address in the Raft configuration (no leader known: 500
///   "No cluster leader");
/// - on a client: to a server of `ServerDirectory` (none: 500 "No known Consul servers"). The
///   server it reaches runs the request through its own request path, so it answers `?stale`
///   itself and forwards the rest once more, to the leader: client → any server → leader, as
///   Consul does. A server that cannot be reached is rotated to the back (the next request starts
///   with the next server) and the request tries the next one; a read also moves on when the
///   connection closed before its answer came (a write may have been applied, so it does not).
///
/// Every forward counts a hop; a request that arrives with `maxHops` and would have to move on is
/// refused, so a stale leadership view can never make requests circle.
final class RPCRelay: Sendable {
    /// Client → server → leader.
    static let maxHops = 2
    /// Servers tried for one request from a client.
    static let maxAttempts = 3
    /// Time a forwarded call gets beyond its blocking wait (Raft commits, the network).
    static let callMargin: TimeAmount = .seconds(30)
    /// Extra time per hop still ahead, so the inner hop times out (and says why) before the outer one.
    static let marginPerHopAhead: TimeAmount = .seconds(5)

    let runtime: AgentRuntime
    let pool: RPCClientPool
    /// Which server a client tries first: counts up each time the one it names fails.
    private let preferredServer = Atomic<Int>(0)

    init(runtime: AgentRuntime, pool: RPCClientPool) {
        self.runtime = runtime
        self.pool = pool
    }

    /// The answer of the agent that should answer `request`, completed on `loop`.
    func forward(_ request: APIRequest, isWrite: Bool, options: QueryOptions, on loop: any EventLoop) -> EventLoopFuture<APIResponse> {
        guard request.forwardHops < Self.maxHops else {
            return loop.makeSucceededFuture(APIError.internalError(
                "rpc error: request forwarded \(request.forwardHops) times without reaching the leader (leadership is changing); try again").response)
        }
        let frame = RPCRequestFrame(request, hops: UInt8(request.forwardHops + 1))
        let timeout = Self.timeout(for: options, hops: request.forwardHops)
        if runtime.raft != nil {
            guard let leader = runtime.clusterView.leaderID else { return loop.makeSucceededFuture(APIError.noLeader.response) }
            let address = runtime.rpcAddress(of: leader)
            return pool.call(frame, to: address, timeout: timeout, on: loop).map(\.apiResponse).flatMapError { error in
                loop.makeSucceededFuture(Self.failure(error, reaching: "the leader at \(address)").response)
            }
        }
        let servers = runtime.servers.current
        guard !servers.isEmpty else { return loop.makeSucceededFuture(APIError.noServers.response) }
        let first = preferredServer.load(ordering: .relaxed)
        return attempt(frame, servers: servers, position: first, attemptsLeft: min(servers.count, Self.maxAttempts), isWrite: isWrite, timeout: timeout, on: loop)
    }

    /// How long a forwarded call may take: a blocking query's wait (with the jitter the answering
    /// server adds) plus the margin.
    static func timeout(for options: QueryOptions, hops: Int) -> TimeAmount {
        var timeout = callMargin + marginPerHopAhead * Int64(max(0, maxHops - hops - 1))
        if options.minIndex > 0 {
            let wait = max(options.wait.totalNanoseconds, 0)
            timeout = timeout + .nanoseconds(wait + wait / 16)
        }
        return timeout
    }

    private func attempt(
        _ frame: RPCRequestFrame, servers: [KnownServer], position: Int, attemptsLeft: Int, isWrite: Bool, timeout: TimeAmount,
        on loop: any EventLoop
    ) -> EventLoopFuture<APIResponse> {
        let server = servers[position % servers.count]
        return pool.call(frame, to: server.rpcAddress, timeout: timeout, on: loop).map(\.apiResponse).flatMapError { error in
            let rpcError = error as? RPCError ?? .unreachable(address: server.rpcAddress, reason: "\(error)")
            var tryNext = false
            switch rpcError {
            case .unreachable: tryNext = true
            case .connectionLost: tryNext = !isWrite
            case .timedOut, .tooManyInFlight, .requestTooLarge, .shutDown: break
            }
            if tryNext {
                // Rotate past the failed server, unless another request already did.
                _ = self.preferredServer.compareExchange(expected: position, desired: position + 1, ordering: .relaxed)
                if attemptsLeft > 1 {
                    return self.attempt(
                        frame, servers: servers, position: position + 1, attemptsLeft: attemptsLeft - 1, isWrite: isWrite, timeout: timeout, on: loop)
                }
            }
            return loop.makeSucceededFuture(Self.failure(rpcError, reaching: "server \(server.name) at \(server.rpcAddress)").response)
        }
    }

    /// The API error a failed call answers with.
    static func failure(_ error: any Error, reaching target: String) -> APIError {
        guard let error = error as? RPCError else { return .internalError("rpc error making call to \(target): \(error)") }
        switch error {
        case .tooManyInFlight: return .tooManyRequests("rpc error: \(error)")
        case .requestTooLarge: return .tooLarge("rpc error: \(error)")
        case .shutDown: return .internalError("rpc error: \(error)")
        case .unreachable, .connectionLost, .timedOut: return .internalError("rpc error making call to \(target): \(error)")
        }
    }
}
