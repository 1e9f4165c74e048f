import ConsulCore
import Foundation
import Raft

/// `/v1/operator/raft/*`, `/v1/operator/autopilot/*` and `/v1/operator/usage`. Everything here is
/// the leader's to answer (the forwarder sends it there) except `?stale` reads.
struct OperatorEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        let agent = self.agent
        switch tail {
        case "keyring": return try KeyringEndpoint(agent: agent).route(request)
        case "usage": return try OperatorUsageEndpoint(agent: agent).route(request)
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
        case "autopilot/configuration": return try AutopilotEndpoint(agent: agent).configuration(request)
        case "autopilot/state": return try AutopilotEndpoint(agent: agent).state(request)
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

    /// Autopilot's verdict on each server (`AutopilotHealth`), in Consul's health shape; 429 when unhealthy.
    private static func autopilotHealth(_ agent: AgentRuntime) async throws(APIError) -> APIResponse {
        let report = try await AutopilotHealth.gather(agent)
        var response = APIResponse.json { writer in
            writer.object { o in
                o.field("Healthy") { $0.bool(report.healthy) }
                o.field("FailureTolerance") { $0.int(report.failureTolerance) }
                o.field("Servers") { s in
                    s.array { a in
                        for row in report.servers {
                            a.object { w in
                                w.field("ID") { $0.string(row.entry.id.rawValue) }
                                w.field("Name") { $0.string(row.name) }
                                w.field("Address") { $0.string(row.address) }
                                w.field("SerfStatus") { $0.string(row.serf) }
                                w.field("Version") { $0.string(row.version) }
                                w.field("Leader") { $0.bool(row.leader) }
                                w.field("LastContact") { $0.string(row.contact.map(GoDuration.format) ?? "never") }
                                w.field("LastTerm") { $0.int(report.term) }
                                w.field("LastIndex") { $0.int(row.index) }
                                w.field("Healthy") { $0.bool(row.healthy) }
                                w.field("Voter") { $0.bool(row.entry.suffrage == .voter) }
                            }
                        }
                    }
                }
            }
        }
        if !report.healthy { response.status = 429 }
        return response
    }
}
