import ConsulCore
import Foundation

/// `/v1/query` (create, list), `/v1/query/:id` (read, update, delete) and
/// `/v1/query/:id-or-name/execute|explain`, within this datacenter. Definitions are replicated
/// state, so writes go through Raft on the leader like every other write.
struct PreparedQueryEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        let agent = self.agent
        let (first, rest) = APIRouter.split(tail)
        let id = String(first)
        if id.isEmpty {
            switch request.method {
            case "POST", "PUT":
                // The body's Token only: storing the caller's own token would hand it to everyone
                // who executes the query (Consul runs an empty Token with the executor's).
                var query = try Self.query(from: request.body)
                query.id = UUID().uuidString.lowercased()
                let created = query
                return .write(.query(query.name)) { () async throws(APIError) -> APIResponse in
                    try Self.check(try await agent.apply(.setPreparedQuery(created, isUpdate: false)))
                    return .json { w in w.object { $0.field("ID") { $0.string(created.id) } } }
                }
            case "GET":
                // Listing answers for everyone; the ACL gate filters the items once ACLs exist.
                return .read(.filteredList, tables: [.preparedQueries]) { store throws(APIError) in
                    let queries = store.allPreparedQueries
                    return .json { w in w.array { for query in queries { Self.write(query, into: &$0) } } }
                }
            default:
                throw .methodNotAllowed("method \(request.method) not allowed")
            }
        }
        switch rest {
        case "":
            switch request.method {
            case "GET":
                return .read(.filteredList, tables: [.preparedQueries]) { store throws(APIError) in
                    guard let query = store.preparedQuery(id: id) else { throw .notFound(StateStore.preparedQueryNotFound) }
                    return .json { w in w.array { Self.write(query, into: &$0) } }
                }
            case "PUT", "POST":
                var query = try Self.query(from: request.body)
                query.id = id
                let updated = query
                return .write(.query(query.name)) { () async throws(APIError) -> APIResponse in
                    try Self.check(try await agent.apply(.setPreparedQuery(updated, isUpdate: true)))
                    return APIResponse()
                }
            case "DELETE":
                return .write(.query(id)) { () async throws(APIError) -> APIResponse in
                    try Self.check(try await agent.apply(.deletePreparedQuery(id: id)))
                    return APIResponse()
                }
            default:
                throw .methodNotAllowed("method \(request.method) not allowed")
            }
        case "execute":
            try APIRouter.requireMethod(request, "GET")
            var near = request.query["near"] ?? ""
            if near == "_agent" { near = agent.nodeName }
            var limit: Int?
            if let text = request.query["limit"] {
                guard let value = Int(text), value >= 0 else { throw .badRequest("Bad limit: \(text)") }
                limit = value
            }
            let datacenter = agent.datacenter
            return .read(.filteredList, tables: [.preparedQueries, .nodes, .services, .checks, .coordinates]) { [limit, near] store throws(APIError) in
                guard let query = store.preparedQuery(resolving: id) else { throw .notFound(StateStore.preparedQueryNotFound) }
                var random = SystemRandomNumberGenerator()
                let result = PreparedQueryExecutor.execute(query, lookupName: id, in: store, near: near, limit: limit, random: &random)
                return .json { Self.writeExecution(result, datacenter: datacenter, into: &$0) }
            }
        case "explain":
            try APIRouter.requireMethod(request, "GET")
            return .read(.filteredList, tables: [.preparedQueries]) { store throws(APIError) in
                guard let query = store.preparedQuery(resolving: id) else { throw .notFound(StateStore.preparedQueryNotFound) }
                let rendered = PreparedQueryExecutor.render(query, for: id)
                return .json { w in w.object { o in o.field("Query") { Self.write(rendered, into: &$0) } } }
            }
        default:
            throw .notFound("404 page not found")
        }
    }

    /// A refusal from the state: unknown IDs are 404, everything else (name taken, unknown
    /// session) is the client's mistake, 400, with Consul's message.
    static func check(_ result: StateCommandResult) throws(APIError) {
        guard case .refused(let message) = result else { return }
        if message.hasPrefix(StateStore.preparedQueryNotFound) { throw .notFound(message) }
        throw .badRequest(message)
    }

    /// Reads a create or update body, with Consul's validation messages. Field names match
    /// case-insensitively (py-consul sends them lowercased).
    static func query(from body: [UInt8]) throws(APIError) -> PreparedQuery {
        guard !body.isEmpty else { throw .badRequest("Request decode failed: missing request body") }
        let json = try JSONBody.parse(body)
        guard json.isObject() else { throw .badRequest("Request decode failed: body must be a JSON object") }
        var service = PreparedQueryService(service: "")
        if let given = try json.object("Service") {
            service.service = try given.string("Service") ?? ""
            if let failover = try given.object("Failover") {
                service.failoverNearestN = try failover.int("NearestN") ?? 0
                service.failoverDatacenters = try failover.strings("Datacenters") ?? []
            }
            service.onlyPassing = try given.bool("OnlyPassing") ?? false
            service.ignoreCheckIDs = try given.strings("IgnoreCheckIDs") ?? []
            service.near = try given.string("Near") ?? ""
            service.tags = try given.strings("Tags") ?? []
            service.nodeMeta = try given.stringMap("NodeMeta") ?? [:]
            service.serviceMeta = try given.stringMap("ServiceMeta") ?? [:]
        }
        guard !service.service.isEmpty else { throw .badRequest("Must provide a Service name to query") }
        guard service.failoverNearestN >= 0 else { throw .badRequest("Bad NearestN '\(service.failoverNearestN)', must be >= 0") }

        var ttl = ""
        if let dns = try json.object("DNS"), let member = dns.member("TTL"), !member.isNull {
            if let text = member.stringValue {
                ttl = text
            } else if let seconds = member.integerValue {
                // py-consul sends a number of seconds; Consul's field is a duration string.
                ttl = "\(seconds)s"
            } else {
                throw .badRequest("Request decode failed: DNS.TTL must be a duration")
            }
            if !ttl.isEmpty {
                guard let parsed = try? GoDuration.parse(ttl) else { throw .badRequest("Bad DNS TTL '\(ttl)': not a duration") }
                guard parsed >= .zero else { throw .badRequest("DNS TTL '\(ttl)', must be >=0") }
            }
        }

        var template: PreparedQueryTemplate?
        if let given = try json.object("Template") {
            let type = try given.string("Type") ?? ""
            let regexp = try given.string("Regexp") ?? ""
            switch type {
            case "": break
            case "name_prefix_match":
                if !regexp.isEmpty {
                    do { _ = try Regex(regexp) } catch { throw .badRequest("Bad Regexp: \(error)") }
                }
                template = PreparedQueryTemplate(type: type, regexp: regexp, removeEmptyTags: try given.bool("RemoveEmptyTags") ?? false)
            default:
                throw .badRequest("Bad Template.Type '\(type)'")
            }
        }
        return PreparedQuery(
            id: "", name: try json.string("Name") ?? "", session: try json.string("Session") ?? "", token: try json.string("Token") ?? "",
            service: service, dnsTTL: ttl, template: template, indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
    }

    /// Consul's `PreparedQuery` JSON.
    static func write(_ query: PreparedQuery, into writer: inout JSONWriter) {
        writer.object { w in
            w.field("ID") { $0.string(query.id) }
            w.field("Name") { $0.string(query.name) }
            w.field("Session") { $0.string(query.session) }
            w.field("Token") { $0.string(query.token) }
            w.field("Template") { t in
                t.object { o in
                    o.field("Type") { $0.string(query.template?.type ?? "") }
                    o.field("Regexp") { $0.string(query.template?.regexp ?? "") }
                    o.field("RemoveEmptyTags") { $0.bool(query.template?.removeEmptyTags ?? false) }
                }
            }
            w.field("Service") { s in
                s.object { o in
                    let service = query.service
                    o.field("Service") { $0.string(service.service) }
                    o.field("Failover") { f in
                        f.object { fo in
                            fo.field("NearestN") { $0.int(service.failoverNearestN) }
                            fo.field("Datacenters") { nullableStrings(service.failoverDatacenters, into: &$0) }
                        }
                    }
                    o.field("OnlyPassing") { $0.bool(service.onlyPassing) }
                    o.field("IgnoreCheckIDs") { nullableStrings(service.ignoreCheckIDs, into: &$0) }
                    o.field("Near") { $0.string(service.near) }
                    o.field("Tags") { nullableStrings(service.tags, into: &$0) }
                    o.field("NodeMeta") { nullableMap(service.nodeMeta, into: &$0) }
                    o.field("ServiceMeta") { nullableMap(service.serviceMeta, into: &$0) }
                }
            }
            w.field("DNS") { d in d.object { $0.field("TTL") { $0.string(query.dnsTTL) } } }
            w.field("CreateIndex") { $0.int(query.indexes.createIndex) }
            w.field("ModifyIndex") { $0.int(query.indexes.modifyIndex) }
        }
    }

    /// The answer of `execute`. `Failovers` is always 0: other datacenters are not reachable yet.
    static func writeExecution(_ result: PreparedQueryExecutor.Result, datacenter: String, into writer: inout JSONWriter) {
        writer.object { w in
            w.field("Service") { $0.string(result.query.service.service) }
            w.field("Nodes") { HealthEndpoint.write(result.nodes, into: &$0) }
            w.field("DNS") { d in d.object { $0.field("TTL") { $0.string(result.query.dnsTTL) } } }
            w.field("Datacenter") { $0.string(datacenter) }
            w.field("Failovers") { $0.int(0) }
        }
    }

    /// Go encodes nil slices and maps as null; Consul's stored queries show unset ones that way.
    private static func nullableStrings(_ values: [String], into writer: inout JSONWriter) {
        if values.isEmpty { writer.null() } else { writer.strings(values) }
    }

    private static func nullableMap(_ values: [String: String], into writer: inout JSONWriter) {
        if values.isEmpty { writer.null() } else { writer.stringMap(values) }
    }
}
