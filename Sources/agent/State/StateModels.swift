/// The catalog's and KV store's records, as Consul models them. Field names follow Consul's JSON
/// so the HTTP layer maps them one to one. Every record carries the Raft indexes it was created and
/// last modified at, which is what `X-Consul-Index` and CAS operate on.

struct RaftIndexes: Equatable, Sendable {
    var createIndex: UInt64
    var modifyIndex: UInt64
}

struct CatalogNode: Equatable, Sendable {
    /// The node's UUID; may be empty for nodes registered through the catalog API without one.
    var id: String
    var name: String
    var address: String
    var datacenter: String
    var taggedAddresses: [String: String]
    var meta: [String: String]
    var indexes: RaftIndexes
}

struct ServiceWeights: Equatable, Sendable {
    var passing = 1
    var warning = 1
}

struct CatalogService: Equatable, Sendable {
    var node: String
    var id: String
    var name: String
    var tags: [String]
    var address: String
    var port: Int
    var meta: [String: String]
    var weights: ServiceWeights
    var enableTagOverride: Bool
    var indexes: RaftIndexes
}

enum HealthStatus: String, Equatable, Sendable, CaseIterable {
    case passing, warning, critical, maintenance

    /// Consul's aggregation order: critical beats warning beats passing (maintenance counts as critical).
    var severity: Int {
        switch self {
        case .passing: return 0
        case .warning: return 1
        case .critical, .maintenance: return 2
        }
    }
}

struct HealthCheck: Equatable, Sendable {
    var node: String
    var id: String
    var name: String
    var status: HealthStatus
    var notes: String
    var output: String
    var serviceID: String
    var serviceName: String
    var serviceTags: [String]
    /// `serf`, `http`, `tcp`, `ttl`, ... ; empty for checks registered without one.
    var type: String
    var interval: String
    var timeout: String
    var indexes: RaftIndexes
}

struct KVEntry: Equatable, Sendable {
    var key: String
    var flags: UInt64
    var value: [UInt8]
    /// How many times the key's lock has been acquired.
    var lockIndex: UInt64
    /// The session holding the lock, if any.
    var session: String?
    var indexes: RaftIndexes
}

enum SessionBehavior: String, Equatable, Sendable {
    case release, delete
}

struct Session: Equatable, Sendable {
    var id: String
    var name: String
    var node: String
    /// Node checks whose failure invalidates the session (Consul's default: serfHealth).
    var nodeChecks: [String]
    var lockDelay: Duration
    var behavior: SessionBehavior
    /// "" or a Go duration string as given ("10s"), as Consul echoes it.
    var ttl: String
    var indexes: RaftIndexes
}

/// The tables of the state store; each keeps the index of its last change, so a blocking query
/// waits only on the tables it reads.
enum StateTable: Int, CaseIterable, Sendable {
    case nodes, services, checks, kv, sessions
    /// The autopilot configuration set through `/v1/operator/autopilot/configuration`.
    case autopilot
    /// Network coordinates of nodes (`/v1/coordinate/*`).
    case coordinates
    /// Prepared queries (`/v1/query`).
    case preparedQueries
}
