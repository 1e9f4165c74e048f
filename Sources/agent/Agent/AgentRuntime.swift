import ConsulCore
import Raft
import Synchronization

/// What the request path and endpoints see of a running agent: identity, configuration, the state
/// store's current version, Raft, and a cached view of the cluster that handlers on event loops
/// read without waiting.
final class AgentRuntime: Sendable {
    /// The configuration the agent runs with. The one place reloadable settings live: a reload
    /// replaces the reloadable fields (`ConfigReload`), every other field keeps its start-up value,
    /// and readers that must follow a reload read it here each time rather than keep a copy.
    var config: AgentConfig { liveConfig.withLock { $0 } }
    /// One part of the configuration, without copying the rest (for readers on hot paths).
    func config<T: Sendable>(_ part: (AgentConfig) -> T) -> T { liveConfig.withLock { part($0) } }
    private let liveConfig: Mutex<AgentConfig>
    /// Fixed for the agent's life, read by every request: kept apart from the live configuration.
    let datacenter: String
    let nodeName: String
    let nodeID: String
    /// The address other agents reach this one at (gossip and RPC).
    let advertiseAddress: String
    let watch: StateWatch
    /// Present on servers.
    let raft: RaftNode<ConsulStateMachine>?
    let acl: ACLGate
    let clock: any MonotonicClock
    let sessionTimers: SessionTimers
    /// Keys that may not be locked yet after their holder's session was invalidated.
    let lockDelays: LockDelays
    /// This datacenter's servers as gossip knows them.
    let servers: ServerDirectory
    /// The LAN gossip pool (absent only in unit tests that build a runtime without sockets).
    let lan: LANPool?
    /// This agent's own services and checks (`/v1/agent/services|checks`), synced to the catalog.
    let local: LocalAgent
    /// TLS on the server port and HTTPS (absent in unit tests without sockets); a reload replaces
    /// it when it re-reads the certificates.
    let liveTLS: LiveTLS?
    var tls: AgentTLS? { liveTLS?.current }
    /// Since when autopilot has judged each server healthy or not (leader only).
    let autopilotStability = AutopilotStability()
    /// Coordinate updates queued on the leader for its next batch write.
    let coordinateUpdates = CoordinateBatcher()
    /// When this runtime was made: counters' rates in `/v1/agent/metrics` are over this span.
    let startedAt = ContinuousClock.now
    /// The agent's logger (absent in unit tests that build a runtime without one); its monitors
    /// are what `/v1/agent/monitor` streams from.
    let logger: AgentLogger?
    var logMonitors: LogMonitors? { logger?.monitors }
    /// HTTP requests handled, by method (for `/v1/agent/metrics`).
    private let httpRequests = HTTPMethodCounters()

    func countHTTPRequest(_ method: String) { httpRequests.count(method) }
    var httpRequestCounts: [String: Int] { httpRequests.snapshot }

    /// What the agent last learned of Raft leadership; refreshed by `AgentLifecycle`.
    struct ClusterView: Sendable, Equatable {
        var leaderID: ServerID?
        var isLeader = false
        var term: Term = 0
        var commitIndex: LogIndex = 0
        var appliedIndex: LogIndex = 0
        var lastIndex: LogIndex = 0
        var configuration = ClusterConfiguration()
        /// When a leader was last heard from (the leader itself: now).
        var lastContact: Timestamp?
        /// Raft's own `consul info` section, as `RaftNode.stats()` last reported it.
        var raftStats: [String: String] = [:]
    }

    private let cluster: Mutex<ClusterView>
    /// Set by the process running the agent: how `/v1/agent/leave` ends it.
    private let leaveHandler = Mutex<(@Sendable () -> Void)?>(nil)

    func onLeave(_ handler: @escaping @Sendable () -> Void) { leaveHandler.withLock { $0 = handler } }

