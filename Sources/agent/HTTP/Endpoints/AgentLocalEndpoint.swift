import ConsulCore

/// `/v1/agent/services`, `/service/*`, `/checks`, `/check/*`, `/maintenance` and `/reload`: this
/// agent's own services and checks (`LocalAgent`), answered by this agent and never forwarded.
/// Reads come from the local state as it is now, on the event loop; changes are applied to it
/// at once and reach the catalog through anti-entropy.
struct AgentLocalEndpoint {
    let agent: AgentRuntime

    /// Nil: not a route of this endpoint.
    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute? {
        let (verb, _) = APIRouter.split(tail)
        let local = agent.local
        switch (verb, tail) {
        case ("services", _):
            try APIRouter.requireMethod(request, "GET")
            let state = local.snapshot
            let datacenter = agent.datacenter
            return .local(.json { writer in
                writer.object { w in
                    for service in state.sortedServices {
                        w.field(dynamic: service.record.id) { Self.service(service.record, datacenter: datacenter, into: &$0) }
                    }
                }
            })
        case ("checks", _):
            try APIRouter.requireMethod(request, "GET")
            let state = local.snapshot
            return .local(.json { writer in
                writer.object { w in
                    for check in state.sortedChecks { w.field(dynamic: check.record.id) { Self.check(check.record, into: &$0) } }
                }
            })
        case ("maintenance", _):
            try APIRouter.requireMethod(request, "PUT")
            let enable = try Self.enableParameter(request)
            let reason = request.query["reason"] ?? ""
            return .agentOperation(.node(agent.nodeName)) { () async throws(APIError) -> APIResponse in
                local.update { state, _ in state.setNodeMaintenance(enable, reason: reason) }
                return try await Self.answerWhenPersisted(local)
            }
        case ("reload", _):
            try APIRouter.requireMethod(request, "PUT")
            let agent = self.agent
            return .agentOperation(.agent(agent.nodeName)) { () async throws(APIError) -> APIResponse in
                switch await agent.requestReload() {
                case nil: throw .internalError("this agent was not started from config files and cannot reload")
                case .some(nil): return APIResponse()
                case .some(let problem?): throw .internalError("Failed reloading config: \(problem)")
                }
            }
        case ("service", _) where tail.hasPrefix("service/"):
            return try serviceRoute(request, tail: tail.dropFirst("service/".count))
        case ("check", _) where tail.hasPrefix("check/"):
            return try checkRoute(request, tail: tail.dropFirst("check/".count))
        default:
            return nil
        }
    }

    private func serviceRoute(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        let (verb, argument) = APIRouter.split(tail)
        let id = String(argument)
        let local = agent.local
        switch verb {
        case "register":
            try APIRouter.requireMethod(request, "PUT")
            let definition: ServiceDefinition
            let body = try JSONBody.parse(request.body)
            // Consul's first checks, in its words, before the definition's own validation.
            guard body.isObject() else { throw .badRequest("Request decode failed: the body must be a JSON object") }
            guard let name = try body.string("Name"), !name.isEmpty else { throw .badRequest("Missing service name") }
            do throws(DefinitionError) {
                definition = try DefinitionParser(strict: false).service(body.value)
            } catch {
                throw .badRequest("Invalid service registration: \(error.message)")
            }
            let replace = request.query["replace-existing-checks"].map { $0.isEmpty || $0 == "true" || $0 == "1" } ?? false
            return .agentOperation(.service(definition.name)) { () async throws(APIError) -> APIResponse in
                do throws(DefinitionError) {
                    try local.update { state, now throws(DefinitionError) in
                        try state.addService(definition, source: .api, now: now, replaceExistingChecks: replace)
                    }
                } catch {
                    throw .badRequest(error.message)
                }
                return try await Self.answerWhenPersisted(local)
            }
        case "deregister":
            try APIRouter.requireMethod(request, "PUT")
            guard !id.isEmpty else { throw .badRequest("Missing service ID") }
            return .agentOperation(.service(id)) { () async throws(APIError) -> APIResponse in
                guard local.update({ state, _ in state.removeService(id) }) else { throw Self.unknownService(id) }
                return try await Self.answerWhenPersisted(local)
            }
        case "maintenance":
            try APIRouter.requireMethod(request, "PUT")
            guard !id.isEmpty else { throw .badRequest("Missing service ID") }
            let enable = try Self.enableParameter(request)
            let reason = request.query["reason"] ?? ""
            return .agentOperation(.service(id)) { () async throws(APIError) -> APIResponse in
                do throws(LocalState.MaintenanceError) {
                    try local.update { state, _ throws(LocalState.MaintenanceError) in
                        try state.setServiceMaintenance(id, enable: enable, reason: reason)
                    }
                } catch {
                    throw Self.unknownService(id)
                }
                return try await Self.answerWhenPersisted(local)
            }
        default:
            // `/v1/agent/service/:id`: one service's full definition.
            try APIRouter.requireMethod(request, "GET")
            let id = String(tail)
            guard !id.isEmpty else { throw .badRequest("Missing service ID") }
            guard let service = local.snapshot.services[id] else { throw .notFound("unknown service ID: \(id)") }
            let datacenter = agent.datacenter
            return .local(.json { Self.service(service.record, datacenter: datacenter, into: &$0, detailed: true) })
        }
    }

