import ConsulCore
import Raft

/// A prepared query (`/v1/query`), as Consul stores it. Queries live in the replicated state so
/// every server of the datacenter executes the same definition.
struct PreparedQuery: Equatable, Sendable {
    var id: String
    /// Unique (case-insensitive) among named queries; "" for queries only reachable by ID.
    var name: String
    /// When set, the query is deleted with this session (Consul ties the query's life to it).
    var session: String
    /// The token the query runs with; stored and shown, not enforced while ACLs are off.
    var token: String
    var service: PreparedQueryService
    var dnsTTL: String
    /// Nil for an ordinary query; set for a `name_prefix_match` template.
    var template: PreparedQueryTemplate?
    var indexes: RaftIndexes
}

struct PreparedQueryService: Equatable, Sendable {
    var service: String
    /// Accepted and stored as Consul takes it. Failing over to other datacenters needs WAN
    /// federation, which this edition does not have yet: execution only ever looks here.
    var failoverNearestN: Int = 0
    var failoverDatacenters: [String] = []
    var onlyPassing = false
    var ignoreCheckIDs: [String] = []
    var near = ""
    /// Required tags; `!tag` excludes instances carrying `tag`. Compared case-insensitively.
    var tags: [String] = []
    var nodeMeta: [String: String] = [:]
    var serviceMeta: [String: String] = [:]
}

struct PreparedQueryTemplate: Equatable, Sendable {
    /// Only `name_prefix_match` exists in Consul.
    var type: String
    var regexp: String
    var removeEmptyTags: Bool
}

extension PreparedQuery {
    func encode(into writer: inout ByteWriter) {
        writer.text(id); writer.text(name); writer.text(session); writer.text(token)
        writer.text(service.service); writer.u32(UInt32(truncatingIfNeeded: service.failoverNearestN)); writer.texts(service.failoverDatacenters)
        writer.flag(service.onlyPassing); writer.texts(service.ignoreCheckIDs); writer.text(service.near); writer.texts(service.tags)
        writer.textMap(service.nodeMeta); writer.textMap(service.serviceMeta)
        writer.text(dnsTTL)
        writer.flag(template != nil); writer.text(template?.type ?? ""); writer.text(template?.regexp ?? ""); writer.flag(template?.removeEmptyTags ?? false)
        writer.indexes(indexes)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> PreparedQuery {
        let id = try reader.text(), name = try reader.text(), session = try reader.text(), token = try reader.text()
        let service = PreparedQueryService(
            service: try reader.text(), failoverNearestN: Int(try reader.u32()), failoverDatacenters: try reader.texts(),
            onlyPassing: try reader.flag(), ignoreCheckIDs: try reader.texts(), near: try reader.text(), tags: try reader.texts(),
            nodeMeta: try reader.textMap(), serviceMeta: try reader.textMap())
        let ttl = try reader.text()
        let hasTemplate = try reader.flag()
        let template = PreparedQueryTemplate(type: try reader.text(), regexp: try reader.text(), removeEmptyTags: try reader.flag())
        return PreparedQuery(
            id: id, name: name, session: session, token: token, service: service, dnsTTL: ttl,
            template: hasTemplate ? template : nil, indexes: try reader.indexes())
    }
}
