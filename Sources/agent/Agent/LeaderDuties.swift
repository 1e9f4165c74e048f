import ConsulCore
import Raft

/// Keeps the agent's cached cluster view current and, while this server leads, makes sure the
/// catalog holds this node: its address, the `serfHealth` check and (servers) the `consul` service.
/// Reconciling other gossip members arrives with gossip.
struct LeaderDuties: Sendable {
    /// How often Raft's status is sampled into the cached view.
    static let refreshInterval: Duration = .milliseconds(20)

    let runtime: AgentRuntime
    let logger: AgentLogger
    /// Told about configuration changes, so it knows where every server is.
    let transport: RaftTCPTransport?

    func run() async {
        guard let raft = runtime.raft else { return }
        var wasLeader = false
        var reconciledTerm: Term?
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
            if isLeader, reconciledTerm != status.term {
                do throws(APIError) {
                    _ = try await runtime.apply(.register(selfRegistration()))
                    reconciledTerm = status.term
                    logger.info("agent.leader", "member joined, marking health alive", ["member": runtime.nodeName])
                } catch {
                    logger.warn("agent.leader", "failed to register this node in the catalog", ["error": error.message])
                }
            }
            if isLeader {
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
