import ConsulCore

/// What the catalog holds about this node: the servers' copy of the agent's local state.
struct RemoteNodeState: Equatable, Sendable {
    var node: CatalogNode?
    var services: [String: CatalogService] = [:]
    var checks: [String: HealthCheck] = [:]
}

/// This node's own record as the agent wants it in the catalog.
struct LocalNodeInfo: Equatable, Sendable {
    var id: String
    var name: String
    var address: String
    var taggedAddresses: [String: String]
    var meta: [String: String]
}

/// One write that brings the catalog closer to the local state.
enum SyncOperation: Equatable, Sendable {
    case registerNode
    /// A service goes with all of its checks, as Consul syncs them.
    case registerService(CatalogService, checks: [HealthCheck])
    case registerCheck(HealthCheck)
    case deregisterService(String)
    case deregisterCheck(String)
}

/// Consul's anti-entropy, as a pure decision: compare what the agent has with what the catalog
/// has for this node and list the writes that make them agree. The agent is the authority for its
/// own services and checks, so catalog edits to them are written back, and services and checks
/// the agent does not have are removed (except what the leader manages: `serfHealth` and the
/// servers' `consul` service).
enum AntiEntropy {
    static let serfCheckID = "serfHealth"
    static let consulServiceID = "consul"

    /// Consul's `check_update_interval` default: a check whose output alone changed is written at
    /// most this often (status changes go at once).
    static let defaultCheckUpdateInterval: Duration = .seconds(300)
    /// Consul's base interval of the periodic full sync, scaled up for large clusters.
    static let baseFullSyncInterval: Duration = .seconds(60)

    struct Plan: Equatable, Sendable {
        var operations: [SyncOperation] = []
        /// Services with `enable_tag_override` whose catalog tags differ: the catalog's win.
        var adoptedTags: [String: [String]] = [:]
        /// When a check's held-back output change becomes due.
        var nextDeferredSync: Timestamp?
    }

    struct Input: Sendable {
        var node: LocalNodeInfo
        var services: [CatalogService]
        var checks: [HealthCheck]
        var remote: RemoteNodeState
        var now: Timestamp
        var checkUpdateInterval: Duration = defaultCheckUpdateInterval
        /// When each check's output was last written to the catalog.
        var outputSyncedAt: [String: Timestamp] = [:]
    }

    static func plan(_ input: Input) -> Plan {
        var plan = Plan()
        let remote = input.remote
        let localServices = Dictionary(input.services.map { ($0.id, $0) }) { first, _ in first }
        let localChecks = Dictionary(input.checks.map { ($0.id, $0) }) { first, _ in first }

        // Removals first, as Consul does: what the catalog has and the agent does not.
        var removedServices = Set<String>()
        for id in remote.services.keys.sorted() where localServices[id] == nil && id != consulServiceID {
            plan.operations.append(.deregisterService(id))
            removedServices.insert(id)
        }
        for id in remote.checks.keys.sorted() where localChecks[id] == nil && id != serfCheckID {
            guard let check = remote.checks[id], !removedServices.contains(check.serviceID) else { continue }
            plan.operations.append(.deregisterCheck(id))
        }

        if !nodeInSync(input.node, remote.node) { plan.operations.append(.registerNode) }

        var registeredWithService = Set<String>()
        for var service in input.services.sorted(by: { $0.id < $1.id }) {
            let existing = remote.services[service.id]
            if let existing, service.enableTagOverride, existing.tags != service.tags {
                plan.adoptedTags[service.id] = existing.tags
                service.tags = existing.tags
            }
            guard existing.map({ !sameService(service, $0) }) ?? true else { continue }
            let checks = input.checks.filter { $0.serviceID == service.id }.sorted { $0.id < $1.id }
            plan.operations.append(.registerService(service, checks: checks))
            registeredWithService.formUnion(checks.map(\.id))
        }

        for check in input.checks.sorted(by: { $0.id < $1.id }) where !registeredWithService.contains(check.id) {
            guard let existing = remote.checks[check.id] else {
                plan.operations.append(.registerCheck(check))
                continue
            }
            if !sameCheckIgnoringOutput(check, existing) {
                plan.operations.append(.registerCheck(check))
            } else if check.output != existing.output {
                // Output alone changed: held back until the update interval has passed since the
                // last write, so chatty checks do not flood Raft.
                let due = input.outputSyncedAt[check.id].map { $0 + input.checkUpdateInterval } ?? input.now
                if due <= input.now {
                    plan.operations.append(.registerCheck(check))
                } else {
                    plan.nextDeferredSync = min(plan.nextDeferredSync ?? due, due)
                }
            }
        }
        return plan
    }

    /// The catalog as it is after `operation` succeeded (the sync loop's cached view).
    static func applying(_ operation: SyncOperation, to remote: RemoteNodeState, node: LocalNodeInfo) -> RemoteNodeState {
        var remote = remote
        let zero = RaftIndexes(createIndex: 0, modifyIndex: 0)
        switch operation {
        case .registerNode:
            remote.node = CatalogNode(
                id: node.id, name: node.name, address: node.address, datacenter: remote.node?.datacenter ?? "",
                taggedAddresses: node.taggedAddresses, meta: node.meta, indexes: zero)
        case .registerService(let service, let checks):
            remote.services[service.id] = service
            for check in checks { remote.checks[check.id] = check }
        case .registerCheck(let check):
            remote.checks[check.id] = check
        case .deregisterService(let id):
            remote.services[id] = nil
            for (checkID, check) in remote.checks where check.serviceID == id { remote.checks[checkID] = nil }
        case .deregisterCheck(let id):
            remote.checks[id] = nil
        }
        return remote
    }

    /// Consul's scaling of the periodic full sync: the base interval up to 128 nodes, then one
    /// more multiple per doubling, so large clusters do not hammer the servers.
    static func fullSyncInterval(clusterSize: Int) -> Duration {
        let threshold = 128
        guard clusterSize > threshold else { return baseFullSyncInterval }
        var factor = 1
        var size = threshold
        while size < clusterSize {
            size *= 2
            factor += 1
        }
        return baseFullSyncInterval * factor
    }

    static func nodeInSync(_ node: LocalNodeInfo, _ remote: CatalogNode?) -> Bool {
        guard let remote else { return false }
        return remote.address == node.address && remote.meta == node.meta && (remote.id.isEmpty || node.id.isEmpty || remote.id == node.id)
    }

    static func sameService(_ a: CatalogService, _ b: CatalogService) -> Bool {
        a.id == b.id && a.name == b.name && a.tags == b.tags && a.address == b.address && a.port == b.port && a.meta == b.meta
            && a.weights == b.weights && a.enableTagOverride == b.enableTagOverride
    }

    /// The fields the agent owns; the catalog fills in the service's name and tags itself.
    static func sameCheckIgnoringOutput(_ a: HealthCheck, _ b: HealthCheck) -> Bool {
        a.id == b.id && a.name == b.name && a.status == b.status && a.notes == b.notes && a.serviceID == b.serviceID
            && a.type == b.type && a.interval == b.interval && a.timeout == b.timeout
    }
}