    /// Set by the process running the agent: how `/v1/agent/reload` re-reads the config files.
    /// Answers nil on success, else the problem (the old definitions then stay).
    private let reloadHandler = Mutex<(@Sendable () async -> String?)?>(nil)

    func onReload(_ handler: @escaping @Sendable () async -> String?) { reloadHandler.withLock { $0 = handler } }

    /// Re-reads service and check definitions; nil when the process offers no reload.
    func requestReload() async -> String?? {
        guard let handler = reloadHandler.withLock({ $0 }) else { return nil }
        return .some(await handler())
    }

    /// Asks the process to leave the cluster and shut down (after the current answer is sent).
    func requestLeave() -> Bool {
        guard let handler = leaveHandler.withLock({ $0 }) else { return false }
        handler()
        return true
    }

    init(
        config: AgentConfig, nodeName: String, nodeID: String, advertiseAddress: String, watch: StateWatch,
        raft: RaftNode<ConsulStateMachine>?, lan: LANPool? = nil, servers: ServerDirectory = ServerDirectory(), acl: ACLGate = ACLGate(),
        lockDelays: LockDelays = LockDelays(), clock: any MonotonicClock, tls: LiveTLS? = nil, logger: AgentLogger? = nil
    ) {
        self.liveTLS = tls
        self.logger = logger
        self.lockDelays = lockDelays
        self.lan = lan
        self.servers = servers
        self.liveConfig = Mutex(config)
        self.datacenter = config.datacenter
        self.nodeName = nodeName
        self.nodeID = nodeID
        self.advertiseAddress = advertiseAddress
        self.watch = watch
        self.raft = raft
        self.acl = acl
        self.clock = clock
        self.sessionTimers = SessionTimers(clock: clock)
        self.cluster = Mutex(ClusterView())
        self.local = LocalAgent(
            nodeName: nodeName,
            scriptPolicy: LocalState.ScriptPolicy(enableScriptChecks: config.enableScriptChecks, enableLocalScriptChecks: config.enableLocalScriptChecks),
            clock: clock)
    }

    /// Runs the agent with `reload.next` from now on (its non-reloadable fields are the running ones).
    func adopt(_ reload: ConfigReload) { liveConfig.withLock { $0 = reload.next } }

    /// Autopilot's settings: those stored through the operator API win over the agent configuration's.
    var autopilotSettings: AgentConfig.AutopilotConfig { watch.current.autopilot?.settings ?? config(\.autopilot) }
    var clusterView: ClusterView { cluster.withLock { $0 } }

    func updateCluster(_ view: ClusterView) { cluster.withLock { $0 = view } }

    /// What reads report about the leader (`X-Consul-KnownLeader`, `X-Consul-LastContact` and
    /// the same fields of bodies that embed Consul's QueryMeta) and what DNS weighs against
    /// `max_stale`: whether one is known, and how long ago it was last heard from (zero on the
    /// leader itself; nil when never). Reads three fields, never copies the whole view.
    var leaderContact: (isLeader: Bool, knownLeader: Bool, sinceContact: Duration?) {
        let (isLeader, known, contact) = cluster.withLock { ($0.isLeader, $0.leaderID != nil, $0.lastContact) }
        if isLeader { return (true, true, .zero) }
        return (false, known, contact.map { clock.now().duration(since: $0) })
    }

    /// Read for every request: only the two fields it needs, never a copy of the whole view.
    var forwardingState: ForwardingState {
        let (isLeader, knownLeader) = cluster.withLock { ($0.isLeader, $0.leaderID != nil) }
        return ForwardingState(datacenter: datacenter, isServer: raft != nil, isLeader: isLeader, knownLeader: knownLeader)
    }

    /// The RPC address of a server, as `/v1/status/leader` shows it: from the Raft configuration,
    /// where every server is recorded with its address.
    func rpcAddress(of server: ServerID) -> String {
        if let address = clusterView.configuration.addresses[server] { return address }
        return server.rawValue == nodeID ? "\(advertiseAddress):\(config(\.ports.server))" : server.rawValue
    }

