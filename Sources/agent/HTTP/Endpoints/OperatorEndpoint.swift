import ConsulCore
import Foundation
import Raft

/// `/v1/operator/raft/*` and `/v1/operator/autopilot/*`. Everything here is the leader's to answer
/// (the forwarder sends it there) except a `?stale` read of the Raft configuration.
struct OperatorEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        let agent = self.agent
        switch tail {
        case "keyring": return try KeyringEndpoint(agent: agent).route(request)
        case "raft/configuration":
            try APIRouter.requireMethod(request, "GET")
            return .read(.operator, tables: []) { _ throws(APIError) in Self.raftConfiguration(agent) }
        case "raft/peer":
            try APIRouter.requireMethod(request, "DELETE")
            let id = request.query["id"] ?? "", address = request.query["address"] ?? ""
            guard id.isEmpty != address.isEmpty else { throw .badRequest("Must specify either ?id with the server's ID or ?address with IP:port") }
            return .write(.operator) { () async throws(APIError) -> APIResponse in
                let configuration = agent.clusterView.configuration
                guard let server = configuration.servers.first(where: { id.isEmpty ? $0.address == address : $0.id.rawValue == id }) else {
                    throw .internalError(id.isEmpty ? "address \"\(address)\" was not found in the Raft configuration" : "id \"\(id)\" was not found in the Raft configuration")
                }
                try await Self.membership(agent, .remove(server.id))
                return APIResponse()
            }
        case "raft/transfer-leader":
            try APIRouter.requireMethod(request, "POST")
            let target = request.query["id"].flatMap { $0.isEmpty ? nil : ServerID($0) }
            return .write(.operator) { () async throws(APIError) -> APIResponse in
                guard let raft = agent.raft else { throw .noServers }
                if let target, !agent.clusterView.configuration.contains(target) {
                    throw .badRequest("cannot find server with id \(target.rawValue) in the Raft configuration")
                }
                do {
                    try await raft.transferLeadership(to: target)
                } catch {
                    throw .internalError("Failed to transfer leadership: \(error)")
                }
                return .json { writer in writer.object { $0.field("Success") { $0.bool(true) } } }
            }
        case "autopilot/configuration":
            try APIRouter.requireMethod(request, "GET", "PUT")
            if request.method == "PUT" {
                throw .notImplemented("changing the autopilot configuration at runtime is not built yet; set it in the agent configuration (autopilot { ... }) on every server")
            }
            return .read(.operator, tables: []) { _ throws(APIError) in Self.autopilotConfiguration(agent.config.autopilot) }
        case "autopilot/health":
            try APIRouter.requireMethod(request, "GET")
            return .leaderOperation(.operator, access: .read) { () async throws(APIError) -> APIResponse in try await Self.autopilotHealth(agent) }
        default:
            throw .notImplemented("/v1/operator/\(tail) is not implemented in this build yet")
        }
    }

    private static func membership(_ agent: AgentRuntime, _ change: MembershipChange) async throws(APIError) {
        guard let raft = agent.raft else { throw .noServers }
        do {
            try await raft.changeMembership(change)
        } catch {
            throw .internalError("\(error)")
        }
    }

    /// Consul names each server by the LAN member whose `id` tag is its Raft ID.
    private static func serverNames(_ agent: AgentRuntime) -> [String: String] {
        var names = [agent.nodeID: agent.nodeName]
        for member in agent.lan?.members ?? [] where member.tags["role"] == "consul" {
            if let id = member.tags["id"] { names[id] = member.name }
        }
        return names
    }

    private static func raftConfiguration(_ agent: AgentRuntime) -> APIResponse {
        let view = agent.clusterView
        let names = serverNames(agent)
        return .json { writer in
            writer.object { w in
                w.field("Servers") { s in
                    s.array { a in
                        for server in view.configuration.servers {
                            a.object { o in
                                o.field("ID") { $0.string(server.id.rawValue) }
                                o.field("Node") { $0.string(names[server.id.rawValue] ?? "(unknown)") }
                                o.field("Address") { $0.string(agent.rpcAddress(of: server.id)) }
                                o.field("Leader") { $0.bool(server.id == view.leaderID) }
                                o.field("ProtocolVersion") { $0.string("3") }
                                o.field("Voter") { $0.bool(server.suffrage == .voter) }
                                o.field("LastIndex") { $0.int(view.lastIndex) }
                            }
                        }
                    }
                }
                w.field("Index") { $0.int(view.lastIndex) }
            }
        }
    }

    private static func autopilotConfiguration(_ config: AgentConfig.AutopilotConfig) -> APIResponse {
        .json { writer in
            writer.object { o in
                o.field("CleanupDeadServers") { $0.bool(config.cleanupDeadServers) }
                o.field("LastContactThreshold") { $0.string(GoDuration.format(config.lastContactThreshold)) }
                o.field("MaxTrailingLogs") { $0.int(config.maxTrailingLogs) }
                o.field("MinQuorum") { $0.int(config.minQuorum) }
                o.field("ServerStabilizationTime") { $0.string(GoDuration.format(config.serverStabilizationTime)) }
                o.field("RedundancyZoneTag") { $0.string("") }
                o.field("DisableUpgradeMigration") { $0.bool(false) }
                o.field("UpgradeVersionTag") { $0.string("") }
                o.field("CreateIndex") { $0.int(0) }
                o.field("ModifyIndex") { $0.int(0) }
            }
        }
    }

    /// Server health as autopilot judges it on the leader: alive in gossip, heard from within
    /// `last_contact_threshold`, and no more than `max_trailing_logs` behind. 429 when unhealthy.
    private static func autopilotHealth(_ agent: AgentRuntime) async throws(APIError) -> APIResponse {
        guard let raft = agent.raft else { throw .noServers }
        let status = await raft.status()
        guard status.role == "leader" else { throw .noLeader }
        let followers = await raft.followerHealth()
        let settings = agent.config.autopilot
        let names = serverNames(agent)
        let members = Dictionary((agent.lan?.members ?? []).compactMap { m in m.tags["id"].map { ($0, m) } }) { first, _ in first }
        struct Row {
            var entry: ServerEntry
            var serf: String
            var version: String
            var leader: Bool
            /// Since the server last answered the leader; nil when it has not this term.
            var contact: Duration?
            var index: LogIndex
            var healthy: Bool
        }
        var rows: [Row] = []
        for entry in status.configuration.servers {
            let member = members[entry.id.rawValue]
            let isLeader = entry.id == status.leader
            let contact = isLeader ? Duration.zero : followers[entry.id]?.sinceContact
            let index = isLeader ? status.lastIndex : followers[entry.id]?.matchIndex ?? 0
            let serf = member?.status.description ?? "none"
            let healthy = serf == "alive" && contact.map { $0 < settings.lastContactThreshold } == true
                && status.lastIndex - min(index, status.lastIndex) <= LogIndex(settings.maxTrailingLogs)
            let version = member?.tags["build"].map { String($0.split(separator: ":").first ?? "") } ?? ""
            rows.append(Row(entry: entry, serf: serf, version: version, leader: isLeader, contact: contact, index: index, healthy: healthy))
        }
        let voters = rows.filter { $0.entry.suffrage == .voter }
        let healthyVoters = voters.filter(\.healthy).count
        let tolerance = max(0, healthyVoters - (voters.count / 2 + 1))
        let allHealthy = rows.allSatisfy(\.healthy)
        var response = APIResponse.json { writer in
            writer.object { o in
                o.field("Healthy") { $0.bool(allHealthy) }
                o.field("FailureTolerance") { $0.int(tolerance) }
                o.field("Servers") { s in
                    s.array { a in
                        for row in rows {
                            a.object { w in
                                w.field("ID") { $0.string(row.entry.id.rawValue) }
                                w.field("Name") { $0.string(names[row.entry.id.rawValue] ?? "(unknown)") }
                                w.field("Address") { $0.string(agent.rpcAddress(of: row.entry.id)) }
                                w.field("SerfStatus") { $0.string(row.serf) }
                                w.field("Version") { $0.string(row.version) }
                                w.field("Leader") { $0.bool(row.leader) }
                                w.field("LastContact") { $0.string(row.contact.map(GoDuration.format) ?? "never") }
                                w.field("LastTerm") { $0.int(status.term) }
                                w.field("LastIndex") { $0.int(row.index) }
                                w.field("Healthy") { $0.bool(row.healthy) }
                                w.field("Voter") { $0.bool(row.entry.suffrage == .voter) }
                            }
                        }
                    }
                }
            }
        }
        if !allHealthy { response.status = 429 }
        return response
    }
}
