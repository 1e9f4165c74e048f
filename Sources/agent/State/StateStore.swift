import ConsulCore

/// One version of the whole state: catalog, KV and sessions. A value: readers hold a version while
/// the FSM builds the next, and the tables (persistent maps) share everything that did not change.
///
/// Mutations are only called by `ConsulStateMachine` with the Raft index of the entry being applied;
/// they are deterministic, so every server that applies the same log holds the same state.
struct StateStore: Sendable {
    struct ServiceKey: Comparable, Sendable {
        var node: String
        var id: String
        static func < (lhs: ServiceKey, rhs: ServiceKey) -> Bool { (lhs.node, lhs.id) < (rhs.node, rhs.id) }
    }

    struct ServiceNameKey: Comparable, Sendable {
        var name: String
        var node: String
        var id: String
        static func < (lhs: ServiceNameKey, rhs: ServiceNameKey) -> Bool {
            (lhs.name, lhs.node, lhs.id) < (rhs.name, rhs.node, rhs.id)
        }
    }

    struct CheckKey: Comparable, Sendable {
        var node: String
        var id: String
        static func < (lhs: CheckKey, rhs: CheckKey) -> Bool { (lhs.node, lhs.id) < (rhs.node, rhs.id) }
    }

    struct CoordinateKey: Comparable, Hashable, Sendable {
        var node: String
        var segment: String
        static func < (lhs: CoordinateKey, rhs: CoordinateKey) -> Bool { (lhs.node, lhs.segment) < (rhs.node, rhs.segment) }
    }

    // The tables below are written only by `apply` (StateStore+Apply) and snapshot restore.

    /// Keyed by the lowercased node name: Consul looks node names up case-insensitively.
    var nodes = PersistentSortedMap<String, CatalogNode>()
    var services = PersistentSortedMap<ServiceKey, CatalogService>()
    /// Services by lowercased name, for `/v1/catalog/service/:name` and DNS.
    var servicesByName = PersistentSortedMap<ServiceNameKey, ServiceKey>()
    var checks = PersistentSortedMap<CheckKey, HealthCheck>()
    var kv = PersistentSortedMap<String, KVEntry>()
    var sessions = PersistentSortedMap<String, Session>()
    /// Set once through the operator API; nil: the servers' own `autopilot {}` settings apply.
    var autopilot: StoredAutopilotConfig?
    /// Keyed by lowercased node name, then segment.
    var coordinates = PersistentSortedMap<CoordinateKey, NodeCoordinate>()
    /// Prepared queries by ID.
    var preparedQueries = PersistentSortedMap<String, PreparedQuery>()
    /// The Raft index of the last change to each table.
    var tableIndexes = [UInt64](repeating: 0, count: StateTable.allCases.count)
    /// The index of the last applied entry (of any kind).
    var lastIndex: UInt64 = 0
    /// Keys whose locks the last applied command released by invalidating their session, with
    /// that session's lock-delay. Not state: the machine takes them after each apply (`LockDelays`).
    var releasedLocks: [(key: String, delay: Duration)] = []
    /// The datacenter records are registered in when a request names none.
    let datacenter: String

    init(datacenter: String) {
        self.datacenter = datacenter
    }

    func index(of table: StateTable) -> UInt64 { tableIndexes[table.rawValue] }

    /// The newest index among `tables`; never 0, since Consul clients treat 0 as "no index".
    func index(of tables: [StateTable]) -> UInt64 {
        max(tables.map { index(of: $0) }.max() ?? 0, 1)
    }

    mutating func touch(_ table: StateTable, at index: UInt64) {
        tableIndexes[table.rawValue] = index
        lastIndex = max(lastIndex, index)
    }

    mutating func noteApplied(_ index: UInt64) { lastIndex = max(lastIndex, index) }

    static func nodeKey(_ name: String) -> String { name.lowercased() }

    // MARK: - Restore from a snapshot (records keep their stored indexes)

    mutating func restoreNode(_ node: CatalogNode) { nodes.set(Self.nodeKey(node.name), node) }

    mutating func restoreService(_ service: CatalogService) {
        let key = ServiceKey(node: Self.nodeKey(service.node), id: service.id)
        services.set(key, service)
        servicesByName.set(ServiceNameKey(name: service.name.lowercased(), node: key.node, id: service.id), key)
    }

