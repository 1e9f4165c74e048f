import ConsulCore

/// `PUT /v1/txn`: a list of KV, node, service, check and session operations applied atomically as
/// one Raft command. A transaction of reads only is answered from the state store without Raft (so
/// `?stale` and `?consistent` apply, but no blocking), as Consul's fast path does. Answers
/// `{"Results":[...],"Errors":null}`, or 409 with `{"Results":null,"Errors":[{"OpIndex":i,"What":"..."}]}`
/// when anything failed.
struct TxnEndpoint {
    /// Consul's `maxTxnOps`.
    static let maxOperations = 128
    /// Consul's default `txn_max_req_len` (the suggested Raft entry size).
    static let maxRequestBytes = 512 * 1024

    let agent: AgentRuntime

    func route(_ request: APIRequest) throws(APIError) -> APIRoute {
        try APIRouter.requireMethod(request, "PUT")
        let parsed = try Self.parse(request.body, datacenter: agent.datacenter)
        let operations = parsed.operations
        let isWrite = operations.contains { $0.isWrite }
        let resource = Self.aclResource(operations)
        if !parsed.errors.isEmpty {
            // Operations Consul's state store would refuse whatever the state: answered here,
            // with nothing read, forwarded or applied.
            return .local(Self.response(TxnOutcome(results: [], errors: parsed.errors)))
        }
        guard isWrite else {
            // No tables watched: Consul does not block on a read-only transaction.
            return .read(resource, tables: []) { store throws(APIError) in Self.response(store.readTxn(operations)) }
        }
        let agent = self.agent
        return .write(resource) { () async throws(APIError) -> APIResponse in
            // Lock-delays are this server's memory, not replicated state: checked before proposing,
            // on the leader, as Consul's pre-apply check does.
            let delayed = Self.lockDelayErrors(operations, agent.lockDelays)
            guard delayed.isEmpty else { return Self.response(TxnOutcome(errors: delayed)) }
            switch try await agent.apply(.txn(operations)) {
            case .txn(let outcome): return Self.response(outcome)
            case .refused(let message): throw .internalError(message)
            case .done, .applied: throw .internalError("unexpected result for a transaction")
            }
        }
    }

    /// A `lock` on a key whose previous holder's session was invalidated less than its lock-delay ago.
    static func lockDelayErrors(_ operations: [TxnOperation], _ lockDelays: LockDelays) -> [TxnError] {
        operations.enumerated().compactMap { position, operation in
            guard case .kv(let op) = operation, op.verb == .lock, lockDelays.isDelayed(op.key) else { return nil }
            return TxnError(opIndex: position, what: "failed to lock key \"\(op.key)\" due to lock delay")
        }
    }

    /// One ACL check for the whole transaction (per-operation checks come with ACLs): for KV only,
    /// the narrowest prefix covering every key, so a token allowed there may run any of the
    /// operations; with catalog or session operations, which no single node, service or key rule
    /// covers, operator access (a management token), so the gate fails closed rather than open.
    static func aclResource(_ operations: [TxnOperation]) -> ACLResource {
        var keys: [String] = []
        for operation in operations {
            guard case .kv(let op) = operation else { return .operator }
            keys.append(op.key)
        }
        return .keyPrefix(commonPrefix(keys))
    }

    // MARK: - Request body

    struct Parsed {
        var operations: [TxnOperation] = []
        /// Operations with an unknown verb, no operation at all, or that fail Consul's checks
        /// before applying (a node write without a name, ...), reported like state errors.
        var errors: [TxnError] = []
    }

    /// `datacenter` is what a node operation without one is recorded in (this agent's, as Consul does).
    static func parse(_ body: [UInt8], datacenter: String) throws(APIError) -> Parsed {
        guard body.count <= maxRequestBytes else { throw .tooLarge("Request body too large, max size: \(maxRequestBytes) bytes") }
        let json: ConfigValue
        do {
            json = try JSONConfigParser.parseValue(bytes: body, file: "request body")
        } catch {
            throw .badRequest("Failed to parse body: \(error)")
        }
        guard let elements = json.arrayValue else {
            throw .badRequest("Failed to parse body: the body must be a list of operations, not \(json.kindDescription)")
        }
        guard elements.count <= maxOperations else {
            throw .tooLarge("Transaction contains too many operations (\(elements.count) > \(maxOperations))")
        }
        var parsed = Parsed()
        for (position, element) in elements.enumerated() {
            guard element.objectValue != nil else {
                throw .badRequest("Failed to parse body: operation \(position) must be an object, not \(element.kindDescription)")
            }
            let op = JSONBody(element)
            let result: Result<TxnOperation, TxnError>
            if let kv = try op.object("KV") {
                result = try kvOperation(kv, position: position)
            } else if let node = try op.object("Node") {
                result = try nodeOperation(node, position: position, datacenter: datacenter)
            } else if let service = try op.object("Service") {
                result = try serviceOperation(service, position: position)
            } else if let check = try op.object("Check") {
                result = try checkOperation(check, position: position)
            } else if let session = try op.object("Session") {
                result = try sessionOperation(session, position: position)
            } else {
                result = .failure(TxnError(opIndex: position, what: "no operation specified"))
            }
            switch result {
            case .success(let operation):
                parsed.operations.append(operation)
            case .failure(let error):
                // Refused whatever the state: reported like a state error, with the rest.
                parsed.errors.append(error)
                parsed.operations.append(.kv(TxnKVOperation(verb: .get, key: "")))
            }
        }
        return parsed
    }

