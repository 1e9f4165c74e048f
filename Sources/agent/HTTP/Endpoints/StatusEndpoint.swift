/// `/v1/status/leader` and `/v1/status/peers`: the Raft leader's and voters' RPC addresses.
struct StatusEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        try APIRouter.requireMethod(request, "GET")
        let view = agent.clusterView
        switch tail {
        case "leader":
            let leader = view.leaderID.map(agent.rpcAddress(of:)) ?? ""
            return .local(.json { $0.string(leader) })
        case "peers":
            let peers = view.configuration.voters.map(agent.rpcAddress(of:))
            return .local(.json { $0.strings(peers) })
        default:
            throw .notFound("404 page not found")
        }
    }
}

/// `/v1/operator/raft/configuration`; the other operator endpoints arrive with their issues.
struct OperatorEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        switch tail {
        case "raft/configuration":
            try APIRouter.requireMethod(request, "GET")
            let view = agent.clusterView
            let agent = self.agent
            // Consul names each server by the LAN member whose `id` tag is the Raft ID.
            var names: [String: String] = [agent.nodeID: agent.nodeName]  // unknown ones: "(unknown)"
            for member in agent.lan?.members ?? [] {
                if let id = member.tags["id"], member.tags["role"] == "consul" { names[id] = member.name }
            }
            let response = APIResponse.json { writer in
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
            return APIRoute(action: .respond(response), isWrite: false, resource: .operator, access: .read)
        default:
            throw .notImplemented("/v1/operator/\(tail) is not implemented in this build yet")
        }
    }
}
