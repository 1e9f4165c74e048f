/// `GET /v1/agent/health/service/id/:id` and `/v1/agent/health/service/name/:name`: this agent's
/// own view of a service's health, from its local checks (the service's and the node's), for load
/// balancers that ask the local agent rather than the servers. The status code carries the
/// answer: 200 passing, 429 warning, 503 critical or maintenance, 404 for an unknown service;
/// `?format=text` answers with the status word alone.
struct AgentHealthEndpoint {
    let agent: AgentRuntime

    enum Aggregate: String {
        case passing, warning, critical, maintenance

        /// Worse wins: maintenance over critical over warning over passing.
        var rank: Int {
            switch self {
            case .passing: 0
            case .warning: 1
            case .critical: 2
            case .maintenance: 3
            }
        }

        var statusCode: Int {
            switch self {
            case .passing: 200
            case .warning: 429
            case .critical, .maintenance: 503
            }
        }
    }

    /// The aggregate of one service's checks (its own and the node's).
    static func aggregate(_ checks: [HealthCheck], serviceID: String) -> Aggregate {
        var worst = Aggregate.passing
        for check in checks {
            let status: Aggregate
            if check.id == LocalState.nodeMaintenanceCheckID || check.id == LocalState.serviceMaintenancePrefix + serviceID {
                status = .maintenance
            } else {
                switch check.status {
                case .passing: status = .passing
                case .warning: status = .warning
                case .critical: status = .critical
                case .maintenance: status = .maintenance
                }
            }
            if status.rank > worst.rank { worst = status }
        }
        return worst
    }

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        try APIRouter.requireMethod(request, "GET")
        // A missing ID or name is the caller's mistake (400, Consul's words), not an unknown service.
        if tail == "id/" { throw .badRequest("Missing serviceID") }
        if tail == "name/" { throw .badRequest("Missing service Name") }
        let text = request.query["format"] == "text"
        let state = agent.local.snapshot
        let datacenter = agent.datacenter
        /// One instance's answer: its aggregate and the object Consul shows for it.
        func instance(_ service: LocalState.Service) -> (Aggregate, CatalogService, [HealthCheck]) {
            let checks = state.sortedChecks.map(\.record).filter { $0.serviceID == service.record.id || $0.serviceID.isEmpty }
            return (Self.aggregate(checks, serviceID: service.record.id), service.record, checks)
        }
        func write(_ entry: (Aggregate, CatalogService, [HealthCheck]), into writer: inout JSONWriter) {
            writer.object { w in
                w.field("AggregatedStatus") { $0.string(entry.0.rawValue) }
                w.field("Service") { AgentLocalEndpoint.service(entry.1, datacenter: datacenter, into: &$0, detailed: true) }
                w.field("Checks") { $0.array { list in for check in entry.2 { AgentLocalEndpoint.check(check, into: &list) } } }
            }
        }
        if tail.hasPrefix("id/") {
            let id = String(tail.dropFirst(3))
            guard let service = state.sortedServices.first(where: { $0.record.id == id }) else {
                return .local(.text("ServiceId \(id) not found", status: 404))
            }
            let entry = instance(service)
            if text { return .local(.text(entry.0.rawValue, status: entry.0.statusCode)) }
            var response = APIResponse.json { write(entry, into: &$0) }
            response.status = entry.0.statusCode
            return .local(response)
        }
        if tail.hasPrefix("name/") {
            let name = String(tail.dropFirst(5))
            let entries = state.sortedServices.filter { $0.record.name == name }.map(instance)
            guard let worst = entries.map(\.0).max(by: { $0.rank < $1.rank }) else {
                return .local(.text("ServiceName \(name) Not Found", status: 404))
            }
            if text { return .local(.text(worst.rawValue, status: worst.statusCode)) }
            var response = APIResponse.json { writer in writer.array { list in for entry in entries { write(entry, into: &list) } } }
            response.status = worst.statusCode
            return .local(response)
        }
        throw .notFound("/v1/agent/health/\(tail): expected service/id/<id> or service/name/<name>")
    }
}
