/// `/v1/status/leader` and `/v1/status/peers`: the Raft leader's and voters' RPC addresses, as the
/// server asked knows them (a client asks a server, as Consul's Status RPCs do).
struct StatusEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        try APIRouter.requireMethod(request, "GET")
        let view = agent.clusterView
        switch tail {
        case "leader":
            let leader = view.leaderID.map(agent.rpcAddress(of:)) ?? ""
            return .anyServer(.none, .json { $0.string(leader) })
        case "peers":
            let peers = view.configuration.voters.map(agent.rpcAddress(of:))
            return .anyServer(.none, .json { $0.strings(peers) })
        default:
            throw .notFound("404 page not found")
        }
    }
}
