import ConsulCore
import ConsulCrypto
import ConsulTLS
import Foundation
import NIOCore
import NIOPosix
import Raft
import Synchronization

/// A running agent: the state store and Raft (servers), the HTTP API, and the background duties
/// that keep the cluster view and the catalog's record of this node current.
final class Agent: Sendable {
    let runtime: AgentRuntime
    let logger: AgentLogger
    private let parts: StartedParts
    /// Servers: Raft's transport. Raft answers travel on the answering server's own connection, so a
    /// server learns where its peers are from outside Raft too (`updateAddresses`, fed by gossip).
    let raftTransport: RaftTCPTransport?
    private let background: Task<Void, Never>
    /// A `-dev` agent keeps its Raft data here and removes it on shutdown (Consul's dev mode is in memory).
    private let temporaryDirectory: String?
    /// One reload at a time (SIGHUP and `consul reload` may meet): each plans against the
    /// configuration the previous one left.
    private let reloading = Mutex(())

    private init(
        runtime: AgentRuntime, logger: AgentLogger, parts: StartedParts, raftTransport: RaftTCPTransport?,
        background: Task<Void, Never>, temporaryDirectory: String?
    ) {
        self.runtime = runtime
        self.logger = logger
        self.parts = parts
        self.raftTransport = raftTransport
        self.background = background
        self.temporaryDirectory = temporaryDirectory
    }

    struct StartFailure: Error, CustomStringConvertible {
        var description: String
    }

    static func start(config: AgentConfig, logger: AgentLogger) async throws(StartFailure) -> Agent {
        let address: String
        do {
            address = try AddressResolver.advertiseAddress(config)
        } catch {
            throw StartFailure(description: "\(error)")
        }

        var temporaryDirectory: String?
        let dataPath: String
        if config.dev {
            let path = devDataParent() + "consul-dev-" + UUID().uuidString.lowercased()
            temporaryDirectory = path
            dataPath = path
        } else if let configured = config.dataDir {
            dataPath = configured
        } else {
            throw StartFailure(description: "data_dir cannot be empty")
        }
        do throws(StartFailure) {
            return try await start(config: config, logger: logger, address: address, dataPath: dataPath, temporaryDirectory: temporaryDirectory)
        } catch {
            if let temporaryDirectory { try? FileManager.default.removeItem(atPath: temporaryDirectory) }
            throw error
        }
    }

