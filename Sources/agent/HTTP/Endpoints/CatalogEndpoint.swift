/// `/v1/catalog/*`: register, deregister, datacenters, nodes, services, service/:s, node/:n,
/// node-services/:n.
struct CatalogEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        let (verb, argument) = APIRouter.split(tail)
        let name = String(argument)
        switch verb {
        case "register":
            try APIRouter.requireMethod(request, "PUT")
            let registration = try Self.registration(from: JSONBody.parse(request.body), datacenter: agent.datacenter)
            let agent = self.agent
            return .write(.node(registration.node.name)) { () async throws(APIError) -> APIResponse in
                try Self.answer(try await agent.apply(.register(registration)))
            }
        case "deregister":
            try APIRouter.requireMethod(request, "PUT")
            let body = try JSONBody.parse(request.body)
            guard let node = try body.string("Node"), !node.isEmpty else { throw .badRequest("Must provide node") }
            let serviceID = try body.string("ServiceID").flatMap { $0.isEmpty ? nil : $0 }
            let checkID = try body.string("CheckID").flatMap { $0.isEmpty ? nil : $0 }
            let agent = self.agent
            return .write(.node(node)) { () async throws(APIError) -> APIResponse in
                try Self.answer(try await agent.apply(.deregister(node: node, serviceID: serviceID, checkID: checkID)))
            }
        case "datacenters":
            try APIRouter.requireMethod(request, "GET")
            let datacenter = agent.datacenter
            return .local(.json { $0.strings([datacenter]) })
        case "nodes":
            try APIRouter.requireMethod(request, "GET")
            let filters = try CatalogFilters(request, agentNode: agent.nodeName)
            return .read(.filteredList, tables: [.nodes, .coordinates]) { store throws(APIError) in
                let nodes = filters.sorted(store.allNodes.filter { filters.matches($0.meta) }, node: \.name, in: store)
                return .json { writer in writer.array { for node in nodes { CatalogJSON.node(node, into: &$0) } } }
            }
        case "services":
            try APIRouter.requireMethod(request, "GET")
            let filters = try CatalogFilters(request, agentNode: agent.nodeName)
            return .read(.filteredList, tables: [.nodes, .services]) { store throws(APIError) in
                guard !filters.nodeMeta.isEmpty else {
                    return .json { writer in
                        writer.object { w in
                            for entry in store.serviceNamesWithTags { w.field(dynamic: entry.name) { $0.strings(entry.tags) } }
                        }
                    }
                }
                // Only services with an instance on a node whose meta matches, with those instances' tags.
                var tags: [String: [String]] = [:]
                for node in store.allNodes where filters.matches(node.meta) {
                    for service in store.services(onNode: node.name) {
                        var list = tags[service.name, default: []]
                        for tag in service.tags where !list.contains(tag) { list.append(tag) }
                        tags[service.name] = list
                    }
                }
                return .json { writer in
                    writer.object { w in
                        for name in tags.keys.sorted() { w.field(dynamic: name) { $0.strings(tags[name] ?? []) } }
                    }
                }
            }
        case "service":
            try APIRouter.requireMethod(request, "GET")
            guard !name.isEmpty else { throw .badRequest("Missing service name") }
            let tags = request.values("tag")
            let filters = try CatalogFilters(request, agentNode: agent.nodeName)
            return .read(.service(name), tables: [.nodes, .services, .coordinates]) { store throws(APIError) in
                let instances = store.serviceInstances(named: name).filter { service in tags.allSatisfy { service.tags.contains($0) } }
                let pairs = instances.compactMap { service in store.node(named: service.node).map { (service, $0) } }
                let matching = filters.sorted(pairs.filter { filters.matches($0.1.meta) }, node: \.1.name, in: store)
                return .json { writer in
                    writer.array { w in
                        for (service, node) in matching { CatalogJSON.serviceNode(service, node: node, into: &w) }
                    }
                }
            }
        case "node":
            try APIRouter.requireMethod(request, "GET")
            guard !name.isEmpty else { throw .badRequest("Missing node name") }
            return .read(.node(name), tables: [.nodes, .services]) { store throws(APIError) in
                guard let (node, services) = Self.nodeWithServices(name, in: store) else { return Self.noSuchNode }
                return .json { writer in
                    writer.object { w in
                        w.field("Node") { CatalogJSON.node(node, into: &$0) }
                        w.field("Services") { s in
                            s.object { o in
                                for service in services { o.field(dynamic: service.id) { CatalogJSON.service(service, into: &$0) } }
                            }
                        }
                    }
                }
            }
        case "node-services":
            try APIRouter.requireMethod(request, "GET")
            guard !name.isEmpty else { throw .badRequest("Missing node name") }
            return .read(.node(name), tables: [.nodes, .services]) { store throws(APIError) in
                guard let (node, services) = Self.nodeWithServices(name, in: store) else { return Self.noSuchNode }
                return .json { writer in
                    writer.object { w in
                        w.field("Node") { CatalogJSON.node(node, into: &$0) }
                        w.field("Services") { s in s.array { for service in services { CatalogJSON.service(service, into: &$0) } } }
                    }
                }
            }
        default:
            throw .notFound("404 page not found")
        }
    }

    /// Consul answers an unknown node with a JSON null.
    private static let noSuchNode = APIResponse(status: 404, body: Array("null".utf8))

    private static func nodeWithServices(_ name: String, in store: StateStore) -> (CatalogNode, [CatalogService])? {
        store.node(named: name).map { ($0, store.services(onNode: name)) }
    }

    private static func answer(_ result: StateCommandResult) throws(APIError) -> APIResponse {
        if case .refused(let message) = result { throw .internalError(message) }
        return .true
    }

    /// Reads Consul's `structs.RegisterRequest` body, with its validation messages.
    static func registration(from body: JSONBody, datacenter: String) throws(APIError) -> StateCommand.Registration {
        guard body.isObject() else { throw .badRequest("Request decode failed: body must be a JSON object") }
        guard let name = try body.string("Node"), !name.isEmpty else { throw .badRequest("Must provide node") }
        guard let address = try body.string("Address"), !address.isEmpty else { throw .badRequest("Must provide address") }
        if let dc = try body.string("Datacenter"), !dc.isEmpty, dc != datacenter {
            throw .unknownDatacenter(dc)
        }
        let zero = RaftIndexes(createIndex: 0, modifyIndex: 0)
        let node = CatalogNode(
            id: try body.string("ID") ?? "", name: name, address: address, datacenter: datacenter,
            taggedAddresses: try body.stringMap("TaggedAddresses") ?? [:], meta: try body.stringMap("NodeMeta") ?? [:], indexes: zero)

        var service: CatalogService?
        if let definition = try body.object("Service") {
            guard let serviceName = try definition.string("Service"), !serviceName.isEmpty else {
                throw .badRequest("Invalid service registration: Must provide service name")
            }
            var weights = ServiceWeights()
            if let given = try definition.object("Weights") {
                weights = ServiceWeights(passing: try given.int("Passing") ?? 1, warning: try given.int("Warning") ?? 1)
            }
            let port = try definition.int("Port") ?? 0
            guard (0...65535).contains(port) else { throw .badRequest("Invalid service registration: port \(port) out of range") }
            service = CatalogService(
                node: name, id: (try definition.string("ID")).flatMap { $0.isEmpty ? nil : $0 } ?? serviceName, name: serviceName,
                tags: try definition.strings("Tags") ?? [], address: try definition.string("Address") ?? "", port: port,
                meta: try definition.stringMap("Meta") ?? [:], weights: weights,
                enableTagOverride: try definition.bool("EnableTagOverride") ?? false, indexes: zero)
        }

        var checkBodies = try body.objects("Checks") ?? []
        if let single = try body.object("Check") { checkBodies.insert(single, at: 0) }
        var checks: [HealthCheck] = []
        for definition in checkBodies {
            let checkName = try definition.string("Name") ?? ""
            let id = (try definition.string("CheckID")).flatMap { $0.isEmpty ? nil : $0 } ?? checkName
            guard !id.isEmpty else { throw .badRequest("Invalid check registration: Must provide check name or ID") }
            let statusText = try definition.string("Status") ?? ""
            let status: HealthStatus
            if statusText.isEmpty {
                status = .critical
            } else {
                guard let parsed = HealthStatus(rawValue: statusText) else { throw .badRequest("Invalid check status: \"\(statusText)\"") }
                status = parsed
            }
            let serviceID = try definition.string("ServiceID") ?? ""
            checks.append(HealthCheck(
                node: name, id: id, name: checkName.isEmpty ? id : checkName, status: status, notes: try definition.string("Notes") ?? "",
                output: try definition.string("Output") ?? "", serviceID: serviceID, serviceName: "", serviceTags: [],
                type: try definition.string("Type") ?? "", interval: try definition.string("Interval") ?? "",
                timeout: try definition.string("Timeout") ?? "", indexes: zero))
        }
        return StateCommand.Registration(node: node, service: service, checks: checks)
    }
}
