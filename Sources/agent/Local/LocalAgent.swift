import ConsulCore
import Synchronization

/// The shell around `LocalState`: one lock for the state, one task per probed check, a ticker for
/// TTL expiry and reaping, and the anti-entropy loop (`CatalogSync`). Endpoints change the state
/// through `update`, which restarts the runners that changed and wakes the sync loop, so a local
/// change reaches the catalog at once.
final class LocalAgent: Sendable {
    /// How often TTL deadlines and `deregister_critical_service_after` are looked at.
    static let tickInterval: Duration = .milliseconds(500)

    private let state: Mutex<LocalState>
    private let clock: any MonotonicClock
    private let runners = Mutex<[String: Runner]>([:])
    private let shell = Mutex<Shell?>(nil)
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: Mutex<AsyncStream<Void>?>
    /// Where API registrations are persisted; nil until the agent attaches its data dir.
    private let store = Mutex<DefinitionStore?>(nil)

    private struct Runner {
        var definition: CheckDefinition
        var task: Task<Void, Never>
    }

    /// What exists only once the agent runs: probes, logs and the background tasks.
    private struct Shell {
        var probes: CheckProbes
        var logger: AgentLogger
        var tasks: [Task<Void, Never>]
        /// The agent's request path, for alias checks of other nodes.
        var send: @Sendable (APIRequest) async -> APIResponse
        /// Read per query: a reload may change the agent's token.
        var token: @Sendable () -> String?
    }

    /// Alias checks of other nodes: how long each blocking query may wait, and the least time
    /// between two queries (a server that answers at once must not be spun on).
    static let aliasQueryWait = "5m"
    static let aliasMinQueryGap: Duration = .seconds(1)
    static let aliasMaxRetry: Duration = .seconds(30)

    init(nodeName: String, scriptPolicy: LocalState.ScriptPolicy, clock: any MonotonicClock) {
        self.state = Mutex(LocalState(nodeName: nodeName, scriptPolicy: scriptPolicy))
        self.clock = clock
        // Only "something changed" matters, not how often: one pending wake-up is enough.
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.wake = continuation
        self.wakes = Mutex(stream)
    }

    var snapshot: LocalState { state.withLock { $0 } }

    /// Changes the state; then probes follow the new definitions and the catalog is synced.
    func update<T, E: Error>(_ body: (inout LocalState, Timestamp) throws(E) -> T) throws(E) -> T {
        let now = clock.now()
        let result = try state.withLock { (state: inout LocalState) throws(E) -> T in
            let result = try body(&state, now)
            state.refreshLocalAliases(now: now)
            return result
        }
        reconcileRunners()
        persist()
        wake.yield()
        return result
    }

    /// From now on API registrations are written to `store` (after restoring what it held).
    func attachStore(_ store: DefinitionStore) {
        self.store.withLock { $0 = store }
        persist()
    }

    /// Hands the current API registrations to the store's writer (which skips what is unchanged).
    private func persist() {
        guard let store = store.withLock({ $0 }) else { return }
        store.submit(state.withLock { $0.persistable })
    }

    /// Waits until the API registrations as they are now are on disk, so an answer to a
    /// registration means it survives a restart (Consul persists before it answers). False when
    /// a file could not be written; true at once when nothing is persisted (no data dir yet).
    func persisted() async -> Bool {
        guard let store = store.withLock({ $0 }) else { return true }
        let generation = store.submit(state.withLock { $0.persistable })
        return await store.written(through: generation)
    }