    private static func kvOperation(_ kv: JSONBody, position: Int) throws(APIError) -> Result<TxnOperation, TxnError> {
        let verbText = try kv.string("Verb") ?? ""
        let key = try kv.string("Key") ?? ""
        guard let verb = TxnKVOperation.Verb(rawValue: verbText) else {
            return .failure(TxnError(opIndex: position, what: "unknown KV verb \"\(verbText)\""))
        }
        let value = try Self.value(kv, position: position)
        guard value.count <= KVEndpoint.maxValueBytes else {
            throw .tooLarge("Value for key \"\(key)\" is too large (\(value.count) > \(KVEndpoint.maxValueBytes) bytes)")
        }
        return .success(.kv(TxnKVOperation(
            verb: verb, key: key, value: value, flags: try Self.unsigned(kv, "Flags", position: position),
            index: try Self.unsigned(kv, "Index", position: position), session: try kv.string("Session") ?? "")))
    }

    /// `{"Verb": .., "Node": {ID, Node, Address, Datacenter, TaggedAddresses, Meta, ModifyIndex}}`;
    /// writes need a node name and, if given, a UUID (Consul's pre-apply checks).
    private static func nodeOperation(_ op: JSONBody, position: Int, datacenter: String) throws(APIError) -> Result<TxnOperation, TxnError> {
        let verbText = try op.string("Verb") ?? ""
        guard let verb = TxnCatalogVerb(rawValue: verbText) else {
            return .failure(TxnError(opIndex: position, what: "unknown node operation: \(verbText)"))
        }
        let body = try op.object("Node") ?? JSONBody(.object(ConfigObject()))
        let node = CatalogNode(
            id: try body.string("ID") ?? "", name: try body.string("Node") ?? "", address: try body.string("Address") ?? "",
            datacenter: (try body.string("Datacenter")).flatMap { $0.isEmpty ? nil : $0 } ?? datacenter,
            taggedAddresses: try body.stringMap("TaggedAddresses") ?? [:], meta: try body.stringMap("Meta") ?? [:],
            indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
        if verb != .get {
            guard !node.name.isEmpty else { return .failure(TxnError(opIndex: position, what: "Must provide node")) }
            if !node.id.isEmpty, !AgentConfigValidator.isUUID(node.id) {
                let problem = node.id.utf8.count == 36 ? "uuid is improperly formatted" : "uuid string is wrong length"
                return .failure(TxnError(opIndex: position, what: "Bad node ID: \(problem)"))
            }
        }
        return .success(.node(verb, node, index: try unsigned(body, "ModifyIndex", position: position)))
    }

    /// `{"Verb": .., "Node": "name", "Service": {ID, Service, Tags, Address, Meta, Port, Weights,
    /// EnableTagOverride, ModifyIndex}}`; the ID defaults to the name, and a set needs the name.
    private static func serviceOperation(_ op: JSONBody, position: Int) throws(APIError) -> Result<TxnOperation, TxnError> {
        let verbText = try op.string("Verb") ?? ""
        guard let verb = TxnCatalogVerb(rawValue: verbText) else {
            return .failure(TxnError(opIndex: position, what: "unknown service operation: \(verbText)"))
        }
        let nodeName = try op.string("Node") ?? ""
        let body = try op.object("Service") ?? JSONBody(.object(ConfigObject()))
        let name = try body.string("Service") ?? ""
        let id = (try body.string("ID")).flatMap { $0.isEmpty ? nil : $0 } ?? name
        if verb == .set || verb == .cas, name.isEmpty {
            return .failure(TxnError(opIndex: position, what: "Must provide service name with ID"))
        }
        var weights = ServiceWeights()
        if let given = try body.object("Weights") {
            weights = ServiceWeights(passing: try given.int("Passing") ?? 1, warning: try given.int("Warning") ?? 1)
        }
        let port = try body.int("Port") ?? 0
        guard (0...65535).contains(port) else { throw .badRequest("Failed to parse body: operation \(position): port \(port) out of range") }
        let service = CatalogService(
            node: nodeName, id: id, name: name, tags: try body.strings("Tags") ?? [], address: try body.string("Address") ?? "",
            port: port, meta: try body.stringMap("Meta") ?? [:], weights: weights,
            enableTagOverride: try body.bool("EnableTagOverride") ?? false, indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
        return .success(.service(verb, node: nodeName, service, index: try unsigned(body, "ModifyIndex", position: position)))
    }

    /// `{"Verb": .., "Check": {Node, CheckID, Name, Status, Notes, Output, ServiceID, ServiceName,
    /// ServiceTags, Type, Definition{Interval, Timeout}, ModifyIndex}}`; the ID defaults to the name
    /// and an empty status is critical, as Consul stores them.
    private static func checkOperation(_ op: JSONBody, position: Int) throws(APIError) -> Result<TxnOperation, TxnError> {
        let verbText = try op.string("Verb") ?? ""
        guard let verb = TxnCatalogVerb(rawValue: verbText) else {
            return .failure(TxnError(opIndex: position, what: "unknown check operation: \(verbText)"))
        }
        let body = try op.object("Check") ?? JSONBody(.object(ConfigObject()))
        let name = try body.string("Name") ?? ""
        let statusText = try body.string("Status") ?? ""
        guard let status = statusText.isEmpty ? .critical : HealthStatus(rawValue: statusText) else {
            return .failure(TxnError(opIndex: position, what: "Invalid check status: \"\(statusText)\""))
        }
        let definition = try body.object("Definition")
        let check = HealthCheck(
            node: try body.string("Node") ?? "", id: (try body.string("CheckID")).flatMap { $0.isEmpty ? nil : $0 } ?? name,
            name: name, status: status, notes: try body.string("Notes") ?? "", output: try body.string("Output") ?? "",
            serviceID: try body.string("ServiceID") ?? "", serviceName: try body.string("ServiceName") ?? "",
            serviceTags: try body.strings("ServiceTags") ?? [], type: try body.string("Type") ?? "",
            interval: try definition?.string("Interval") ?? "", timeout: try definition?.string("Timeout") ?? "",
            indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
        return .success(.check(verb, check, index: try unsigned(body, "ModifyIndex", position: position)))
    }

    /// `{"Verb": "delete", "Session": {"ID": ..}}`, Consul's one session operation.
    private static func sessionOperation(_ op: JSONBody, position: Int) throws(APIError) -> Result<TxnOperation, TxnError> {
        let verbText = try op.string("Verb") ?? ""
        guard verbText == "delete" else {
            return .failure(TxnError(opIndex: position, what: "unknown session operation: \(verbText)"))
        }
        let body = try op.object("Session")
        return .success(.destroySession(id: try body?.string("ID") ?? ""))
    }

    /// `Value` is base64 as Go encodes `[]byte`; null or absent is no value.
    private static func value(_ kv: JSONBody, position: Int) throws(APIError) -> [UInt8] {
        guard let member = kv.member("Value"), !member.isNull else { return [] }
        guard let text = member.stringValue else {
            throw .badRequest("Failed to parse body: operation \(position): Value must be a base64 string, not \(member.kindDescription)")
        }
        guard let bytes = Base64.decode(Substring(text)) else {
            throw .badRequest("Failed to parse body: operation \(position): failed to decode value: illegal base64 data")
        }
        return bytes
    }

    private static func unsigned(_ body: JSONBody, _ name: String, position: Int) throws(APIError) -> UInt64 {
        guard let member = body.member(name), !member.isNull else { return 0 }
        guard let number = member.integerValue, number >= 0 else {
            throw .badRequest("Failed to parse body: operation \(position): \(name) must be an unsigned integer, not \(member.kindDescription)")
        }
        return UInt64(number)
    }

    static func commonPrefix(_ keys: [String]) -> String {
        guard var prefix = keys.first else { return "" }
        for key in keys.dropFirst() {
            while !key.hasPrefix(prefix) { prefix.removeLast() }
        }
        return prefix
    }

    // MARK: - Response

    static func response(_ outcome: TxnOutcome) -> APIResponse {
        let failed = !outcome.errors.isEmpty
        var response = APIResponse.json { writer in
            writer.object { w in
                w.field("Results") { results in
                    guard !failed else { return results.null() }
                    results.array { list in
                        for result in outcome.results {
                            list.object { o in
                                switch result {
                                case .kv(let entry): o.field("KV") { KVEndpoint.write(entry, into: &$0) }
                                case .node(let node): o.field("Node") { CatalogJSON.node(node, into: &$0) }
                                case .service(let service): o.field("Service") { CatalogJSON.service(service, into: &$0) }
                                case .check(let check): o.field("Check") { CatalogJSON.check(check, into: &$0) }
                                }
                            }
                        }
                    }
                }
                w.field("Errors") { errors in
                    guard failed else { return errors.null() }
                    errors.array { list in
                        for error in outcome.errors {
                            list.object { o in
                                o.field("OpIndex") { $0.int(error.opIndex) }
                                o.field("What") { $0.string(error.what) }
                            }
                        }
                    }
                }
            }
        }
        if failed { response.status = 409 }
        return response
    }
}
