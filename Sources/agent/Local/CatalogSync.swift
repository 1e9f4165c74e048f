import ConsulCore

/// Anti-entropy's shell: reads this node's entry from the catalog, asks `AntiEntropy` what to
/// write, and writes it through the agent's own request path (`/v1/catalog/register` and
/// `/deregister`, which the forwarder sends to the leader), so a client agent and a server sync
/// the same way and every write meets the same ACL gate.
///
/// Runs when the local state changes (at once), every second against its cached copy of the
/// catalog (held-back output changes), and every full-sync interval against a fresh read, which
/// is what writes back catalog edits made behind the agent's back.
struct CatalogSync: Sendable {
    /// How often the loop looks again without being woken.
    static let tick: Duration = .seconds(1)
    /// Retry delays after a failed sync: doubling up to Consul's 15 s.
    static let firstRetry: Duration = .seconds(1)
    static let maxRetry: Duration = .seconds(15)

    let local: LocalAgent
    /// This node's catalog entry and the token writes carry, asked afresh for every sync: a
    /// reload changes `node_meta` and the ACL tokens while the loop runs.
    let identity: @Sendable () -> (node: LocalNodeInfo, token: String?)
    let clock: any MonotonicClock
    let logger: AgentLogger
    /// Sends one request through the agent's request path.
    let send: @Sendable (APIRequest) async -> APIResponse
    /// How many members the LAN pool has (scales the full-sync interval).
    let clusterSize: @Sendable () -> Int
    var node: LocalNodeInfo { identity().node }
    var token: String? { identity().token }
    var checkUpdateInterval: Duration = AntiEntropy.defaultCheckUpdateInterval

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    func run(wakes: AsyncStream<Void>) async {
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.tick)
                local.poke()
            }
        }
        defer { ticker.cancel() }
        var remote: RemoteNodeState?
        var nextFullSync = clock.now()
        var outputSyncedAt: [String: Timestamp] = [:]
        var retryDelay = Self.firstRetry
        var retryAt: Timestamp?
        var lastError = ""
        for await _ in wakes {
            let now = clock.now()
            let node = self.node
            if let retryAt, now < retryAt { continue }
            do throws(Failure) {
                if remote == nil || now >= nextFullSync {
                    remote = try await fetch()
                    let interval = AntiEntropy.fullSyncInterval(clusterSize: clusterSize())
                    // A random stagger keeps agents started together from syncing in lockstep.
                    nextFullSync = now + interval + .milliseconds(Int64.random(in: 0..<max(1, interval.nioNanoseconds / 16_000_000)))
                }
                let state = local.snapshot
                let plan = AntiEntropy.plan(AntiEntropy.Input(
                    node: node, services: state.sortedServices.map(\.record), checks: state.sortedChecks.map(\.record),
                    remote: remote!, now: now, checkUpdateInterval: checkUpdateInterval, outputSyncedAt: outputSyncedAt))
                if !plan.adoptedTags.isEmpty {
                    local.update { state, _ in for (id, tags) in plan.adoptedTags { state.adoptTags(tags, forService: id) } }
                }
                for operation in plan.operations {
                    try await execute(operation)
                    remote = AntiEntropy.applying(operation, to: remote!, node: node)
                    switch operation {
                    case .registerService(let service, let checks):
                        for check in checks { outputSyncedAt[check.id] = now }
                        logger.info("agent", "Synced service", ["service": service.id])
                    case .registerCheck(let check):
                        outputSyncedAt[check.id] = now
                        logger.info("agent", "Synced check", ["check": check.id])
                    case .deregisterService(let id):
                        logger.info("agent", "Deregistered service", ["service": id])
                    case .deregisterCheck(let id):
                        outputSyncedAt[id] = nil
                        logger.info("agent", "Deregistered check", ["check": id])
                    case .registerNode:
                        logger.info("agent", "Synced node info")
                    }
                }
                retryDelay = Self.firstRetry
                retryAt = nil
                lastError = ""
            } catch {
                // Read the catalog afresh next time: a write may or may not have happened.
                remote = nil
                retryAt = now + retryDelay
                retryDelay = min(retryDelay * 2, Self.maxRetry)
                if error.description != lastError {
                    logger.error("agent", "failed to sync remote state", ["error": error.description])
                    lastError = error.description
                }
            }
        }
    }

    // MARK: - Requests

    private func call(_ method: String, _ path: String, body: [UInt8] = []) async throws(Failure) -> APIResponse {
        var headers: [(name: String, value: String)] = []
        if let token, !token.isEmpty { headers.append(("X-Consul-Token", token)) }
        let response = await send(APIRequest(method: method, path: path, query: [:], headers: headers, body: body))
        guard response.status == 200 || (response.status == 404 && method == "GET") else {
            throw Failure(description: String(decoding: response.body, as: UTF8.self))
        }
        return response
    }

    /// This node's services (`/v1/catalog/node/:n`) and checks (`/v1/health/node/:n`).
    func fetch() async throws(Failure) -> RemoteNodeState {
        let nodeAnswer = try await call("GET", "/v1/catalog/node/\(node.name)")
        let checksAnswer = try await call("GET", "/v1/health/node/\(node.name)")
        var remote = RemoteNodeState()
        do {
            let nodeJSON = try JSONConfigParser.parseValue(bytes: nodeAnswer.body, file: "catalog node")
            if let entry = nodeJSON["Node"], entry.objectValue != nil {
                remote.node = CatalogNode(
                    id: entry["ID"]?.stringValue ?? "", name: entry["Node"]?.stringValue ?? node.name,
                    address: entry["Address"]?.stringValue ?? "", datacenter: entry["Datacenter"]?.stringValue ?? "",
                    taggedAddresses: Self.stringMap(entry["TaggedAddresses"]), meta: Self.stringMap(entry["Meta"]),
                    indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
            }
            for member in nodeJSON["Services"]?.objectValue?.members ?? [] {
                let s = member.value
                let weights = s["Weights"]
                remote.services[member.key] = CatalogService(
                    node: node.name, id: s["ID"]?.stringValue ?? member.key, name: s["Service"]?.stringValue ?? "",
                    tags: s["Tags"]?.arrayValue?.compactMap(\.stringValue) ?? [], address: s["Address"]?.stringValue ?? "",
                    port: Int(s["Port"]?.integerValue ?? 0), meta: Self.stringMap(s["Meta"]),
                    weights: ServiceWeights(passing: Int(weights?["Passing"]?.integerValue ?? 1), warning: Int(weights?["Warning"]?.integerValue ?? 1)),
                    enableTagOverride: s["EnableTagOverride"]?.boolValue ?? false, indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
            }
            let checksJSON = try JSONConfigParser.parseValue(bytes: checksAnswer.body, file: "health node")
            for c in checksJSON.arrayValue ?? [] {
                guard let id = c["CheckID"]?.stringValue, let status = HealthStatus(rawValue: c["Status"]?.stringValue ?? "") else { continue }
                remote.checks[id] = HealthCheck(
                    node: node.name, id: id, name: c["Name"]?.stringValue ?? "", status: status, notes: c["Notes"]?.stringValue ?? "",
                    output: c["Output"]?.stringValue ?? "", serviceID: c["ServiceID"]?.stringValue ?? "",
                    serviceName: c["ServiceName"]?.stringValue ?? "", serviceTags: c["ServiceTags"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                    type: c["Type"]?.stringValue ?? "", interval: c["Interval"]?.stringValue ?? "", timeout: c["Timeout"]?.stringValue ?? "",
                    indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
            }
        } catch {
            throw Failure(description: "unreadable catalog answer: \(error)")
        }
        return remote
    }

    private static func stringMap(_ value: ConfigValue?) -> [String: String] {
        var result: [String: String] = [:]
        for member in value?.objectValue?.members ?? [] { result[member.key] = member.value.stringValue ?? "" }
        return result
    }

    func execute(_ operation: SyncOperation) async throws(Failure) {
        switch operation {
        case .registerNode:
            _ = try await call("PUT", "/v1/catalog/register", body: registration(service: nil, checks: []))
        case .registerService(let service, let checks):
            _ = try await call("PUT", "/v1/catalog/register", body: registration(service: service, checks: checks))
        case .registerCheck(let check):
            _ = try await call("PUT", "/v1/catalog/register", body: registration(service: nil, checks: [check]))
        case .deregisterService(let id):
            _ = try await call("PUT", "/v1/catalog/deregister", body: deregistration("ServiceID", id))
        case .deregisterCheck(let id):
            _ = try await call("PUT", "/v1/catalog/deregister", body: deregistration("CheckID", id))
        }
    }

    /// Consul's `RegisterRequest` for this node, with at most one service and its checks.
    func registration(service: CatalogService?, checks: [HealthCheck]) -> [UInt8] {
        var writer = JSONWriter()
        writer.object { w in
            w.field("Node") { $0.string(node.name) }
            w.field("ID") { $0.string(node.id) }
            w.field("Address") { $0.string(node.address) }
            w.field("TaggedAddresses") { $0.stringMap(node.taggedAddresses) }
            w.field("NodeMeta") { $0.stringMap(node.meta) }
            if let service {
                w.field("Service") { CatalogJSON.service(service, into: &$0, withIndexes: false) }
            }
            if !checks.isEmpty {
                w.field("Checks") { list in
                    list.array { a in
                        for check in checks {
                            a.object { o in
                                o.field("CheckID") { $0.string(check.id) }
                                o.field("Name") { $0.string(check.name) }
                                o.field("Status") { $0.string(check.status.rawValue) }
                                o.field("Notes") { $0.string(check.notes) }
                                o.field("Output") { $0.string(check.output) }
                                o.field("ServiceID") { $0.string(check.serviceID) }
                                o.field("Type") { $0.string(check.type) }
                                o.field("Interval") { $0.string(check.interval) }
                                o.field("Timeout") { $0.string(check.timeout) }
                            }
                        }
                    }
                }
            }
        }
        return writer.bytes
    }

    private func deregistration(_ key: String, _ id: String) -> [UInt8] {
        var writer = JSONWriter()
        writer.object { w in
            w.field("Node") { $0.string(node.name) }
            w.field(dynamic: key) { $0.string(id) }
        }
        return writer.bytes
    }
}