    /// Starts probes, the ticker and the sync loop. `sync` carries writes to the catalog.
    func start(probes: CheckProbes, sync: CatalogSync, logger: AgentLogger) {
        guard let stream = wakes.withLock({ current -> AsyncStream<Void>? in defer { current = nil }; return current }) else { return }
        let ticker = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.tickInterval)
                self?.tick()
            }
        }
        let syncLoop = Task { await sync.run(wakes: stream) }
        shell.withLock { $0 = Shell(probes: probes, logger: logger, tasks: [ticker, syncLoop], send: sync.send, token: { sync.token }) }
        reconcileRunners()
        wake.yield()
    }

    func stop() {
        let tasks = shell.withLock { $0?.tasks ?? [] }
        for task in tasks { task.cancel() }
        wake.finish()
        let running = runners.withLock { current -> [Runner] in defer { current = [:] }; return Array(current.values) }
        for runner in running { runner.task.cancel() }
    }

    /// Wakes the sync loop without a local change (its own periodic tick).
    func poke() { wake.yield() }

    private func tick() {
        let now = clock.now()
        let logger = shell.withLock { $0?.logger }
        let (expired, reaped) = state.withLock { state -> ([String], [String]) in
            let before = state.checks.filter { $0.value.ttlDeadline != nil }.map(\.key)
            state.expireTTLs(now: now)
            let expired = before.filter { state.checks[$0]?.ttlDeadline == nil }
            let doomed = state.servicesToReap(now: now)
            for id in doomed { state.removeService(id) }
            state.refreshLocalAliases(now: now)
            return (expired, doomed)
        }
        for id in expired.sorted() { logger?.warn("agent.checks", "Check missed TTL, is now critical", ["check": id]) }
        for id in reaped { logger?.info("agent", "Removed service: critical for longer than deregister_critical_service_after", ["service": id]) }
        if !reaped.isEmpty { persist() }
        if !expired.isEmpty || !reaped.isEmpty {
            reconcileRunners()
            wake.yield()
        }
    }

    /// One task per probed check (HTTP, TCP, UDP, script) and per alias of another node; TTL
    /// checks and aliases of this node need none. A check whose definition changed gets a fresh
    /// runner (and thresholds).
    private func reconcileRunners() {
        guard let shell = shell.withLock({ $0 }) else { return }
        let (probes, logger) = (shell.probes, shell.logger)
        let wanted = state.withLock { state in
            state.checks.values.compactMap { check -> CheckDefinition? in
                guard let definition = check.definition else { return nil }
                switch definition.kind {
                case .ttl: return nil
                case .alias(let target): return state.isLocalAlias(target) ? nil : definition
                default: return definition
                }
            }
        }
        let wantedByID = Dictionary(wanted.map { ($0.id, $0) }) { first, _ in first }
        runners.withLock { runners in
            for (id, runner) in runners where wantedByID[id] != runner.definition {
                runner.task.cancel()
                runners[id] = nil
            }
            for definition in wanted.sorted(by: { $0.id < $1.id }) where runners[definition.id] == nil {
                runners[definition.id] = Runner(definition: definition, task: Task { [weak self] in
                    if case .alias(let target) = definition.kind {
                        await self?.runRemoteAlias(definition, target: target, shell: shell)
                    } else {
                        await self?.runProbe(definition, probes: probes, logger: logger)
                    }
                })
            }
        }
    }

    private func runProbe(_ definition: CheckDefinition, probes: CheckProbes, logger: AgentLogger) async {
        let interval = definition.interval ?? .seconds(10)
        // Consul spreads the first run of each check over its interval, so checks defined together
        // do not all fire at once.
        let stagger = Duration.nanoseconds(Int64.random(in: 0..<max(1, interval.nioNanoseconds)))
        try? await Task.sleep(for: stagger)
        while !Task.isCancelled {
            let result = await probes.run(definition.kind, timeout: definition.effectiveTimeout)
            if Task.isCancelled { return }
            let now = clock.now()
            let change = state.withLock { state -> (HealthStatus, HealthStatus)? in
                // A runner left over from a replaced definition must not write.
                guard state.checks[definition.id]?.definition == definition, let before = state.checks[definition.id]?.record.status else { return nil }
                guard state.recordProbe(definition.id, status: result.status, output: result.output, now: now) else { return nil }
                state.refreshLocalAliases(now: now)
                return (before, state.checks[definition.id]!.record.status)
            }
            if let (before, after) = change {
                if before != after {
                    let fields: KeyValuePairs<String, String> = ["check": definition.id]
                    switch after {
                    case .passing: logger.info("agent.checks", "Check is now passing", fields)
                    case .warning: logger.warn("agent.checks", "Check is now warning", fields)
                    case .critical, .maintenance: logger.warn("agent.checks", "Check is now critical", fields)
                    }
                }
                wake.yield()
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// An alias of another node: blocking queries on that node's checks through the agent's
    /// request path (so a client agent asks its servers, and the ACL gate applies), re-judged on
    /// every answer. A failed query makes the check critical and is retried with a growing delay.
    private func runRemoteAlias(_ definition: CheckDefinition, target: AliasCheck.Target, shell: Shell) async {
        var headers: [(name: String, value: String)] = []
        if let token = shell.token(), !token.isEmpty { headers.append(("X-Consul-Token", token)) }
        var index: UInt64 = 0
        var retry = Self.aliasMinQueryGap
        while !Task.isCancelled {
            var query = ["wait": Self.aliasQueryWait]
            if index > 0 { query["index"] = String(index) }
            let answer = await shell.send(APIRequest(method: "GET", path: "/v1/health/node/\(target.node)", query: query, headers: headers, body: []))
            if Task.isCancelled { return }
            let verdict: AliasCheck.Verdict
            if answer.status == 200, let checks = AliasCheck.parseNodeChecks(answer.body, node: target.node) {
                let next = answer.headers.first { $0.name.lowercased() == "x-consul-index" }.flatMap { UInt64($0.value) } ?? 0
                // An index that went backwards (a restored snapshot) starts the watch over.
                index = next < index ? 0 : next
                var exists = true
                if !target.serviceID.isEmpty, !checks.contains(where: { $0.serviceID == target.serviceID }) {
                    let node = await shell.send(APIRequest(method: "GET", path: "/v1/catalog/node/\(target.node)", query: [:], headers: headers, body: []))
                    exists = node.status == 200 && AliasCheck.nodeHasService(node.body, serviceID: target.serviceID)
                }
                verdict = AliasCheck.evaluate(target, checks: checks) { exists }
                retry = Self.aliasMinQueryGap
            } else {
                let reason = String(decoding: answer.body.prefix(512), as: UTF8.self)
                verdict = AliasCheck.Verdict(status: .critical, output: "Failed to query the checks of node \(target.node): \(reason)")
                index = 0
                retry = min(retry * 2, Self.aliasMaxRetry)
            }
            let now = clock.now()
            let changed = state.withLock { state -> Bool in
                guard state.checks[definition.id]?.definition == definition else { return false }
                guard state.recordProbe(definition.id, status: verdict.status, output: verdict.output, now: now) else { return false }
                state.refreshLocalAliases(now: now)
                return true
            }
            if changed { wake.yield() }
            try? await Task.sleep(for: retry)
        }
    }
}
