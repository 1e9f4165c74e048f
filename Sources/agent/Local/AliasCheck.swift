import ConsulCore

/// Consul's alias checks (`alias_node`, `alias_service`): the check's status is the health of
/// another node or service. Pure: the shells hand in the checks they see (the local state for
/// this node, a blocking query's answer for another node) and record the verdict.
enum AliasCheck {
    struct Target: Equatable, Sendable {
        /// Empty: this agent's own node.
        var node: String
        /// Empty: the node's own health (its node-level checks).
        var serviceID: String
    }

    struct Verdict: Equatable, Sendable {
        var status: HealthStatus
        var output: String
    }

    /// Consul's aggregation: node-level checks always count (a failing node fails its services),
    /// plus the aliased service's checks; the first critical check decides, else a warning, else
    /// passing. A service that has no checks passes if it exists and is critical if it does not.
    ///
    /// `checks` are the aliased node's checks, in a stable order (the output names one check).
    /// `serviceExists` is only asked when the service has no checks.
    static func evaluate(_ target: Target, checks: [HealthCheck], excluding selfID: String = "", serviceExists: () -> Bool) -> Verdict {
        var verdict = Verdict(status: .passing, output: "No checks found.")
        var serviceFound = false
        for check in checks where check.id != selfID {
            if !check.serviceID.isEmpty {
                guard !target.serviceID.isEmpty, check.serviceID == target.serviceID else { continue }
                serviceFound = true
            }
            switch check.status {
            case .critical, .maintenance:
                return Verdict(status: .critical, output: "Aliased check \"\(check.name)\" failing: \(check.output)")
            case .warning:
                if verdict.status != .warning {
                    verdict = Verdict(status: .warning, output: "Aliased check \"\(check.name)\" failing: \(check.output)")
                }
            case .passing:
                if verdict.status == .passing { verdict.output = "All checks passing." }
            }
        }
        if !target.serviceID.isEmpty, !serviceFound, !serviceExists() {
            return Verdict(status: .critical, output: "Service \(target.serviceID) could not be found on node \(target.node)")
        }
        return verdict
    }

    /// The checks in a `/v1/health/node/:node` answer; nil if the body is not that shape.
    static func parseNodeChecks(_ body: [UInt8], node: String) -> [HealthCheck]? {
        guard let value = try? JSONConfigParser.parseValue(bytes: body, file: "health node"), let list = value.arrayValue else { return nil }
        return list.compactMap { c -> HealthCheck? in
            guard let id = c["CheckID"]?.stringValue, let status = HealthStatus(rawValue: c["Status"]?.stringValue ?? "") else { return nil }
            return HealthCheck(
                node: node, id: id, name: c["Name"]?.stringValue ?? "", status: status, notes: "",
                output: c["Output"]?.stringValue ?? "", serviceID: c["ServiceID"]?.stringValue ?? "", serviceName: "",
                serviceTags: [], type: "", interval: "", timeout: "", indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
        }
    }

    /// Whether a `/v1/catalog/node/:node` answer lists the service.
    static func nodeHasService(_ body: [UInt8], serviceID: String) -> Bool {
        guard let value = try? JSONConfigParser.parseValue(bytes: body, file: "catalog node") else { return false }
        return value["Services"]?.objectValue?.members.contains { $0.key == serviceID } ?? false
    }
}
