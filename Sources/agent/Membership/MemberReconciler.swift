import ConsulCore
import Gossip
import Raft

/// The leader's duty of keeping the catalog and the Raft configuration in step with LAN gossip
/// (Consul's leader reconcile plus autopilot). Pure: the caller gathers what gossip, the state
/// store and Raft say, and carries out the returned actions through Raft.
///
/// - alive member: its node is registered with the `serfHealth` check passing (servers also with
///   the `consul` service); a server not yet in Raft joins as a non-voter, and autopilot promotes
///   it once it has stayed alive for `server_stabilization_time`.
/// - failed member: `serfHealth` turns critical ("Agent not live or unreachable"); a failed server
///   leaves Raft only when a replacement server joins, `cleanup_dead_servers` is on and fewer than
///   half the voters are gone.
/// - left or reaped member: the node is deregistered; a server leaves Raft.
struct MemberReconciler {
    enum Action: Equatable, Sendable {
        case register(StateCommand.Registration)
        case deregister(node: String)
        case addNonVoter(ServerID, address: String)
        case promote(ServerID)
        case removeServer(ServerID)
    }

    struct Input {
        var members: [SerfMemberInfo]
        var store: StateStore
        var configuration: ClusterConfiguration
        /// This server; it keeps its own registration (with its metadata) and handles its own leave.
        var selfName: String
        var selfID: ServerID
        var datacenter: String
        var autopilot: AgentConfig.AutopilotConfig
        var now: Timestamp
    }

    /// Since when each non-voter has been seen alive (autopilot's stabilization clock).
    private(set) var aliveSince: [ServerID: Timestamp] = [:]

    static let serfCheckID = "serfHealth"

    mutating func plan(_ input: Input) -> [Action] {
        var actions: [Action] = []
        let members = input.members.filter { $0.tags["dc"] == nil || $0.tags["dc"] == input.datacenter }
        var seen = Set<String>()
        for member in members {
            seen.insert(member.name.lowercased())
            guard member.name != input.selfName else { continue }
            switch member.status {
            case .alive:
                if let registration = Self.registration(member, status: .passing, store: input.store) { actions.append(.register(registration)) }
            case .failed:
                if let registration = Self.registration(member, status: .critical, store: input.store) { actions.append(.register(registration)) }
            case .left:
                if input.store.node(named: member.name) != nil { actions.append(.deregister(node: member.name)) }
            case .leaving, .none:
                break
            }
        }
        // Nodes gossip once managed (they carry serfHealth) but no longer knows: reaped.
        for check in input.store.allChecks where check.id == Self.serfCheckID && check.serviceID.isEmpty {
            guard check.node != input.selfName, !seen.contains(check.node.lowercased()) else { continue }
            actions.append(.deregister(node: check.node))
        }
        actions += planRaft(input, members: members)
        return actions
    }

    private mutating func planRaft(_ input: Input, members: [SerfMemberInfo]) -> [Action] {
        var actions: [Action] = []
        var servers: [ServerID: (info: KnownServer, status: SerfMemberStatus)] = [:]
        for member in members {
            guard let server = LANPool.server(member) else { continue }
            servers[ServerID(server.id)] = (server, member.status)
        }
        let inConfiguration = Dictionary(input.configuration.servers.map { ($0.id, $0) }) { first, _ in first }

        for (id, server) in servers.sorted(by: { $0.key < $1.key }) where id != input.selfID {
            switch server.status {
            case .alive where inConfiguration[id] == nil:
                actions.append(.addNonVoter(id, address: server.info.rpcAddress))
            case .left where inConfiguration[id] != nil:
                actions.append(.removeServer(id))
            default:
                break
            }
        }

        // Autopilot: promote non-voters that stayed alive long enough.
        var stillWaiting: [ServerID: Timestamp] = [:]
        for entry in input.configuration.servers where entry.suffrage == .nonvoter {
            guard servers[entry.id]?.status == .alive else { continue }
            let since = aliveSince[entry.id] ?? input.now
            stillWaiting[entry.id] = since
            if input.now.duration(since: since) >= input.autopilot.serverStabilizationTime {
                actions.append(.promote(entry.id))
            }
        }
        aliveSince = stillWaiting

        // Autopilot: a failed server keeps its seat (it counts for quorum and may come back) until
        // a replacement joins; then dead servers leave Raft while that is safe (a majority of
        // voters stays, and at least `min_quorum`).
        let replacementJoining = actions.contains { if case .addNonVoter = $0 { true } else { false } } || !stillWaiting.isEmpty
        if input.autopilot.cleanupDeadServers, replacementJoining {
            let voters = input.configuration.servers.filter { $0.suffrage == .voter }
            // Only members gossip reports failed: one merely absent may be a view still syncing.
            let dead = voters.filter { $0.id != input.selfID && servers[$0.id]?.status == .failed }
            if !dead.isEmpty, dead.count * 2 < voters.count, voters.count - dead.count >= max(input.autopilot.minQuorum, 1) {
                for entry in dead { actions.append(.removeServer(entry.id)) }
            }
        }
        return actions
    }

    /// The registration that brings `member` to `status`, or nil when the catalog already agrees.
    static func registration(_ member: SerfMemberInfo, status: HealthStatus, store: StateStore) -> StateCommand.Registration? {
        let address = member.address.host
        // A server's `consul` service carries its server port (the `port` tag).
        let serverPort = LANPool.server(member).flatMap { _ in member.tags["port"].flatMap(Int.init) }
        let existing = store.node(named: member.name)
        let check = store.checks(onNode: member.name).first { $0.id == serfCheckID && $0.serviceID.isEmpty }
        let serviceCurrent = serverPort == nil || store.service(onNode: member.name, id: "consul")?.port == serverPort
        if let existing, existing.address == address, check?.status == status, serviceCurrent {
            return nil
        }
        // A failed member keeps its services; only the health check changes.
        if status == .critical, existing == nil { return nil }
        let zero = RaftIndexes(createIndex: 0, modifyIndex: 0)
        let node = CatalogNode(
            id: member.tags["id"] ?? existing?.id ?? "", name: member.name, address: address,
            datacenter: member.tags["dc"] ?? existing?.datacenter ?? "",
            taggedAddresses: existing?.taggedAddresses.isEmpty == false
                ? existing!.taggedAddresses : ["lan": address, "lan_ipv4": address, "wan": address, "wan_ipv4": address],
            meta: existing?.meta ?? ["consul-network-segment": ""], indexes: zero)
        var service: CatalogService?
        if let port = serverPort, status == .passing, !serviceCurrent {
            service = CatalogService(
                node: member.name, id: "consul", name: "consul", tags: [], address: "", port: port, meta: [:],
                weights: ServiceWeights(), enableTagOverride: false, indexes: zero)
        }
        let health = HealthCheck(
            node: member.name, id: serfCheckID, name: "Serf Health Status", status: status, notes: "",
            output: status == .passing ? "Agent alive and reachable" : "Agent not live or unreachable", serviceID: "",
            serviceName: "", serviceTags: [], type: "", interval: "", timeout: "", indexes: zero)
        return StateCommand.Registration(node: node, service: service, checks: [health])
    }
}
