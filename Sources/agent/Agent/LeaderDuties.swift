import ConsulCore
import Raft

/// A server's background duties: keeps the agent's cached cluster view current; until a cluster
/// exists, bootstraps it when `-bootstrap-expect` servers are seen; and while this server leads,
/// keeps the catalog holding this node (address, `serfHealth`, the `consul` service) and every
/// other gossip member, and the Raft configuration holding the servers (`MemberReconciler`).
struct LeaderDuties: Sendable {
    /// How often Raft's status is sampled into the cached view.
    static let refreshInterval: Duration = .milliseconds(20)
    /// Reconciliation also runs this often without a membership change (autopilot's clock).
    static let reconcileInterval: Duration = .seconds(1)

    let runtime: AgentRuntime
    let logger: AgentLogger
    /// Told about configuration changes, so it knows where every server is.
    let transport: RaftTCPTransport?
    let lan: LANPool?
    /// Asks another server for its Raft peers (`/v1/status/peers` over agent RPC); nil when it
    /// cannot be asked. `-bootstrap-expect` never bootstraps while any server already has peers.
    let peersOf: @Sendable (KnownServer) async -> [String]?

    func run() async {
        guard let raft = runtime.raft else { return }
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await refreshView(raft) }
            tasks.addTask { await performDuties(raft) }
        }
    }

    /// Samples Raft's status into the cached view, on its own: a duty waiting for a Raft write
    /// (as long as the cluster has no quorum, until leadership is lost) must not leave the view
    /// (leader, last contact, `consul info`) showing what was true before it started.
    private func refreshView(_ raft: RaftNode<ConsulStateMachine>) async {
        var wasLeader = false
        var knownLeader: ServerID?
        while !Task.isCancelled {
            let status = await raft.status()
            var view = runtime.clusterView
            view.raftStats = await raft.stats()
            let isLeader = status.role == "leader"
            view.isLeader = isLeader
            view.leaderID = status.leader
            view.term = status.term
            view.commitIndex = status.commitIndex
            view.appliedIndex = status.appliedIndex
            view.lastIndex = status.lastIndex
            if view.configuration != status.configuration { transport?.configurationChanged(status.configuration) }
            view.configuration = status.configuration
            if status.leader != nil { view.lastContact = runtime.clock.now() }
            runtime.updateCluster(view)

            if status.leader != knownLeader {
                knownLeader = status.leader
                if let leader = status.leader {
                    logger.info("agent.server.raft", "entering \(isLeader ? "leader" : "follower") state", ["leader-id": leader.rawValue, "term": String(status.term)])
                }
            }
            if isLeader && !wasLeader { logger.info("agent.leader", "cluster leadership acquired") }
            if !isLeader && wasLeader { logger.info("agent.leader", "cluster leadership lost") }
            wasLeader = isLeader
            try? await Task.sleep(for: Self.refreshInterval)
        }
    }

    private func performDuties(_ raft: RaftNode<ConsulStateMachine>) async {
        var reconciledTerm: Term?
        var reconciler = MemberReconciler()
        var reconciledGeneration: UInt64 = 0
        var lastReconcile: Timestamp?
        var bootstrapGeneration: UInt64 = 0
        var lastBootstrapAttempt: Timestamp?
        var addressesGeneration: UInt64 = 0
        var lastCoordinateFlush: Timestamp?
        while !Task.isCancelled {
            let status = await raft.status()
            let isLeader = status.role == "leader"
            // A restored snapshot (or a catalog deregister) may have dropped this server's own
            // node: register it again, as Consul's leader re-reconciles itself.
            if isLeader, reconciledTerm == status.term, runtime.watch.current.node(named: runtime.nodeName) == nil { reconciledTerm = nil }
            if isLeader, reconciledTerm != status.term {
                do throws(APIError) {
                    _ = try await runtime.apply(.register(selfRegistration()))
                    reconciledTerm = status.term
                    logger.info("agent.leader", "member joined, marking health alive", ["member": runtime.nodeName])
                } catch {
                    logger.warn("agent.leader", "failed to register this node in the catalog", ["error": error.message])
                }
            }
            // Raft reaches servers at the addresses gossip reports too, as Consul's transport
            // does: a server added by the leader must answer it before it has any configuration.
            if let lan, lan.generation != addressesGeneration {
                addressesGeneration = lan.generation
                transport?.updateAddresses(Dictionary(runtime.servers.current.map { (ServerID($0.id), $0.rpcAddress) }) { first, _ in first })
            }
            // Tried when membership changes, and again every second (a server that could not be
            // asked for its peers may answer now).
            if let lan, runtime.config.bootstrapExpect > 1, status.lastIndex == 0, status.snapshotIndex == 0,
               lan.generation != bootstrapGeneration
                || lastBootstrapAttempt.map({ runtime.clock.now().duration(since: $0) >= Self.reconcileInterval }) ?? false {
                bootstrapGeneration = lan.generation
                lastBootstrapAttempt = runtime.clock.now()
                await bootstrapIfExpected(raft, lan: lan)
            }
            if isLeader, let lan, reconciledTerm == status.term {
                let now = runtime.clock.now()
                if lan.generation != reconciledGeneration || lastReconcile.map({ now.duration(since: $0) >= Self.reconcileInterval }) ?? true {
                    reconciledGeneration = lan.generation
                    lastReconcile = now
                    let actions = reconciler.plan(MemberReconciler.Input(
                        members: lan.members, store: runtime.watch.current, configuration: status.configuration,
                        selfName: runtime.nodeName, selfID: ServerID(runtime.nodeID), datacenter: runtime.datacenter,
                        autopilot: runtime.autopilotSettings, now: now))
                    for action in actions { await carryOut(action, raft: raft) }
                    // Keeps autopilot's StableSince current between operator API calls.
                    _ = try? await AutopilotHealth.gather(runtime)
                }
            }
            if isLeader {
                // Queued coordinate updates go to Raft in batches, as Consul's leader writes them.
                let now = runtime.clock.now()
                let period = min(CoordinateBatcher.defaultPeriod, runtime.config.syncCoordinateIntervalMin)
                if lastCoordinateFlush.map({ now.duration(since: $0) >= period }) ?? true {
                    lastCoordinateFlush = now
                    for (number, batch) in runtime.coordinateUpdates.takeBatches().enumerated() where number < CoordinateBatcher.maxBatches {
                        do throws(APIError) {
                            _ = try await runtime.apply(.updateCoordinates(batch))
                        } catch {
                            logger.warn("agent.server.coordinate", "failed to write coordinate updates", ["error": error.message])
                        }
                    }
                }
                for id in runtime.sessionTimers.expired(among: runtime.watch.current.allSessions) {
                    do throws(APIError) {
                        _ = try await runtime.apply(.destroySession(id: id))
                        runtime.sessionTimers.forget(id)
                        logger.info("agent.server.session", "session TTL expired, destroying", ["session": id])
                    } catch {
                        logger.warn("agent.server.session", "failed to destroy expired session", ["session": id, "error": error.message])
                    }
                }
            }
            try? await Task.sleep(for: Self.refreshInterval)
        }
    }

    private func bootstrapIfExpected(_ raft: RaftNode<ConsulStateMachine>, lan: LANPool) async {
        let expect = runtime.config.bootstrapExpect
        switch ExpectBootstrap.decide(members: lan.members, expect: expect, datacenter: runtime.datacenter) {
        case .wait(let seen):
            logger.info("agent.server", "waiting for servers to bootstrap the cluster", ["expect": String(expect), "seen": String(seen)])
        case .refuse(let reason):
            logger.error("agent.server", reason)
        case .bootstrap(let configuration):
            // Consul's last check: a server that already has peers means a cluster exists, and
            // this server must wait to be added to it rather than start another one.
            for server in runtime.servers.current where server.id != runtime.nodeID {
                guard let peers = await peersOf(server) else {
                    logger.info("agent.server", "cannot ask a server for its Raft peers yet; will retry bootstrap", ["server": server.name])
                    return
                }
                if !peers.isEmpty {
                    logger.info("agent.server", "Existing Raft peers reported by server, disabling bootstrap mode", ["server": server.name])
                    return
                }
            }
            let names = configuration.servers.map { "\($0.id.rawValue) (\($0.address))" }.joined(separator: ", ")
            if await raft.bootstrap(configuration) {
                logger.info("agent.server", "found expected number of peers, attempting bootstrap", ["peers": names])
            } else {
                logger.info("agent.server", "not bootstrapping: this server already has Raft state")
            }
        }
    }

    private func carryOut(_ action: MemberReconciler.Action, raft: RaftNode<ConsulStateMachine>) async {
        do throws(APIError) {
            switch action {
            case .register(let registration):
                let passing = registration.checks.first?.status == .passing
                _ = try await runtime.apply(.register(registration))
                logger.info("agent.leader", passing ? "member joined, marking health alive" : "member failed, marking health critical",
                            ["member": registration.node.name])
            case .deregister(let node):
                _ = try await runtime.apply(.deregister(node: node, serviceID: nil, checkID: nil))
                logger.info("agent.leader", "deregistering member", ["member": node])
            case .addNonVoter(let id, let address):
                try await changeMembership(raft, .addNonVoter(id, address: address))
                logger.info("agent.leader", "added server to Raft as a non-voter; autopilot promotes it once stable", ["id": id.rawValue, "address": address])
            case .promote(let id):
                try await changeMembership(raft, .promote(id))
                logger.info("agent.autopilot", "Promoting server", ["id": id.rawValue])
            case .removeServer(let id):
                try await changeMembership(raft, .remove(id))
                logger.info("agent.leader", "removed server from Raft", ["id": id.rawValue])
            }
        } catch {
            logger.warn("agent.leader", "reconcile step failed", ["error": error.message])
        }
    }

    private func changeMembership(_ raft: RaftNode<ConsulStateMachine>, _ change: MembershipChange) async throws(APIError) {
        do {
            try await raft.changeMembership(change)
        } catch {
            throw APIError.internalError("raft membership change \(change) failed: \(error)")
        }
    }

    func selfRegistration() -> StateCommand.Registration {
        let config = runtime.config
        let zero = RaftIndexes(createIndex: 0, modifyIndex: 0)
        let node = CatalogNode(
            id: runtime.nodeID, name: runtime.nodeName, address: runtime.advertiseAddress, datacenter: config.datacenter,
            taggedAddresses: ["lan": runtime.advertiseAddress, "lan_ipv4": runtime.advertiseAddress, "wan": runtime.advertiseAddress, "wan_ipv4": runtime.advertiseAddress],
            meta: config.nodeMeta.merging(["consul-network-segment": ""]) { given, _ in given }, indexes: zero)
        let service = config.server
            ? CatalogService(
                node: runtime.nodeName, id: "consul", name: "consul", tags: [], address: "", port: config.ports.server, meta: [:],
                weights: ServiceWeights(), enableTagOverride: false, indexes: zero)
            : nil
        let check = HealthCheck(
            node: runtime.nodeName, id: "serfHealth", name: "Serf Health Status", status: .passing, notes: "",
            output: "Agent alive and reachable", serviceID: "", serviceName: "", serviceTags: [], type: "", interval: "", timeout: "",
            indexes: zero)
        return StateCommand.Registration(node: node, service: service, checks: [check])
    }
}