    /// Where a -dev agent keeps its throwaway data: in memory (a tmpfs, `/dev/shm` on Linux) where
    /// there is one, as Consul's -dev keeps its Raft state in memory; else the temporary directory.
    private static func devDataParent() -> String {
        // Only a real memory filesystem counts, not a directory of that name on disk.
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        let shmIsTmpfs = mounts.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 2 && fields[1] == "/dev/shm" && fields[2] == "tmpfs"
        }
        if shmIsTmpfs, access("/dev/shm", W_OK) == 0 { return "/dev/shm/" }
        return NSTemporaryDirectory()
    }

    private static func start(
        config: AgentConfig, logger: AgentLogger, address: String, dataPath: String, temporaryDirectory: String?
    ) async throws(StartFailure) -> Agent {
        let nodeID: String
        let dataDir: AgentDataDir
        do {
            dataDir = try AgentDataDir(path: dataPath)
            nodeID = try dataDir.nodeID(configured: config.nodeID)
            if config.server { try dataDir.prepareRaftDirectory() }
        } catch {
            throw StartFailure(description: error.description)
        }
        let nodeName = config.nodeName ?? ProcessInfo.processInfo.hostName

        // Certificates are read now, before any socket opens: a bad file stops the start, named.
        let tls: AgentTLS
        do {
            tls = try AgentTLS.make(config, events: TLSEvents(logger: logger))
        } catch {
            throw StartFailure(description: "Failed to configure TLS: \(error.description)")
        }
        for line in tls.summary { logger.info("agent.tls", line) }
        // What every listener and dialer asks per new connection; a reload replaces its contents.
        let liveTLS = LiveTLS(tls)

        let clock = SystemMonotonicClock()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(System.coreCount, 4)))
        // Everything started so far, stopped in reverse order if a later step fails.
        var started = StartedParts(group: group)

        let lockDelays = LockDelays(clock: clock)
        let machine = ConsulStateMachine(datacenter: config.datacenter, lockDelays: lockDelays)
        // Raft's copy of the machine publishes into this same watch.
        let watch = machine.watch
        var raft: RaftNode<ConsulStateMachine>?
        var raftTransport: RaftTCPTransport?
        if config.server {
            let me = ServerID(nodeID)
            let rpcAddress = "\(address):\(config.ports.server)"
            // Raft dials its peers like agent RPC does: RPCTLS when verify_outgoing is on.
            // A reload cannot turn TLS on or off (`ConfigReload`), so the server port's TLS stays present.
            let security: any RaftChannelSecurity = tls.rpc.map { startTLS in TLSRaftChannels { liveTLS.rpc ?? startTLS } } ?? PlaintextRaftChannels()
            let transport = RaftTCPTransport(localID: me, group: group, security: security)
            raftTransport = transport
            // A lone bootstrapping server (or -dev) writes the first configuration itself; with
            // -bootstrap-expect the configuration comes from the servers gossip finds.
            let bootstrap = (config.bootstrap || config.bootstrapExpect == 1)
                ? ClusterConfiguration(servers: [ServerEntry(id: me, suffrage: .voter, address: rpcAddress)]) : nil
            var options = RaftOptions()
            options.trailingEntries = UInt64(config.raftTrailingLogs)
            if config.dev {
                options.electionTimeout = .milliseconds(50)
                options.heartbeatInterval = .milliseconds(10)
            }
            do {
                raft = try RaftNode(
                    id: me, directory: dataDir.raftDirectory, machine: machine, transport: transport, clock: clock,
                    random: SeededRandom(seed: Self.randomSeed()), options: options, bootstrap: bootstrap,
                    snapshots: Self.snapshotPolicy(config),
                    // A -dev agent's data is thrown away: no preallocated segments to make at start.
                    wal: WALOptions(preallocate: !config.dev),
                    // One of the agent's loops: peers' messages read there go straight into the node.
                    eventLoop: group.next())
                if let node = raft {
                    // Messages from peers, in arrival order per connection, into the node on its
                    // loop (no task or actor hop per message).
                    transport.onReceive { node.deliver($0) }
                }
                for note in raft?.recoveryNotes ?? [] { logger.warn("raft", "log recovery: \(note)") }
            } catch {
                await started.stop()
                throw StartFailure(description: "Failed to start Raft in \(dataDir.raftDirectory): \(error)")
            }
        }
        let directory = ServerDirectory()
        let lan: LANPool
        do throws(StartFailure) {
            lan = try await LANPool.start(
                config: config, identity: LANPool.Identity(nodeName: nodeName, nodeID: nodeID, advertiseAddress: address),
                dataPath: config.dev ? nil : dataPath, group: group, clock: clock, logger: logger, directory: directory)
            started.lan = lan
        } catch {
            await started.stop()
            throw error
        }

        let runtime = AgentRuntime(
            config: config, nodeName: nodeName, nodeID: nodeID, advertiseAddress: address, watch: watch,
            raft: raft, lan: lan, servers: directory, lockDelays: lockDelays, clock: clock, tls: liveTLS, logger: logger)
        // User events' service filters match this agent's own services (by ID, as Consul).
        lan.events.setLocalServices { [local = runtime.local] in local.snapshot.sortedServices.map { ($0.record.id, $0.record.tags) } }
        // Service and check definitions from the config files become the agent's local state.
        do throws(DefinitionError) {
            let definitions = try ConfigDefinitions.typed(config)
            try runtime.local.update { state, now throws(DefinitionError) in
                try state.replaceConfigDefinitions(services: definitions.services, checks: definitions.checks, now: now)
            }
        } catch {
            await started.stop()
            throw StartFailure(description: "Error starting agent: \(error.message)")
        }
        restorePersistedDefinitions(runtime, dataPath: dataPath, logger: logger)
        // Requests this agent does not answer itself go to the leader (servers) or a server (clients).
        let rpcPool = RPCClientPool(group: group, tlsSource: { liveTLS.rpc })
        started.rpcPool = rpcPool
        let dispatcher = APIDispatcher(agent: runtime, seed: randomSeed(), relay: RPCRelay(runtime: runtime, pool: rpcPool))
        startLocalAgent(runtime, dispatcher: dispatcher, group: group, logger: logger)
        if let raftTransport {
            // The server port: Raft, and requests other agents forward here, answered by this
            // agent's own request path.
            let rpcServer = RPCServer { request, loop in dispatcher.handle(request, on: loop) }
            do {
                started.serverPort = try await ServerPortListener.start(
                    host: config.bindAddressNeedsResolution ? "0.0.0.0" : config.bindAddr, port: config.ports.server, raft: raftTransport,
                    rpc: rpcServer, tlsSource: { liveTLS.rpc }, group: group, logger: logger)
            } catch {
                await started.stop()
                throw StartFailure(description: "Error starting the server port listener on \(address):\(config.ports.server): \(error)")
            }
        }
        if config.ports.http > 0 {
            for host in config.clientAddrs {
                do {
                    started.http.append(try await HTTPServer.start(host: host, port: config.ports.http, dispatcher: dispatcher, group: group))
                } catch {
                    await started.stop()
                    throw StartFailure(description: "Error starting HTTP listener on \(host):\(config.ports.http): \(error)")
                }
            }
        }
        if config.ports.https > 0, let startContext = tls.https {
            for host in config.clientAddrs {
                do {
                    started.http.append(try await HTTPServer.start(
                        host: host, port: config.ports.https, dispatcher: dispatcher, group: group, tlsSource: { liveTLS.https ?? startContext }))
                } catch {
                    await started.stop()
                    throw StartFailure(description: "Error starting HTTPS listener on \(host):\(config.ports.https): \(error)")
                }
            }
        }
        if config.ports.dns > 0 {
            do {
                let serverRelay = Self.dnsServerRelay(runtime: runtime, dispatcher: dispatcher, group: group)
                started.dns = try await DNSServer.start(
                    configuration: DNSServerConfiguration(config: config), group: group, catalog: { watch.current }, seed: randomSeed(),
                    serverRelay: serverRelay)
            } catch {
                await started.stop()
                throw StartFailure(description: "Error starting DNS server: \(error)")
            }
        }

        if !config.startJoin.isEmpty {
            do throws(LANPool.JoinFailure) {
                let joined = try await lan.join(config.startJoin, defaultPort: config.ports.serfLAN)
                logger.info("agent", "Join cluster completed. Synced with \(joined) initial agents", ["cluster": "LAN"])
            } catch {
                await started.stop()
                throw StartFailure(description: "Error starting agent: Failed to join: \(error)")
            }
        }

        await raft?.start()
        let duties = LeaderDuties(runtime: runtime, logger: logger, transport: raftTransport, lan: lan) { server in
            await Self.raftPeers(of: server, pool: rpcPool, group: group)
        }
        let retryJoin = RetryJoin(lan: lan, config: config, logger: logger)
        let coordinates = CoordinateSync(runtime: runtime, logger: logger) { request in
            do {
                return try await dispatcher.handle(request, on: group.next()).get()
            } catch {
                return APIError.internalError("\(error)").response
            }
        }
        let coordinateSeed = randomSeed()
        let background = Task {
            await withTaskGroup(of: Void.self) { tasks in
                tasks.addTask { await duties.run() }
                tasks.addTask { await lan.run() }
                tasks.addTask { await retryJoin.run() }
                tasks.addTask { await coordinates.run(seed: coordinateSeed) }
            }
        }
        return Agent(runtime: runtime, logger: logger, parts: started, raftTransport: raftTransport, background: background, temporaryDirectory: temporaryDirectory)
    }

    /// Services and checks registered over the API in an earlier run (`services/`, `checks/` in the
    /// data dir), as Consul restores them: after the config files, which win on a clash.
    private static func restorePersistedDefinitions(_ runtime: AgentRuntime, dataPath: String, logger: AgentLogger) {
        let store = DefinitionStore(dataDir: dataPath, logger: logger)
        let persisted = store.load()
        runtime.local.update { state, now in
            for (id, service) in persisted.services.sorted(by: { $0.key < $1.key }) where state.services[id] == nil {
                do throws(DefinitionError) {
                    try state.addService(service, source: .api, now: now)
                    logger.info("agent", "Restored service definition", ["service": id])
                } catch {
                    logger.warn("agent", "Failed to restore service definition", ["service": id, "error": error.message])
                }
            }
            for (id, check) in persisted.checks.sorted(by: { $0.key < $1.key }) where state.checks[id] == nil {
                do throws(DefinitionError) {
                    try state.addCheck(check, source: .api, now: now)
                } catch {
                    logger.warn("agent", "Failed to restore check definition", ["check": id, "error": error.message])
                }
            }
        }
        runtime.local.attachStore(store)
    }

    /// Starts the check runners and anti-entropy. Catalog writes go through the agent's own
    /// request path, like any client's `/v1/catalog/register`.
    private static func startLocalAgent(_ runtime: AgentRuntime, dispatcher: APIDispatcher, group: MultiThreadedEventLoopGroup, logger: AgentLogger) {
        let (address, nodeID, nodeName) = (runtime.advertiseAddress, runtime.nodeID, runtime.nodeName)
        let identity: @Sendable () -> (node: LocalNodeInfo, token: String?) = { [weak runtime] in
            let (meta, token) = runtime?.config { ($0.nodeMeta, $0.acl.agentToken ?? $0.acl.defaultToken) } ?? ([:], nil)
            let node = LocalNodeInfo(
                id: nodeID, name: nodeName, address: address,
                taggedAddresses: ["lan": address, "lan_ipv4": address, "wan": address, "wan_ipv4": address],
                meta: meta.merging(["consul-network-segment": ""]) { given, _ in given })
            return (node, token)
        }
        var sync = CatalogSync(
            local: runtime.local, identity: identity, clock: runtime.clock, logger: logger,
            send: { request in
                do {
                    return try await dispatcher.handle(request, on: group.next()).get()
                } catch {
                    return APIError.internalError("\(error)").response
                }
            },
            clusterSize: { [weak lan = runtime.lan] in lan?.members.count ?? 1 })
        sync.checkUpdateInterval = runtime.config.checkUpdateInterval
        // Read per probe connection: a reload may have re-read the agent's CA.
        let agentTLSForChecks = runtime.config.enableAgentTLSForChecks
        let checkTLS = CheckTLS { [weak liveTLS = runtime.liveTLS] in
            agentTLSForChecks ? liveTLS?.rpc?.material.authorities ?? [] : []
        }
        let probes = CheckProbes(group: group, limiter: ProbeLimiter(), tls: checkTLS)
        runtime.local.start(probes: probes, sync: sync, logger: logger)
    }

    /// The listeners and the event loops, for orderly shutdown.
    struct StartedParts: Sendable {
        let group: MultiThreadedEventLoopGroup
        var http: [HTTPServer] = []
        var dns: DNSServer?
        var serverPort: ServerPortListener?
        var lan: LANPool?
        var rpcPool: RPCClientPool?

        init(group: MultiThreadedEventLoopGroup) {
            self.group = group
        }

        func stop() async {
            await rpcPool?.shutdown()
            await lan?.stop()
            for server in http { await server.close() }
            await dns?.stop()
            await serverPort?.close()
            try? await group.shutdownGracefully()
        }
    }

    /// Stops the agent. `leave`: first a graceful leave of the LAN pool (other agents record this
    /// one as left rather than failed); a server that leads hands its Raft seat back first.
    func shutdown(leave: Bool = false) async {
        if leave {
            await leaveRaft()
            await runtime.lan?.leave()
        }
        background.cancel()
        runtime.local.stop()
        await runtime.raft?.stop()
        await raftTransport?.shutdown()
        await parts.stop()
        if let temporaryDirectory { try? FileManager.default.removeItem(atPath: temporaryDirectory) }
    }

    /// Consul's server leave: a leader with other voters removes itself from the configuration
    /// so the remaining servers keep a quorum of the right size; a follower's removal is left to
    /// the leader, which sees it leave the LAN pool.
    private func leaveRaft() async {
        guard let raft = runtime.raft else { return }
        let status = await raft.status()
        guard status.role == "leader", status.configuration.servers.filter({ $0.suffrage == .voter }).count > 1 else { return }
        do {
            try await raft.changeMembership(.remove(ServerID(runtime.nodeID)))
            logger.info("agent.server", "removed ourself from the Raft configuration before leaving")
        } catch {
            logger.warn("agent.server", "failed to remove ourself from the Raft configuration", ["error": "\(error)"])
        }
    }

    /// A client agent's DNS for names in the Consul domain: the query goes through the agent's own
    /// request path to a server (`DNSRelayEndpoint`), and its answer comes back as it is.
    /// Where DNS answers for the Consul domain come from, as Consul's `dns_config` says. A client
    /// keeps no catalog and always asks a server (stale by default: any server answers). A server
    /// answers from its own catalog, unless stale answers are off or it has not heard from the
    /// leader within `max_stale`: then the leader answers.
    private static func dnsServerRelay(runtime: AgentRuntime, dispatcher: APIDispatcher, group: any EventLoopGroup) -> DNSServerRelay {
        // Read per query, not kept: a reload may change them.
        @Sendable func staleness() -> (allowStale: Bool, maxStale: Duration) {
            runtime.config { ($0.dns.allowStale, $0.dns.maxStale) }
        }
        @Sendable func ask(_ packet: [UInt8], _ transport: DNSTransport, stale: Bool) -> EventLoopFuture<APIResponse> {
            var query = ["transport": transport == .udp ? "udp" : "tcp"]
            if stale { query["stale"] = "" }
            var request = APIRequest(method: "POST", path: DNSRelayEndpoint.path, query: query, headers: [], body: packet)
            request.fromAgentItself = true
            return dispatcher.handle(request, on: group.next())
        }
        @Sendable func answer(_ response: APIResponse) -> [UInt8]? {
            response.status == 200 && response.contentType == "application/dns-message" ? response.body : nil
        }
        guard runtime.raft != nil else {
            return DNSServerRelay(isNeeded: { true }) { packet, transport in
                let dns = staleness()
                let maxStaleMilliseconds = dns.maxStale.totalNanoseconds / 1_000_000
                guard dns.allowStale else { return ask(packet, transport, stale: false).map(answer) }
                // As Consul's DNS: a stale answer from a server that has not heard from its leader
                // within max_stale is asked again of the leader.
                return ask(packet, transport, stale: true).flatMap { response in
                    let lastContact = response.headers.first { $0.name == "X-Consul-LastContact" }.flatMap { Int64($0.value) } ?? 0
                    guard response.status == 200, lastContact > maxStaleMilliseconds else { return group.next().makeSucceededFuture(answer(response)) }
                    return ask(packet, transport, stale: false).map(answer)
                }
            }
        }
        let datacenter = runtime.datacenter
        return DNSServerRelay(
            isNeeded: {
                let leader = runtime.leaderContact
                let dns = staleness()
                // The forwarder's own rule decides, as for an HTTP read of this consistency.
                let state = ForwardingState(datacenter: datacenter, isServer: true, isLeader: leader.isLeader, knownLeader: leader.knownLeader)
                let decision = try? Forwarder.decide(datacenter: datacenter, consistency: dns.allowStale ? .stale : .default, isWrite: false, state: state)
                guard decision == .local else { return true }
                // A stale answer from a server that has not heard from a leader within max_stale
                // (or never has) is asked of the leader instead, as Consul's DNS does.
                guard !leader.isLeader else { return false }
                guard let sinceContact = leader.sinceContact else { return true }
                return sinceContact > dns.maxStale
            },
            send: { packet, transport in ask(packet, transport, stale: false).map(answer) })
    }

    /// `/v1/status/peers` of another server, over agent RPC; nil if it does not answer.
    private static func raftPeers(of server: KnownServer, pool: RPCClientPool, group: any EventLoopGroup) async -> [String]? {
        let request = APIRequest(method: "GET", path: "/v1/status/peers", query: [:], headers: [], body: [])
        // Hops 0: a question addressed to that server itself, not a client's request moving on.
        guard let response = try? await pool.call(RPCRequestFrame(request, hops: 0), to: server.rpcAddress, timeout: .seconds(2), on: group.next()).get(),
              response.status == 200,
              let peers = try? JSONConfigParser.parseValue(bytes: response.body, file: "status/peers answer").arrayValue
        else { return nil }
        return peers.compactMap { $0.stringValue }
    }

    static func randomSeed() -> UInt64 {
        SecureRandom.bytes(8).reduce(0) { $0 << 8 | UInt64($1) }
    }
}

