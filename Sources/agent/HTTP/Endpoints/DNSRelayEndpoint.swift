import ConsulCore

/// `POST /v1/internal/dns?transport=udp|tcp` (body: one DNS query): how a client agent, which
/// keeps no copy of the catalog, gets the answer to a query in the Consul domain. It sends the
/// packet over agent RPC to a server, which resolves it from its own catalog as if it had been
/// asked directly (stale, as Consul's DNS is by default) and hands back the response bytes.
/// Reachable only over agent RPC: it is not part of Consul's HTTP API.
struct DNSRelayEndpoint {
    let agent: AgentRuntime

    static let path = "/v1/internal/dns"

    func route(_ request: APIRequest) throws(APIError) -> APIRoute {
        // A client agent's own DNS server sends its queries here, and they go on to a server;
        // a server takes them only from other agents.
        guard request.forwardHops > 0 || agent.raft == nil else { throw .notFound("404 page not found") }
        try APIRouter.requireMethod(request, "POST")
        let transport: DNSTransport
        switch request.query["transport"] {
        case "udp": transport = .udp
        case "tcp": transport = .tcp
        default: throw .badRequest("transport must be udp or tcp")
        }
        let packet = request.body
        let resolver = DNSResolver(settings: DNSServerConfiguration(config: agent.config).settings)
        // Rendered from the answering server's catalog, as a stale read (Consul's DNS default).
        let render: @Sendable (StateStore) throws(APIError) -> APIResponse = { catalog throws(APIError) in
            var random = SeededRandom(seed: UInt64.random(in: .min ... .max))
            var memo = DNSAnswerMemo()
            let serial = DNSServer.unixTime()
            let answer: [UInt8]
            switch resolver.resolve(packet, transport: transport, catalog: catalog, serial: serial, random: &random, memo: &memo) {
            case .respond(let bytes, _):
                answer = bytes
            case .drop:
                throw .badRequest("not a DNS query")
            case .otherDatacenter(_, let query):
                answer = resolver.nameError(for: query, serial: serial)
            case .forward(let query):
                // Names outside the Consul domain never come here: the client sends them to its
                // own recursors.
                answer = resolver.serverFailure(for: query)
            }
            return APIResponse(contentType: "application/dns-message", body: answer)
        }
        return APIRoute(action: .read(tables: [], render: render), isWrite: false, resource: .none, access: .read, answeredBy: .anyServer)
    }
}
