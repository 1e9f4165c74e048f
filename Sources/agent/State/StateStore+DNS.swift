import ConsulCore

/// The state store as the DNS resolver reads it: one version per query, nothing copied beyond
/// the records in the answer.
extension StateStore: DNSCatalogView {
    /// Every change to the store is an applied Raft entry, so the last applied index names the
    /// store's contents exactly: equal index, equal catalog.
    var dnsGeneration: UInt64? { lastIndex }

    func dnsNode(named name: String) -> DNSNode? {
        guard let node = node(named: name) else { return nil }
        return dnsNode(node, checks: checks(onNode: node.name))
    }

    func dnsServiceInstances(named name: String) -> [DNSServiceInstance] {
        var nodesSeen: [String: (DNSNode, [HealthCheck])] = [:]
        return serviceInstances(named: name).compactMap { service in
            let key = Self.nodeKey(service.node)
            if nodesSeen[key] == nil {
                guard let node = node(named: service.node) else { return nil }
                let checks = checks(onNode: node.name)
                nodesSeen[key] = (dnsNode(node, checks: checks), checks)
            }
            let (node, checks) = nodesSeen[key]!
            let serviceHealth = Self.worst(checks.filter { $0.serviceID == service.id })
            return DNSServiceInstance(
                node: node, serviceID: service.id, serviceName: service.name, serviceAddress: service.address, port: service.port,
                tags: service.tags, weightPassing: service.weights.passing, weightWarning: service.weights.warning,
                health: max(node.health, serviceHealth))
        }
    }

    func dnsPreparedQuery(_ name: String) -> DNSPreparedQueryAnswer? {
        guard let query = preparedQuery(resolving: name) else { return nil }
        // The DNS plan shuffles the answers itself; `_agent` has no meaning without the agent's
        // node name here, so only a named `Near` node sorts.
        var unshuffled = SeededRandom(seed: 0)
        let near = query.service.near == "_agent" ? "" : query.service.near
        var stored = query
        stored.service.near = near
        let result = PreparedQueryExecutor.execute(stored, lookupName: name, in: self, near: "", limit: nil, random: &unshuffled)
        var dnsNodes: [String: DNSNode] = [:]
        let instances = result.nodes.map { entry in
            let key = Self.nodeKey(entry.node.name)
            let node = dnsNodes[key] ?? dnsNode(entry.node, checks: checks(onNode: entry.node.name))
            dnsNodes[key] = node
            let service = entry.service
            return DNSServiceInstance(
                node: node, serviceID: service.id, serviceName: service.name, serviceAddress: service.address, port: service.port,
                tags: service.tags, weightPassing: service.weights.passing, weightWarning: service.weights.warning,
                health: max(node.health, Self.worst(entry.checks.filter { $0.serviceID == service.id })))
        }
        let ttl = (try? GoDuration.parse(query.dnsTTL)).map(DNSResolverSettings.seconds)
        return DNSPreparedQueryAnswer(service: result.query.service.service, instances: instances, ttl: query.dnsTTL.isEmpty ? nil : ttl, ordered: !near.isEmpty)
    }

    func dnsNodes(withAddress address: String) -> [DNSNode] {
        var matches: [DNSNode] = []
        nodes.forEach { _, node in
            if node.address == address || services(onNode: node.name).contains(where: { $0.address == address }) {
                matches.append(dnsNode(node, checks: checks(onNode: node.name)))
            }
            return true
        }
        return matches
    }

    private func dnsNode(_ node: CatalogNode, checks: [HealthCheck]) -> DNSNode {
        DNSNode(
            name: node.name, datacenter: node.datacenter, address: node.address, taggedAddresses: node.taggedAddresses,
            meta: node.meta.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) },
            health: Self.worst(checks.filter { $0.serviceID.isEmpty }))
    }

    private static func worst(_ checks: [HealthCheck]) -> DNSHealth {
        checks.reduce(DNSHealth.passing) { worst, check in
            switch check.status {
            case .passing: return worst
            case .warning: return max(worst, .warning)
            case .critical, .maintenance: return .critical
            }
        }
    }
}
