import ConsulCore
import ConsulCrypto
import Gossip

/// `/v1/operator/keyring`: list (GET), install (POST), use (PUT) and remove (DELETE) gossip keys
/// across the LAN pool, through serf's internal key queries. Each member's gossip layer applies
/// the change and rewrites its `serf/local.keyring`. Only servers take these (as in Consul); this
/// edition has no WAN pool yet, so the answer holds the LAN pool alone.
struct KeyringEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest) throws(APIError) -> APIRoute {
        let operation: SerfKeyOperation
        switch request.method {
        case "GET": operation = .list
        case "POST": operation = .install
        case "PUT": operation = .use
        case "DELETE": operation = .remove
        default: throw .methodNotAllowed("method \(request.method) not allowed")
        }
        var key: String?
        if operation != .list {
            let body = try JSONBody.parse(request.body)
            guard body.isObject() else { throw .badRequest("Request decode failed: the body must be an object like {\"Key\": \"...\"}") }
            let text = try body.string("Key") ?? ""
            // Checked here so a bad key is a 400 naming the problem, not a failure from every member.
            do {
                key = try GossipKey(base64: text).base64
            } catch {
                throw .badRequest("Invalid key: \(error)")
            }
        }
        if let relay = request.query["relay-factor"], !relay.isEmpty {
            guard let factor = Int(relay) else { throw .badRequest("Error parsing relay factor: strconv.Atoi: parsing \"\(relay)\": invalid syntax") }
            guard (0...5).contains(factor) else { throw .badRequest("Invalid relay-factor: Relay factor must be in range: [0, 5]") }
            // Accepted for compatibility; serf's relayed answers are not used by this agent.
        }
        if let local = request.query["local-only"], !local.isEmpty {
            guard let value = GoBool.parse(local) else { throw .badRequest("Error parsing local-only: strconv.ParseBool: parsing \"\(local)\": invalid syntax") }
            if value && operation != .list { throw .badRequest("Invalid use of local-only: local-only can only be set for list requests") }
        }
        let agent = self.agent, keyText = key
        let perform: @Sendable () async throws(APIError) -> APIResponse = { () async throws(APIError) -> APIResponse in
            guard agent.raft != nil else { throw .internalError("keyring operations must run against a server node") }
            guard let lan = agent.lan else { throw .internalError("keyring operations need the LAN gossip pool, which is not running") }
            let result: SerfKeyOperationResult
            do {
                result = try await lan.node.keyOperation(operation, key: keyText)
            } catch {
                throw .internalError("\(error)")
            }
            if let failure = Self.failure(result, datacenter: agent.datacenter) { throw .internalError(failure) }
            guard operation == .list else { return APIResponse() }
            return .json { writer in writer.array { Self.write(result, datacenter: agent.datacenter, into: &$0) } }
        }
        return APIRoute(
            action: .agentOperation(perform), isWrite: operation != .list, resource: .keyring,
            access: operation == .list ? .read : .write)
    }

    /// Consul's error text: the pool's summary, then each member's message, as Go's multierror
    /// prints a list (`1 error occurred:` / `\t* ...`).
    static func failure(_ result: SerfKeyOperationResult, datacenter: String) -> String? {
        guard let summary = result.failure else { return nil }
        let lines = ["\(datacenter) (LAN) error: \(summary)"] + result.messages.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
        let header = lines.count == 1 ? "1 error occurred:" : "\(lines.count) errors occurred:"
        return header + "\n" + lines.map { "\t* \($0)" }.joined(separator: "\n") + "\n\n"
    }

    /// One pool's entry of the list answer (Consul's `KeyringResponse`).
    static func write(_ result: SerfKeyOperationResult, datacenter: String, into writer: inout JSONWriter) {
        func counts(_ map: [String: Int], _ writer: inout JSONWriter) {
            writer.object { w in
                for key in map.keys.sorted() { w.field(dynamic: key) { $0.int(map[key]!) } }
            }
        }
        writer.object { w in
            w.field("WAN") { $0.bool(false) }
            w.field("Datacenter") { $0.string(datacenter) }
            w.field("Segment") { $0.string("") }
            if !result.messages.isEmpty { w.field("Messages") { writer in writer.stringMap(result.messages) } }
            w.field("Keys") { counts(result.keys, &$0) }
            w.field("PrimaryKeys") { counts(result.primaryKeys, &$0) }
            w.field("NumNodes") { $0.int(result.nodes) }
        }
    }
}