extension Agent {
    /// Why a configuration that loaded could still not be applied (nothing was changed).
    struct ReloadFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// When the server's Raft node snapshots the state store (Consul's three settings).
    static func snapshotPolicy(_ config: AgentConfig) -> SnapshotPolicy {
        SnapshotPolicy(threshold: UInt64(config.raftSnapshotThreshold), interval: config.raftSnapshotInterval)
    }

    /// Consul's reload of a configuration that loaded and validated: the reloadable settings take
    /// effect now, every other setting keeps its running value (named in a warning), the service
    /// and check definitions of the files replace those of the last load, and where TLS is on its
    /// certificate files are read again (new connections use them). If the certificates or the
    /// definitions cannot be used, nothing changes and the failure is thrown.
    /// Reads files: call it off any event loop.
    @discardableResult
    func reload(to loaded: AgentConfig) throws(ReloadFailure) -> ConfigReload {
        try reloading.withLock { _ throws(ReloadFailure) -> ConfigReload in
            let plan = ConfigReload.plan(running: runtime.config, loaded: loaded)
            // The steps that can fail come first, so a failure leaves everything as it was.
            var rereadTLS: AgentTLS?
            if let liveTLS = runtime.liveTLS, liveTLS.rpc != nil || liveTLS.https != nil {
                do throws(TLSMaterialError) {
                    rereadTLS = try AgentTLS.make(plan.next, events: liveTLS.current.events)
                } catch {
                    throw ReloadFailure(description: "Failed to reload TLS configuration: \(error.description)")
                }
            }
            var dns: DNSServer.Reconfiguration?
            if let server = parts.dns, plan.changed.contains(.dnsConfig) || plan.changed.contains(.recursors) {
                do {
                    dns = try server.prepare(settings: DNSResolverSettings(config: plan.next), recursors: plan.next.recursors)
                } catch {
                    throw ReloadFailure(description: "Failed to reload DNS configuration: \(error)")
                }
            }
            do throws(DefinitionError) {
                let definitions = try ConfigDefinitions.typed(plan.next)
                try runtime.local.update { state, now throws(DefinitionError) in
                    try state.replaceConfigDefinitions(services: definitions.services, checks: definitions.checks, now: now)
                }
            } catch {
                if let dns { parts.dns?.discard(dns) }
                throw ReloadFailure(description: error.message)
            }
            runtime.adopt(plan)
            if let dns { parts.dns?.apply(dns) }
            if let rereadTLS {
                runtime.liveTLS?.replace(rereadTLS)
                logger.info("agent.tls", "Reloaded TLS certificates; new connections use them")
            }
            if let raft = runtime.raft, plan.changed.contains(where: ConfigReload.Setting.raftSnapshots.contains) {
                let policy = Self.snapshotPolicy(plan.next)
                let trailing = UInt64(plan.next.raftTrailingLogs)
                raft.eventLoop.execute { raft.assumeIsolated { $0.reconfigureSnapshots(policy, trailingEntries: trailing) } }
            }
            if plan.changed.contains(.logLevel), let level = AgentLogger.Level(plan.next.logLevel) {
                logger.setLevel(level)
            }
            if plan.changed.contains(.nodeMeta) || plan.changed.contains(.aclTokens) {
                // Anti-entropy reads both afresh; wake it so the catalog follows now.
                runtime.local.poke()
            }
            if !plan.notApplied.isEmpty {
                logger.warn(
                    "agent", "Configuration changes not applied: these settings cannot change while the agent runs; restart it to apply them",
                    ["settings": plan.notApplied.joined(separator: ",")])
            }
            let changed = plan.changed.map(\.rawValue).filter { $0 != "services" && $0 != "checks" }
            if !changed.isEmpty {
                logger.info("agent", "Reloaded configuration", ["applied": changed.joined(separator: ",")])
            }
            return plan
        }
    }
}
