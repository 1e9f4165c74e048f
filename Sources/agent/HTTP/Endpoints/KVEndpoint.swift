import ConsulCore

/// `/v1/kv/<key>`: get (one key, `?recurse`, `?keys` with `?separator`, `?raw`), put (`?flags`,
/// `?cas`, `?acquire`, `?release`) and delete (`?recurse`, `?cas`).
struct KVEndpoint {
    /// Consul's default `kv_max_value_size`.
    static let maxValueBytes = 512 * 1024

    let agent: AgentRuntime

    func route(_ request: APIRequest, key: String) throws(APIError) -> APIRoute {
        switch request.method {
        case "GET": return get(request, key: key)
        case "PUT", "POST": return try put(request, key: key)
        case "DELETE": return try delete(request, key: key)
        default: throw .methodNotAllowed("method \(request.method) not allowed")
        }
    }

    private func get(_ request: APIRequest, key: String) -> APIRoute {
        if request.has("keys") {
            let separator = request.query["separator"]
            return .read(.keyPrefix(key), tables: [.kv]) { store throws(APIError) in
                let keys = store.kvKeys(prefix: key, separator: separator)
                guard !keys.isEmpty else { return APIResponse(status: 404) }
                return .json { $0.strings(keys) }
            }
        }
        if request.has("recurse") {
            return .read(.keyPrefix(key), tables: [.kv]) { store throws(APIError) in
                let entries = store.kvEntries(prefix: key)
                guard !entries.isEmpty else { return APIResponse(status: 404) }
                return .json { writer in writer.array { for entry in entries { Self.write(entry, into: &$0) } } }
            }
        }
        let raw = request.has("raw")
        return .read(.key(key), tables: [.kv]) { store throws(APIError) in
            guard let entry = store.kvEntry(key) else { return APIResponse(status: 404) }
            if raw { return APIResponse(contentType: "text/plain; charset=utf-8", body: entry.value) }
            return .json { writer in writer.array { Self.write(entry, into: &$0) } }
        }
    }

    private func put(_ request: APIRequest, key: String) throws(APIError) -> APIRoute {
        guard !key.isEmpty else { throw .badRequest("Missing key name") }
        guard request.body.count <= Self.maxValueBytes else {
            throw .tooLarge("Request body(\(request.body.count) bytes) too large, max size: \(Self.maxValueBytes) bytes")
        }
        var flags: UInt64 = 0
        if let text = request.query["flags"], !text.isEmpty {
            guard let value = UInt64(text) else { throw .badRequest("Invalid flags: \(text)") }
            flags = value
        }
        let verb: StateCommand.KVVerb
        if let text = request.query["cas"] {
            guard let index = UInt64(text) else { throw .badRequest("Invalid cas index: \(text)") }
            verb = .cas(index)
        } else if let session = request.query["acquire"] {
            guard !session.isEmpty else { throw .badRequest("Missing session for acquire") }
            verb = .lock(session: session)
        } else if let session = request.query["release"] {
            guard !session.isEmpty else { throw .badRequest("Missing session for release") }
            verb = .unlock(session: session)
        } else {
            verb = .set
        }
        let operation = StateCommand.KVOperation(verb: verb, key: key, value: request.body, flags: flags)
        let agent = self.agent
        // Consul checks the lock-delay on the leader, before proposing: the acquire just fails.
        let refusal: (@Sendable () -> APIResponse?)? = {
            guard case .lock = verb else { return nil }
            return { agent.lockDelays.isDelayed(key) ? .bool(false) : nil }
        }()
        return .propose(.key(key), .kv(operation), refusal: refusal, answer: Self.answer)
    }

    private func delete(_ request: APIRequest, key: String) throws(APIError) -> APIRoute {
        let verb: StateCommand.KVVerb
        if request.has("recurse") {
            verb = .deleteTree
        } else if let text = request.query["cas"] {
            guard let index = UInt64(text) else { throw .badRequest("Invalid cas index: \(text)") }
            verb = .deleteCAS(index)
        } else {
            guard !key.isEmpty else { throw .badRequest("Missing key name") }
            verb = .delete
        }
        let operation = StateCommand.KVOperation(verb: verb, key: key)
        let agent = self.agent
        let resource: ACLResource = verb == .deleteTree ? .keyPrefix(key) : .key(key)
        return .propose(resource, .kv(operation), answer: Self.answer)
    }

    /// KV writes answer `true`/`false` as JSON, like Consul.
    private static func answer(_ result: StateCommandResult) throws(APIError) -> APIResponse {
        switch result {
        case .done: return .true
        case .applied(let applied): return .bool(applied)
        case .refused(let message): throw .internalError(message)
        case .txn: throw .internalError("unexpected transaction result for a KV write")
        }
    }

    static func write(_ entry: KVEntry, into writer: inout JSONWriter) {
        writer.object { w in
            w.field("LockIndex") { $0.int(entry.lockIndex) }
            w.field("Key") { $0.string(entry.key) }
            w.field("Flags") { $0.int(entry.flags) }
            w.field("Value") { entry.value.isEmpty ? $0.null() : $0.base64(entry.value) }
            if let session = entry.session { w.field("Session") { $0.string(session) } }
            w.field("CreateIndex") { $0.int(entry.indexes.createIndex) }
            w.field("ModifyIndex") { $0.int(entry.indexes.modifyIndex) }
        }
    }
}