    /// Proposes a state change and waits until it is committed and applied here.
    func apply(_ command: StateCommand) async throws(APIError) -> StateCommandResult {
        guard let raft else { throw .noServers }
        do {
            let answer = try await raft.propose(command.encoded())
            return StateCommandResult.decode(answer)
        } catch {
            throw Self.apiError(error)
        }
    }

    /// `apply` without a task: the command goes to the Raft node on its event loop and
    /// `completion` is called there once it is applied (or refused).
    func apply(_ command: StateCommand, completion: @escaping @Sendable (Result<StateCommandResult, APIError>) -> Void) {
        guard let raft else { return completion(.failure(.noServers)) }
        let encoded = command.encoded()
        raft.eventLoop.execute {
            raft.assumeIsolated { node in
                node.propose(encoded) { result in
                    switch result {
                    case .success(let answer): completion(.success(StateCommandResult.decode(answer)))
                    case .failure(let error): completion(.failure(Self.apiError(error)))
                    }
                }
            }
        }
    }

    /// Waits until this server has confirmed with a quorum that it is still the leader and has
    /// applied everything committed before the call (`?consistent`).
    func consistentRead() async throws(APIError) {
        guard let raft else { throw .noServers }
        do {
            try await raft.linearizableRead()
        } catch {
            throw Self.apiError(error)
        }
    }

    private static func apiError(_ error: RaftNodeError) -> APIError {
        switch error {
        case .rejected(.notLeader): return .noLeader
        case .rejected(let reason): return .internalError("raft refused the request: \(reason)")
        case .lost: return .internalError("leadership lost while committing")
        case .stopped: return .internalError("agent is shutting down")
        case .outcomeUnknown: return .internalError("the request may or may not have been applied (leadership changed)")
        case .leadershipLost: return .internalError("leadership lost while committing log")
        case .storage(let message): return .internalError("raft storage failed: \(message)")
        case .badSnapshot(let message): return .internalError("raft snapshot failed: \(message)")
        case .peersFile(let problem): return .internalError("raft peers.json: \(problem)")
        }
    }
}

/// One counter per HTTP method Consul knows and one for anything else (clients choose the
/// string, so the set stays bounded), counted without a lock: every request passes here.
final class HTTPMethodCounters: Sendable {
    private let get = Atomic<Int>(0), put = Atomic<Int>(0), post = Atomic<Int>(0), delete = Atomic<Int>(0)
    private let head = Atomic<Int>(0), options = Atomic<Int>(0), patch = Atomic<Int>(0), other = Atomic<Int>(0)

    func count(_ method: String) {
        switch method {
        case "GET": get.wrappingAdd(1, ordering: .relaxed)
        case "PUT": put.wrappingAdd(1, ordering: .relaxed)
        case "POST": post.wrappingAdd(1, ordering: .relaxed)
        case "DELETE": delete.wrappingAdd(1, ordering: .relaxed)
        case "HEAD": head.wrappingAdd(1, ordering: .relaxed)
        case "OPTIONS": options.wrappingAdd(1, ordering: .relaxed)
        case "PATCH": patch.wrappingAdd(1, ordering: .relaxed)
        default: other.wrappingAdd(1, ordering: .relaxed)
        }
    }

    var snapshot: [String: Int] {
        let all = [
            ("GET", get.load(ordering: .relaxed)), ("PUT", put.load(ordering: .relaxed)), ("POST", post.load(ordering: .relaxed)),
            ("DELETE", delete.load(ordering: .relaxed)), ("HEAD", head.load(ordering: .relaxed)), ("OPTIONS", options.load(ordering: .relaxed)),
            ("PATCH", patch.load(ordering: .relaxed)), ("OTHER", other.load(ordering: .relaxed)),
        ]
        return Dictionary(uniqueKeysWithValues: all.filter { $0.1 > 0 })
    }
}