    private func checkRoute(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        let (verb, argument) = APIRouter.split(tail)
        let id = String(argument)
        let local = agent.local
        let node = agent.nodeName
        switch verb {
        case "register":
            try APIRouter.requireMethod(request, "PUT")
            let definition: CheckDefinition
            let body = try JSONBody.parse(request.body)
            // Consul's first checks, in its words; what the definition's validation refuses is an
            // "Invalid check", as Consul names a CheckType that does not validate.
            guard body.isObject() else { throw .badRequest("Request decode failed: the body must be a JSON object") }
            let name = try body.string("Name") ?? "", checkID = try body.string("ID") ?? "", legacyCheckID = try body.string("CheckID") ?? ""
            if name.isEmpty && checkID.isEmpty && legacyCheckID.isEmpty { throw .badRequest("Missing check name") }
            if let status = try body.string("Status"), !status.isEmpty {
                guard let initial = HealthStatus(rawValue: status), initial != .maintenance else { throw .badRequest("Bad check status") }
            }
            do throws(DefinitionError) {
                definition = try DefinitionParser(strict: false).check(body.value)
            } catch {
                throw .badRequest("Invalid check: \(error.message)")
            }
            return .agentOperation(.node(node)) { () async throws(APIError) -> APIResponse in
                do throws(DefinitionError) {
                    try local.update { state, now throws(DefinitionError) in try state.addCheck(definition, source: .api, now: now) }
                } catch {
                    throw .badRequest(error.message)
                }
                return try await Self.answerWhenPersisted(local)
            }
        case "deregister":
            try APIRouter.requireMethod(request, "PUT")
            guard !id.isEmpty else { throw .badRequest("Missing check ID") }
            return .agentOperation(.node(node)) { () async throws(APIError) -> APIResponse in
                guard local.update({ state, _ in state.removeCheck(id) }) else { throw Self.unknownCheck(id) }
                return try await Self.answerWhenPersisted(local)
            }
        case "pass", "warn", "fail":
            try APIRouter.requireMethod(request, "PUT")
            guard !id.isEmpty else { throw .badRequest("Missing check ID") }
            let status: HealthStatus = verb == "pass" ? .passing : verb == "warn" ? .warning : .critical
            let note = request.query["note"] ?? ""
            return .agentOperation(.node(node)) { () async throws(APIError) -> APIResponse in
                try Self.updateTTL(local, id: id, status: status, output: note)
                return APIResponse()
            }
        case "update":
            try APIRouter.requireMethod(request, "PUT")
            guard !id.isEmpty else { throw .badRequest("Missing check ID") }
            let body = try JSONBody.parse(request.body)
            // A list or string is a decode failure, as in Consul, not a body without a Status.
            guard body.isObject() || body.value.isNull else { throw .badRequest("Request decode failed: the body must be a JSON object") }
            let statusText = try body.string("Status") ?? ""
            guard let status = HealthStatus(rawValue: statusText), status != .maintenance else {
                throw .badRequest("Invalid check status: '\(statusText)'")
            }
            let output = try body.string("Output") ?? ""
            return .agentOperation(.node(node)) { () async throws(APIError) -> APIResponse in
                try Self.updateTTL(local, id: id, status: status, output: output)
                return APIResponse()
            }
        default:
            throw .notFound("404 page not found")
        }
    }

