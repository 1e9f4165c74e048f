import ConsulCore

/// The agent's own services and checks: what `/v1/agent/services|checks` show and what
/// anti-entropy keeps the catalog in step with. Pure: callers pass the time in; the shell
/// (`LocalAgent`) owns the lock, the runners and the sync loop.
///
/// `/v1/agent/*` is this state; `/v1/catalog/*` and `/v1/health/*` are the servers' copy of it.
struct LocalState: Sendable {
    /// Where a definition came from: config files are replaced on reload, API registrations stay;
    /// script checks are allowed per source (`enable_local_script_checks` covers config files only).
    enum Source: Equatable, Sendable { case config, api }

    struct Service: Equatable, Sendable {
        var definition: ServiceDefinition
        var record: CatalogService
        var source: Source
    }

    struct Check: Equatable, Sendable {
        /// Nil for the maintenance checks the agent makes itself.
        var definition: CheckDefinition?
        var record: HealthCheck
        var source: Source
        var thresholds: CheckThresholds
        /// TTL checks: when the check turns critical unless the application reports in.
        var ttlDeadline: Timestamp?
        /// Since when the check has been critical (for `deregister_critical_service_after`).
        var criticalSince: Timestamp?
    }

    struct ScriptPolicy: Equatable, Sendable {
        var enableScriptChecks = false
        var enableLocalScriptChecks = false

        func allows(_ source: Source) -> Bool {
            enableScriptChecks || (source == .config && enableLocalScriptChecks)
        }
    }

    static let nodeMaintenanceCheckID = "_node_maintenance"
    static let serviceMaintenancePrefix = "_service_maintenance:"
    static let scriptsDisabled =
        "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true"

    let nodeName: String
    var scriptPolicy: ScriptPolicy
    private(set) var services: [String: Service] = [:]
    private(set) var checks: [String: Check] = [:]
    /// Moves on every change, so the sync loop and runners know when to look again.
    private(set) var version: UInt64 = 0

    init(nodeName: String, scriptPolicy: ScriptPolicy = ScriptPolicy()) {
        self.nodeName = nodeName
        self.scriptPolicy = scriptPolicy
    }

    /// Services and checks in ID order (JSON output and sync must not depend on hashing order).
    var sortedServices: [Service] { services.keys.sorted().map { services[$0]! } }
    var sortedChecks: [Check] { checks.keys.sorted().map { checks[$0]! } }

    // MARK: - Services

    /// Adds or replaces a service with its checks. `replaceExistingChecks`: the service's checks
    /// not in this definition are removed (the API's `?replace-existing-checks`); otherwise they stay.
    mutating func addService(
        _ definition: ServiceDefinition, source: Source, now: Timestamp, replaceExistingChecks: Bool = false
    ) throws(DefinitionError) {
        var definition = definition
        definition.id = definition.effectiveID
        guard !definition.name.isEmpty else { throw DefinitionError("Missing service name") }
        let checks = try Self.assignCheckIDs(definition)
        for check in checks where check.isScript && !scriptPolicy.allows(source) {
            throw DefinitionError(Self.scriptsDisabled)
        }
        let record = definition.catalogRecord(node: nodeName)
        definition.checks = checks
        services[definition.id] = Service(definition: definition, record: record, source: source)
        if replaceExistingChecks {
            let kept = Set(checks.map(\.id))
            for (id, check) in self.checks where check.record.serviceID == definition.id && check.definition != nil && !kept.contains(id) {
                self.checks[id] = nil
            }
        }
        for check in checks { putCheck(check, source: source, now: now) }
        // The service's name and tags are copied into its checks, as the catalog does.
        for (id, check) in self.checks where check.record.serviceID == definition.id {
            self.checks[id]?.record.serviceName = record.name
            self.checks[id]?.record.serviceTags = record.tags
        }
        version += 1
    }

    /// Removes a service and every check bound to it (maintenance included). False: unknown ID.
    @discardableResult
    mutating func removeService(_ id: String) -> Bool {
        guard services.removeValue(forKey: id) != nil else { return false }
        for (checkID, check) in checks where check.record.serviceID == id { checks[checkID] = nil }
        version += 1
        return true
    }

    /// Consul's IDs for a service's checks: `service:<id>` for one, `service:<id>:N` for several;
    /// names default to "Service '<name>' check".
    static func assignCheckIDs(_ service: ServiceDefinition) throws(DefinitionError) -> [CheckDefinition] {
        let id = service.effectiveID
        var result: [CheckDefinition] = []
        for (index, var check) in service.checks.enumerated() {
            if check.id.isEmpty { check.id = service.checks.count == 1 ? "service:\(id)" : "service:\(id):\(index + 1)" }
            if check.name.isEmpty { check.name = "Service '\(service.name)' check" }
            check.serviceID = id
            result.append(check)
        }
        return result
    }

    // MARK: - Checks

