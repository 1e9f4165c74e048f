import ConsulCore
import Foundation

/// `/v1/session/create|destroy|renew|info|node|list`. TTL expiry is a leader duty
/// (`SessionTimers`): a session not renewed within twice its TTL is destroyed, as in Consul.
struct SessionEndpoint {
    /// Consul's bounds on a session TTL.
    static let minTTL: Duration = .seconds(10)
    static let maxTTL: Duration = .seconds(86_400)

    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        let (verb, argument) = APIRouter.split(tail)
        let id = String(argument)
        let agent = self.agent
        switch verb {
        case "create":
            try APIRouter.requireMethod(request, "PUT")
            let session = try Self.session(from: request.body, defaultNode: agent.nodeName)
            return .write(.session(session.node)) { () async throws(APIError) -> APIResponse in
                if case .refused(let message) = try await agent.apply(.createSession(session)) { throw .internalError(message) }
                agent.sessionTimers.renewed(session.id, ttl: session.ttl)
                return .json { w in w.object { $0.field("ID") { $0.string(session.id) } } }
            }
        case "destroy":
            try APIRouter.requireMethod(request, "PUT")
            guard !id.isEmpty else { throw .badRequest("Missing session") }
            return .write(.session(id)) { () async throws(APIError) -> APIResponse in
                _ = try await agent.apply(.destroySession(id: id))
                agent.sessionTimers.forget(id)
                return .true
            }
        case "renew":
            try APIRouter.requireMethod(request, "PUT")
            guard !id.isEmpty else { throw .badRequest("Missing session") }
            return .read(.session(id), tables: [.sessions]) { store throws(APIError) in
                guard let session = store.session(id) else { return .text("Session id '\(id)' not found", status: 404) }
                agent.sessionTimers.renewed(id, ttl: session.ttl)
                return .json { w in w.array { Self.write(session, into: &$0) } }
            }
        case "info":
            try APIRouter.requireMethod(request, "GET")
            guard !id.isEmpty else { throw .badRequest("Missing session") }
            return .read(.session(id), tables: [.sessions]) { store throws(APIError) in
                guard let session = store.session(id) else { return .json { $0.null() } }
                return .json { w in w.array { Self.write(session, into: &$0) } }
            }
        case "node":
            try APIRouter.requireMethod(request, "GET")
            guard !id.isEmpty else { throw .badRequest("Missing node name") }
            return .read(.filteredList, tables: [.sessions]) { store throws(APIError) in
                let sessions = store.allSessions.filter { $0.node.lowercased() == id.lowercased() }
                return .json { w in w.array { for session in sessions { Self.write(session, into: &$0) } } }
            }
        case "list":
            try APIRouter.requireMethod(request, "GET")
            return .read(.filteredList, tables: [.sessions]) { store throws(APIError) in
                .json { w in w.array { for session in store.allSessions { Self.write(session, into: &$0) } } }
            }
        default:
            throw .notFound("404 page not found")
        }
    }

    /// Reads a create body with Consul's defaults (node: this agent; checks: serfHealth; lock
    /// delay 15s; behavior release) and its validation messages.
    static func session(from body: [UInt8], defaultNode: String) throws(APIError) -> Session {
        let json = body.isEmpty ? JSONBody(.object(ConfigObject())) : try JSONBody.parse(body)
        // Go decodes `null` into the defaults and refuses any other JSON that is not an object
        // (a list body must not quietly create a default session).
        guard json.isObject() || json.value.isNull else { throw .badRequest("Request decode failed: the body must be a JSON object") }
        var lockDelay: Duration = .seconds(15)
        if let member = json.member("LockDelay"), !member.isNull {
            if let text = member.stringValue {
                guard let parsed = try? GoDuration.parse(text) else { throw .badRequest("Request decode failed: invalid LockDelay \"\(text)\"") }
                lockDelay = parsed
            } else if let nanoseconds = member.integerValue {
                // Consul reads a bare number below one second as seconds, else as nanoseconds.
                lockDelay = nanoseconds < 1_000_000_000 ? .seconds(nanoseconds) : .nanoseconds(nanoseconds)
            } else {
                throw .badRequest("Request decode failed: LockDelay must be a duration")
            }
        }
        let behaviorText = try json.string("Behavior") ?? "release"
        guard let behavior = SessionBehavior(rawValue: behaviorText.isEmpty ? "release" : behaviorText) else {
            throw .badRequest("Invalid Behavior setting '\(behaviorText)'")
        }
        let ttl = try json.string("TTL") ?? ""
        if !ttl.isEmpty {
            guard let parsed = try? GoDuration.parse(ttl) else { throw .badRequest("Request decode failed: invalid TTL \"\(ttl)\"") }
            guard parsed >= minTTL, parsed <= maxTTL else {
                throw .badRequest("Invalid Session TTL '\(ttl)', must be between [\(GoDuration.format(minTTL))-\(GoDuration.format(maxTTL))]")
            }
        }
        // Consul's default is the serfHealth check; an explicit empty list means no checks.
        var checks = ["serfHealth"]
        if let given = try json.strings("NodeChecks") {
            checks = given
        } else if let given = try json.strings("Checks") {
            checks = given
        }
        let node = try json.string("Node").flatMap { $0.isEmpty ? nil : $0 } ?? defaultNode
        return Session(
            id: UUID().uuidString.lowercased(), name: try json.string("Name") ?? "", node: node, nodeChecks: checks,
            lockDelay: lockDelay, behavior: behavior, ttl: ttl, indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
    }

    static func write(_ session: Session, into writer: inout JSONWriter) {
        writer.object { w in
            w.field("ID") { $0.string(session.id) }
            w.field("Name") { $0.string(session.name) }
            w.field("Node") { $0.string(session.node) }
            w.field("LockDelay") { $0.int(session.lockDelay.totalNanoseconds) }
            w.field("Behavior") { $0.string(session.behavior.rawValue) }
            w.field("TTL") { $0.string(session.ttl) }
            w.field("NodeChecks") { $0.strings(session.nodeChecks) }
            w.field("ServiceChecks") { $0.null() }
            w.field("CreateIndex") { $0.int(session.indexes.createIndex) }
            w.field("ModifyIndex") { $0.int(session.indexes.modifyIndex) }
        }
    }
}