    mutating func restoreCheck(_ check: HealthCheck) { checks.set(CheckKey(node: Self.nodeKey(check.node), id: check.id), check) }
    mutating func restoreKV(_ entry: KVEntry) { kv.set(entry.key, entry) }
    mutating func restoreSession(_ session: Session) { sessions.set(session.id, session) }

    mutating func restoreCoordinate(_ row: NodeCoordinate) {
        coordinates.set(CoordinateKey(node: Self.nodeKey(row.node), segment: row.segment), row)
    }

    mutating func restorePreparedQuery(_ query: PreparedQuery) { preparedQueries.set(query.id, query) }

    mutating func restoreIndexes(_ indexes: [UInt64], last: UInt64) {
        tableIndexes = indexes
        lastIndex = last
    }

    // MARK: - Catalog reads

    func node(named name: String) -> CatalogNode? { nodes[Self.nodeKey(name)] }

    var allNodes: [CatalogNode] { nodes.values }

    func services(onNode name: String) -> [CatalogService] {
        let node = Self.nodeKey(name)
        var result: [CatalogService] = []
        services.forEach(from: ServiceKey(node: node, id: "")) { key, service in
            guard key.node == node else { return false }
            result.append(service)
            return true
        }
        return result
    }

    func service(onNode name: String, id: String) -> CatalogService? {
        services[ServiceKey(node: Self.nodeKey(name), id: id)]
    }

    /// Every instance of the service `name` (case-insensitive), ordered by node then ID.
    func serviceInstances(named name: String) -> [CatalogService] {
        let lowered = name.lowercased()
        var result: [CatalogService] = []
        servicesByName.forEach(from: ServiceNameKey(name: lowered, node: "", id: "")) { key, serviceKey in
            guard key.name == lowered else { return false }
            if let service = services[serviceKey] { result.append(service) }
            return true
        }
        return result
    }

    /// Service names with the union of their tags, as `/v1/catalog/services` lists them.
    var serviceNamesWithTags: [(name: String, tags: [String])] {
        var result: [(name: String, tags: [String])] = []
        var currentKey: String?
        var tags: [String] = []
        servicesByName.forEach { key, serviceKey in
            guard let service = services[serviceKey] else { return true }
            if key.name != currentKey {
                if currentKey != nil, let last = result.popLast() { result.append((last.name, tags)) }
                currentKey = key.name
                tags = []
                result.append((service.name, []))
            }
            for tag in service.tags where !tags.contains(tag) { tags.append(tag) }
            return true
        }
        if let last = result.popLast() { result.append((last.name, tags)) }
        return result
    }

    func checks(onNode name: String) -> [HealthCheck] {
        let node = Self.nodeKey(name)
        var result: [HealthCheck] = []
        checks.forEach(from: CheckKey(node: node, id: "")) { key, check in
            guard key.node == node else { return false }
            result.append(check)
            return true
        }
        return result
    }

    var allChecks: [HealthCheck] { checks.values }

    func checks(ofService name: String) -> [HealthCheck] {
        serviceInstances(named: name).flatMap { service in
            checks(onNode: service.node).filter { $0.serviceID == service.id }
        }
    }

    // MARK: - KV reads

    func kvEntry(_ key: String) -> KVEntry? { kv[key] }

    func kvEntries(prefix: String) -> [KVEntry] {
        var result: [KVEntry] = []
        kv.forEach(from: prefix) { key, entry in
            guard key.hasPrefix(prefix) else { return false }
            result.append(entry)
            return true
        }
        return result
    }

    /// Keys under `prefix`; with a separator, keys past the next separator are rolled up into one
    /// entry ending in it, as Consul's `?keys&separator=/` does.
    func kvKeys(prefix: String, separator: String?) -> [String] {
        var result: [String] = []
        kv.forEach(from: prefix) { key, _ in
            guard key.hasPrefix(prefix) else { return false }
            guard let separator, !separator.isEmpty else {
                result.append(key)
                return true
            }
            let rest = key.dropFirst(prefix.count)
            if let range = rest.range(of: separator) {
                let rolled = prefix + rest[..<range.upperBound]
                if result.last != rolled { result.append(rolled) }
            } else {
                result.append(key)
            }
            return true
        }
        return result
    }

    func session(_ id: String) -> Session? { sessions[id] }
    var allSessions: [Session] { sessions.values }
}