    mutating func addCheck(_ definition: CheckDefinition, source: Source, now: Timestamp) throws(DefinitionError) {
        var definition = definition
        if definition.id.isEmpty { definition.id = definition.name }
        guard !definition.id.isEmpty else { throw DefinitionError("Missing check name") }
        if definition.name.isEmpty { definition.name = definition.id }
        if definition.isScript && !scriptPolicy.allows(source) { throw DefinitionError(Self.scriptsDisabled) }
        if !definition.serviceID.isEmpty, services[definition.serviceID] == nil {
            throw DefinitionError("ServiceID \"\(definition.serviceID)\" does not exist")
        }
        putCheck(definition, source: source, now: now)
        version += 1
    }

    /// Inserts or replaces a check. A check re-added with the same definition (reload, repeated
    /// registration) keeps its status and output instead of starting over.
    private mutating func putCheck(_ definition: CheckDefinition, source: Source, now: Timestamp) {
        if var existing = checks[definition.id], existing.definition == definition {
            existing.source = source
            checks[definition.id] = existing
            return
        }
        let service = definition.serviceID.isEmpty ? nil : services[definition.serviceID]?.record
        var ttlDeadline: Timestamp?
        if case .ttl(let ttl) = definition.kind { ttlDeadline = now + ttl }
        let record = HealthCheck(
            node: nodeName, id: definition.id, name: definition.name, status: definition.initialStatus, notes: definition.notes,
            output: "", serviceID: definition.serviceID, serviceName: service?.name ?? "", serviceTags: service?.tags ?? [],
            type: definition.kind.typeName, interval: definition.interval.map(GoDuration.format) ?? "",
            timeout: definition.timeout.map(GoDuration.format) ?? "", indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
        checks[definition.id] = Check(
            definition: definition, record: record, source: source, thresholds: CheckThresholds(definition),
            ttlDeadline: ttlDeadline, criticalSince: definition.initialStatus == .critical ? now : nil)
    }

    @discardableResult
    mutating func removeCheck(_ id: String) -> Bool {
        guard checks.removeValue(forKey: id) != nil else { return false }
        version += 1
        return true
    }

    enum UpdateError: Error, Equatable, Sendable {
        case unknownCheck(String)
        case notTTL(String)
    }

    /// A probe's result, judged by the check's thresholds. True when status or output changed.
    @discardableResult
    mutating func recordProbe(_ id: String, status: HealthStatus, output: String, now: Timestamp) -> Bool {
        guard var check = checks[id] else { return false }
        let judged = check.thresholds.observe(status)
        checks[id] = check
        // Below a threshold the status stays, but the latest output is still shown (as Consul does).
        return set(id, status: judged ?? check.record.status, output: output, now: now)
    }

    /// `/v1/agent/check/pass|warn|fail|update`: only TTL checks are fed by their application.
    mutating func updateTTL(_ id: String, status: HealthStatus, output: String, now: Timestamp) throws(UpdateError) {
        guard let check = checks[id] else { throw .unknownCheck(id) }
        guard case .ttl(let ttl)? = check.definition?.kind else { throw .notTTL(id) }
        checks[id]?.ttlDeadline = now + ttl
        set(id, status: status, output: CheckStatusRules.truncated(output), now: now)
    }

    /// Whether an alias check mirrors something on this node (followed through the local state)
    /// rather than another node (followed by blocking queries to the catalog).
    func isLocalAlias(_ target: AliasCheck.Target) -> Bool { target.node.isEmpty || target.node == nodeName }

    /// Re-judges every alias check that points at this node from the local state. The shell calls
    /// it after each change, so an alias follows its target at once. True when something changed.
    @discardableResult
    mutating func refreshLocalAliases(now: Timestamp) -> Bool {
        var changed = false
        // Alias checks are left out of what they look at: two aliases of the same node would
        // otherwise hold each other critical forever.
        let inputs = sortedChecks.filter { check in
            if case .alias? = check.definition?.kind { return false }
            return true
        }.map(\.record)
        for id in checks.keys.sorted() {
            guard case .alias(var target)? = checks[id]?.definition?.kind, isLocalAlias(target) else { continue }
            target.node = nodeName
            let verdict = AliasCheck.evaluate(target, checks: inputs) { services[target.serviceID] != nil }
            if set(id, status: verdict.status, output: verdict.output, now: now) { changed = true }
        }
        return changed
    }

    /// TTL checks whose application did not report in time turn critical.
    mutating func expireTTLs(now: Timestamp) {
        for id in checks.keys.sorted() {
            guard let deadline = checks[id]?.ttlDeadline, deadline <= now, let check = checks[id] else { continue }
            checks[id]?.ttlDeadline = nil
            set(id, status: .critical, output: CheckStatusRules.ttlExpiredOutput(lastOutput: check.record.output), now: now)
        }
    }

    /// Consul reaps no service sooner than this, whatever `deregister_critical_service_after` says
    /// (a flapping check must not take its service away within seconds).
    static let minimumDeregisterAfter: Duration = .seconds(60)

    /// Services whose check has been critical longer than its `deregister_critical_service_after`
    /// (raised to Consul's one-minute minimum).
    func servicesToReap(now: Timestamp) -> [String] {
        var doomed = Set<String>()
        for check in checks.values {
            guard let after = check.definition?.deregisterCriticalServiceAfter, let since = check.criticalSince,
                  !check.record.serviceID.isEmpty, now.duration(since: since) >= max(after, Self.minimumDeregisterAfter)
            else { continue }
            doomed.insert(check.record.serviceID)
        }
        return doomed.sorted()
    }

    @discardableResult
    private mutating func set(_ id: String, status: HealthStatus, output: String, now: Timestamp) -> Bool {
        guard var check = checks[id] else { return false }
        guard check.record.status != status || check.record.output != output else { return false }
        if status == .critical {
            if check.criticalSince == nil { check.criticalSince = now }
        } else {
            check.criticalSince = nil
        }
        check.record.status = status
        check.record.output = output
        checks[id] = check
        version += 1
        return true
    }

    // MARK: - Maintenance

    static func serviceMaintenanceCheckID(_ serviceID: String) -> String { serviceMaintenancePrefix + serviceID }

    /// Node maintenance: a critical node check takes every service of this node out of DNS and
    /// `?passing` answers until disabled.
    mutating func setNodeMaintenance(_ enable: Bool, reason: String) {
        guard enable else {
            removeCheck(Self.nodeMaintenanceCheckID)
            return
        }
        guard checks[Self.nodeMaintenanceCheckID] == nil else { return }
        let notes = reason.isEmpty ? "Maintenance mode is enabled for this node, but no reason was provided. This is a default message." : reason
        putMaintenance(id: Self.nodeMaintenanceCheckID, name: "Node Maintenance Mode", notes: notes, service: nil)
    }

    enum MaintenanceError: Error, Equatable, Sendable { case unknownService(String) }

    mutating func setServiceMaintenance(_ serviceID: String, enable: Bool, reason: String) throws(MaintenanceError) {
        guard let service = services[serviceID] else { throw .unknownService(serviceID) }
        let id = Self.serviceMaintenanceCheckID(serviceID)
        guard enable else {
            removeCheck(id)
            return
        }
        guard checks[id] == nil else { return }
        let notes = reason.isEmpty ? "Maintenance mode is enabled for this service, but no reason was provided. This is a default message." : reason
        putMaintenance(id: id, name: "Service Maintenance Mode", notes: notes, service: service.record)
    }

    private mutating func putMaintenance(id: String, name: String, notes: String, service: CatalogService?) {
        let record = HealthCheck(
            node: nodeName, id: id, name: name, status: .critical, notes: notes, output: "", serviceID: service?.id ?? "",
            serviceName: service?.name ?? "", serviceTags: service?.tags ?? [], type: "", interval: "", timeout: "",
            indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
        checks[id] = Check(definition: nil, record: record, source: .api, thresholds: CheckThresholds(), ttlDeadline: nil, criticalSince: nil)
        version += 1
    }

    // MARK: - Persistence

    /// What the data dir keeps: API registrations (config files are their own record), services
    /// without their checks, which are kept one by one like any other check.
    var persistable: DefinitionStore.Contents {
        var contents = DefinitionStore.Contents()
        for (id, service) in services where service.source == .api {
            var definition = service.definition
            definition.checks = []
            contents.services[id] = definition
        }
        for (id, check) in checks where check.source == .api {
            if let definition = check.definition { contents.checks[id] = definition }
        }
        return contents
    }

    // MARK: - Reload

    /// Replaces every definition that came from config files with `services` and `checks` (a
    /// reload); API registrations stay. All-or-nothing: on an error nothing changes.
    mutating func replaceConfigDefinitions(services: [ServiceDefinition], checks: [CheckDefinition], now: Timestamp) throws(DefinitionError) {
        var next = self
        let keptServices = Set(services.map(\.effectiveID))
        for (id, service) in next.services where service.source == .config && !keptServices.contains(id) {
            next.removeService(id)
        }
        let keptChecks = Set(checks.map { $0.id.isEmpty ? $0.name : $0.id })
            .union(services.flatMap { (try? Self.assignCheckIDs($0).map(\.id)) ?? [] })
        for (id, check) in next.checks where check.source == .config && !keptChecks.contains(id) {
            next.removeCheck(id)
        }
        for service in services { try next.addService(service, source: .config, now: now) }
        for check in checks { try next.addCheck(check, source: .config, now: now) }
        next.version += 1
        self = next
    }

    /// For anti-entropy's tag override: the catalog's tags replace the local ones.
    mutating func adoptTags(_ tags: [String], forService id: String) {
        guard var service = services[id], service.record.tags != tags else { return }
        service.record.tags = tags
        service.definition.tags = tags
        services[id] = service
        for (checkID, check) in checks where check.record.serviceID == id { checks[checkID]?.record.serviceTags = tags }
        version += 1
    }
}

extension ServiceDefinition {
    /// The service as this agent registers it in the catalog (no Raft indexes of its own yet).
    func catalogRecord(node: String) -> CatalogService {
        CatalogService(
            node: node, id: effectiveID, name: name, tags: tags, address: address, port: port, meta: meta, weights: weights,
            enableTagOverride: enableTagOverride, indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
    }
}
