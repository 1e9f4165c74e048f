/// What `/v1/operator/usage` reports for one datacenter, counted from one version of the state.
struct ServiceUsage: Equatable, Sendable {
    /// Consul's mesh service kinds, in the order its JSON lists them (a Go map: sorted keys).
    static let connectKinds = ["connect-native", "connect-proxy", "ingress-gateway", "mesh-gateway", "terminating-gateway"]
    /// The servers' own `consul` service, which Consul never bills.
    static let consulServiceName = "consul"

    /// Distinct service names.
    var services = 0
    var serviceInstances = 0
    /// Instances per mesh kind, in `connectKinds` order.
    var connectServiceInstances = [Int](repeating: 0, count: ServiceUsage.connectKinds.count)
    /// Every instance except mesh ones and the servers' `consul` service (Consul's definition).
    var billableServiceInstances = 0
    var nodes = 0
}

extension StateStore {
    /// The catalog's tables that usage counts; a blocking usage query waits on them.
    static let usageTables: [StateTable] = [.nodes, .services]

    /// Counts services, instances and nodes. This edition has no service mesh: registrations keep
    /// no `Kind`, so no instance is a mesh one and every mesh count is a real zero.
    func serviceUsage() -> ServiceUsage {
        var usage = ServiceUsage()
        usage.nodes = nodes.count
        var previousName: String?
        var serverInstances = 0
        // `servicesByName` is ordered by lowercased name, so each new name starts a new service.
        servicesByName.forEach { key, serviceKey in
            if key.name != previousName {
                usage.services += 1
                previousName = key.name
            }
            usage.serviceInstances += 1
            if services[serviceKey]?.name == ServiceUsage.consulServiceName { serverInstances += 1 }
            return true
        }
        usage.billableServiceInstances = usage.serviceInstances - serverInstances - usage.connectServiceInstances.reduce(0, +)
        return usage
    }
}