    /// A registration is answered once it is on disk (it must survive a restart once the caller
    /// hears it worked); a failed write is a 500, the file named in the agent's log.
    private static func answerWhenPersisted(_ local: LocalAgent) async throws(APIError) -> APIResponse {
        guard await local.persisted() else {
            throw .internalError("failed to persist the agent's registrations to the data dir (the agent's log names the file)")
        }
        return APIResponse()
    }

    private static func updateTTL(_ local: LocalAgent, id: String, status: HealthStatus, output: String) throws(APIError) {
        do throws(LocalState.UpdateError) {
            try local.update { state, now throws(LocalState.UpdateError) in try state.updateTTL(id, status: status, output: output, now: now) }
        } catch {
            switch error {
            case .unknownCheck: throw unknownCheck(id)
            case .notTTL: throw .badRequest("CheckID \"\(id)\" does not have associated TTL")
            }
        }
    }

    private static func unknownCheck(_ id: String) -> APIError {
        .notFound("Unknown check ID \"\(id)\". Ensure that the check ID is passed, not the check name.")
    }

    private static func unknownService(_ id: String) -> APIError {
        .notFound("Unknown service ID \"\(id)\". Ensure that the service ID is passed, not the service name.")
    }

    /// `?enable=true|false`, required, read as Consul reads it (Go's `strconv.ParseBool`): absent is
    /// "Missing", present but empty or anything else Go refuses is "Invalid".
    private static func enableParameter(_ request: APIRequest) throws(APIError) -> Bool {
        guard let text = request.query["enable"] else { throw .badRequest("Missing value for enable") }
        guard let enable = GoBool.parse(text) else { throw .badRequest("Invalid value for enable: \"\(text)\"") }
        return enable
    }

    // MARK: - JSON

    /// A service as `/v1/agent/services` shows it; `detailed` adds what `/v1/agent/service/:id` has.
    static func service(_ service: CatalogService, datacenter: String, into writer: inout JSONWriter, detailed: Bool = false) {
        writer.object { w in
            w.field("ID") { $0.string(service.id) }
            w.field("Service") { $0.string(service.name) }
            w.field("Tags") { $0.strings(service.tags) }
            w.field("Meta") { $0.stringMap(service.meta) }
            w.field("Port") { $0.int(service.port) }
            w.field("Address") { $0.string(service.address) }
            w.field("Weights") { CatalogJSON.weights(service.weights, into: &$0) }
            w.field("EnableTagOverride") { $0.bool(service.enableTagOverride) }
            if detailed { w.field("ContentHash") { $0.string(contentHash(service)) } }
            w.field("Datacenter") { $0.string(datacenter) }
        }
    }

    /// A short hash of the definition (Consul's `ContentHash` lets watchers spot changes).
    static func contentHash(_ service: CatalogService) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        let text = [service.id, service.name, service.tags.joined(separator: ","), service.address, String(service.port),
                    service.meta.keys.sorted().map { "\($0)=\(service.meta[$0]!)" }.joined(separator: ","),
                    "\(service.weights.passing)/\(service.weights.warning)", String(service.enableTagOverride)].joined(separator: "|")
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func check(_ check: HealthCheck, into writer: inout JSONWriter) {
        CatalogJSON.check(check, into: &writer, agentView: true)
    }
}
