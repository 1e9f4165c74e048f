import ConsulCore

/// `POST /v1/internal/dns?transport=udp|tcp[&stale]` (body: one DNS query): how an agent's DNS
/// server gets an answer from a server's catalog when it cannot give one from its own: a client
/// agent keeps no catalog, and a server may not answer stale (`dns_config.allow_stale = false`,
/// or longer than `max_stale` without hearing from the leader). The request goes through the
/// request path like any read (`?stale`: any server; otherwise the leader), and the answering
/// server resolves the packet as if it had been asked directly and hands back the response bytes.
/// Only agents make this request (over agent RPC, or their own DNS server): it is not part of
/// Consul's HTTP API.
struct DNSRelayEndpoint {
    let agent: AgentRuntime

    static let path = "/v1/internal/dns"

    func route(_ request: APIRequest) throws(APIError) -> APIRoute {
        guard request.forwardHops > 0 || request.fromAgentItself else { throw .notFound("404 page not found") }
        try APIRouter.requireMethod(request, "POST")
        let transport: DNSTransport
        switch request.query["transport"] {
        case "udp": transport = .udp
        case "tcp": transport = .tcp
        default: throw .badRequest("transport must be udp or tcp")
        }
        let packet = request.body
        // Only the DNS settings are read from the live configuration, not a copy of all of it.
        let resolver = DNSResolver(settings: agent.config { DNSResolverSettings(config: $0) })
        // Rendered from the catalog of the server the request path picked.
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
        return APIRoute(action: .read(tables: [], render: render), isWrite: false, resource: .none, access: .read)
    }
}
