/// What the DNS resolver reads from the catalog. The agent hands the resolver one immutable
/// snapshot of its state store per query, so an answer never mixes two catalog versions and the
/// resolver never waits: it runs on the DNS event loop.
///
/// The state store conforms to this; tests conform small in-memory catalogs.
protocol DNSCatalogView: Sendable {
    /// The node registered under `name` (case-insensitive, as DNS is), if any.
    func dnsNode(named name: String) -> DNSNode?
    /// Every registered instance of the service `name` (case-insensitive), with the health of its
    /// node and service checks; the resolver filters by tag and health itself.
    func dnsServiceInstances(named name: String) -> [DNSServiceInstance]
    /// Nodes whose address (or a service address on them) equals `address`, for PTR answers.
    func dnsNodes(withAddress address: String) -> [DNSNode]
    /// A number that changes whenever anything above could answer differently (the snapshot's
    /// Raft index does: check updates move it too). Equal generations must mean equal contents:
    /// the DNS server keeps answers compiled per generation. nil (the default) turns that off.
    var dnsGeneration: UInt64? { get }
    /// `<name>.query.<domain>`: the prepared query `name` (an ID, a name or a template's prefix)
    /// executed; nil when there is no such query. Catalogs without queries keep the default.
    func dnsPreparedQuery(_ name: String) -> DNSPreparedQueryAnswer?
}

extension DNSCatalogView {
    var dnsGeneration: UInt64? { nil }
    func dnsPreparedQuery(_ name: String) -> DNSPreparedQueryAnswer? { nil }
}

/// What a prepared query answers over DNS: the instances it selected (already filtered by the
/// query's own health, tag and meta rules) and its DNS TTL, if it sets one.
struct DNSPreparedQueryAnswer: Sendable {
    var service: String
    var instances: [DNSServiceInstance]
    /// Seconds; nil: the agent's `service_ttl` for `service` applies, as in Consul.
    var ttl: UInt32?
    /// Instances sorted by distance (the query has `Near`): answered in that order, not shuffled.
    var ordered: Bool
}

/// The health a DNS answer cares about: the worst of an instance's node and service checks.
enum DNSHealth: Int, Comparable, Sendable {
    case passing = 0, warning, critical

    static func < (lhs: DNSHealth, rhs: DNSHealth) -> Bool { lhs.rawValue < rhs.rawValue }
}

struct DNSNode: Equatable, Sendable {
    var name: String
    var datacenter: String
    /// The node's address as registered: usually an IP, but Consul allows a hostname.
    var address: String
    /// `lan`, `wan`, `lan_ipv4`, ... as registered.
    var taggedAddresses: [String: String]
    /// Node meta, ordered by key so answers are deterministic; becomes TXT records.
    var meta: [(key: String, value: String)]
    /// The worst status of the node's own checks (serfHealth, maintenance, ...).
    var health: DNSHealth

    static func == (lhs: DNSNode, rhs: DNSNode) -> Bool {
        lhs.name == rhs.name && lhs.datacenter == rhs.datacenter && lhs.address == rhs.address
            && lhs.taggedAddresses == rhs.taggedAddresses && lhs.meta.elementsEqual(rhs.meta, by: ==)
            && lhs.health == rhs.health
    }
}

struct DNSServiceInstance: Equatable, Sendable {
    var node: DNSNode
    var serviceID: String
    var serviceName: String
    /// Empty when the service uses its node's address.
    var serviceAddress: String
    var port: Int
    var tags: [String]
    /// Consul's `Weights`: passing and warning weights used for the SRV weight field.
    var weightPassing: Int
    var weightWarning: Int
    /// The worst of the node's checks and this service's checks.
    var health: DNSHealth
}
