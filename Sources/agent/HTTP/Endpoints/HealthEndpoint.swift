/// `/v1/health/node/:n`, `checks/:s`, `service/:s` (`?passing`, `?tag`) and `state/:state`.
struct HealthEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        try APIRouter.requireMethod(request, "GET")
        let (verb, argument) = APIRouter.split(tail)
        let name = String(argument)
        switch verb {
        case "node":
            guard !name.isEmpty else { throw .badRequest("Missing node name") }
            return .read(.node(name), tables: [.checks]) { store throws(APIError) in
                .json { CatalogJSON.checks(store.checks(onNode: name), into: &$0) }
            }
        case "checks":
            guard !name.isEmpty else { throw .badRequest("Missing service name") }
            return .read(.service(name), tables: [.checks, .services]) { store throws(APIError) in
                .json { CatalogJSON.checks(store.checks(ofService: name), into: &$0) }
            }
        case "state":
            let wanted: HealthStatus?
            switch name {
            case "any": wanted = nil
            case "passing", "warning", "critical": wanted = HealthStatus(rawValue: name)
            default: throw .badRequest("Invalid state: \(name)")
            }
            return .read(.filteredList, tables: [.checks]) { store throws(APIError) in
                let checks = store.allChecks.filter { wanted == nil || $0.status == wanted }
                return .json { CatalogJSON.checks(checks, into: &$0) }
            }
        case "service":
            guard !name.isEmpty else { throw .badRequest("Missing service name") }
            let passingOnly = request.has("passing") && request.query["passing"] != "false"
            // Every `?tag=` must match (Consul's ServiceMultipleTags; `consul watch -tag a -tag b`).
            let tags = request.values("tag")
            return .read(.service(name), tables: [.nodes, .services, .checks]) { store throws(APIError) in
                let entries = Self.serviceHealth(name, in: store, tags: tags, passingOnly: passingOnly)
                return .json { Self.write(entries, into: &$0) }
            }
        default:
            throw .notFound("404 page not found")
        }
    }

    struct ServiceHealth: Sendable {
        var node: CatalogNode
        var service: CatalogService
        /// The node's own checks followed by the service's.
        var checks: [HealthCheck]
    }

    /// The array `/v1/health/service` answers (prepared query execution answers the same entries).
    static func write(_ entries: [ServiceHealth], into writer: inout JSONWriter) {
        writer.array { w in
            for entry in entries {
                w.object { o in
                    o.field("Node") { CatalogJSON.node(entry.node, into: &$0) }
                    o.field("Service") { CatalogJSON.service(entry.service, into: &$0) }
                    o.field("Checks") { CatalogJSON.checks(entry.checks, into: &$0) }
                }
            }
        }
    }

    /// Each instance with its node and the checks that bear on it, as `/v1/health/service` lists them.
    static func serviceHealth(_ name: String, in store: StateStore, tags: [String], passingOnly: Bool) -> [ServiceHealth] {
        store.serviceInstances(named: name).compactMap { service in
            guard tags.allSatisfy(service.tags.contains), let node = store.node(named: service.node) else { return nil }
            let checks = store.checks(onNode: service.node).filter { $0.serviceID.isEmpty || $0.serviceID == service.id }
            if passingOnly, checks.contains(where: { $0.status != .passing }) { return nil }
            return ServiceHealth(node: node, service: service, checks: checks)
        }
    }
}
