import ConsulCore

/// `PUT /v1/txn`: a list of KV operations applied atomically as one Raft command. A transaction
/// of reads only is answered from the state store without Raft (so `?stale` and `?consistent`
/// apply, but no blocking), as Consul's fast path does. Answers `{"Results":[...],"Errors":null}`,
/// or 409 with `{"Results":null,"Errors":[{"OpIndex":i,"What":"..."}]}` when anything failed.
struct TxnEndpoint {
    /// Consul's `maxTxnOps`.
    static let maxOperations = 128
    /// Consul's default `txn_max_req_len` (the suggested Raft entry size).
    static let maxRequestBytes = 512 * 1024

    let agent: AgentRuntime

    func route(_ request: APIRequest) throws(APIError) -> APIRoute {
        try APIRouter.requireMethod(request, "PUT")
        let parsed = try Self.parse(request.body)
        let operations = parsed.operations
        let isWrite = operations.contains { $0.verb.isWrite }
        // One ACL check for the whole transaction: the narrowest prefix covering every key, so a
        // token allowed there may run any of the operations (per-op checks come with ACLs).
        let resource = ACLResource.keyPrefix(Self.commonPrefix(operations.map(\.key)))
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
            switch try await agent.apply(.txn(operations)) {
            case .txn(let outcome): return Self.response(outcome)
            case .refused(let message): throw .internalError(message)
            case .done, .applied: throw .internalError("unexpected result for a transaction")
            }
        }
    }

    // MARK: - Request body

    struct Parsed {
        var operations: [TxnOperation] = []
        /// Operations with an unknown verb or no operation at all, reported like state errors.
        var errors: [TxnError] = []
    }

    static func parse(_ body: [UInt8]) throws(APIError) -> Parsed {
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
            for other in ["Node", "Service", "Check", "Session"] where op.member(other).map({ !$0.isNull }) ?? false {
                throw .notImplemented("\(other) operations in transactions are not supported by this agent yet; only KV")
            }
            guard let kv = try op.object("KV") else {
                parsed.errors.append(TxnError(opIndex: position, what: "no operation specified"))
                parsed.operations.append(TxnOperation(verb: .get, key: ""))
                continue
            }
            let verbText = try kv.string("Verb") ?? ""
            let key = try kv.string("Key") ?? ""
            guard let verb = TxnOperation.Verb(rawValue: verbText) else {
                parsed.errors.append(TxnError(opIndex: position, what: "unknown KV verb \"\(verbText)\""))
                parsed.operations.append(TxnOperation(verb: .get, key: key))
                continue
            }
            let value = try Self.value(kv, position: position)
            guard value.count <= KVEndpoint.maxValueBytes else {
                throw .tooLarge("Value for key \"\(key)\" is too large (\(value.count) > \(KVEndpoint.maxValueBytes) bytes)")
            }
            parsed.operations.append(TxnOperation(
                verb: verb, key: key, value: value, flags: try Self.unsigned(kv, "Flags", position: position),
                index: try Self.unsigned(kv, "Index", position: position), session: try kv.string("Session") ?? ""))
        }
        return parsed
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

    private static func unsigned(_ kv: JSONBody, _ name: String, position: Int) throws(APIError) -> UInt64 {
        guard let member = kv.member(name), !member.isNull else { return 0 }
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
                        for entry in outcome.results {
                            list.object { $0.field("KV") { KVEndpoint.write(entry, into: &$0) } }
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
