import ConsulCore

/// One entry point that feeds arbitrary bytes through the DNS decoder and the whole resolver, for
/// the seeded fuzz tests now and a libFuzzer target later (`LLVMFuzzerTestOneInput` would call
/// `run`). Returns how many of the paths produced an answer (0...2); it must never trap.
package enum DNSFuzzEntry {
    package static func run(_ input: [UInt8]) -> Int {
        var settings = DNSResolverSettings(domain: "consul", altDomain: "alt.test", datacenter: "dc1")
        settings.recursorsConfigured = input.first.map { $0 & 1 == 1 } ?? false
        settings.enableTruncate = true
        let resolver = DNSResolver(settings: settings)
        var random = SeededRandom(seed: UInt64(input.count))
        var answered = 0
        var memoized = catalog
        memoized.dnsGeneration = 1
        var memo = DNSAnswerMemo()
        for transport in [DNSTransport.udp, .tcp] {
            if case .respond = resolver.resolve(input, transport: transport, catalog: catalog, serial: 1, random: &random) {
                answered += 1
            }
            _ = resolver.resolve(input, transport: transport, catalog: memoized, serial: 1, random: &random, memo: &memo)
        }
        return answered
    }

    /// A few nodes and services covering every answer path: IPv4, IPv6, hostnames (inside and
    /// outside the domain), service addresses, node meta, health states, servers.
    static let catalog: DNSFixedCatalog = {
        let n1 = DNSNode(
            name: "n1", datacenter: "dc1", address: "10.0.0.1", taggedAddresses: [:],
            meta: [(key: "rack", value: "a=b"), (key: "rfc1035-x", value: "y")], health: .passing)
        let n2 = DNSNode(name: "n2", datacenter: "dc1", address: "2001:db8::2", taggedAddresses: [:], meta: [], health: .warning)
        let n3 = DNSNode(name: "n3", datacenter: "dc1", address: "n1.node.consul", taggedAddresses: [:], meta: [], health: .passing)
        let n4 = DNSNode(name: "n4", datacenter: "dc1", address: "db.example.com", taggedAddresses: [:], meta: [], health: .critical)
        let loop = DNSNode(name: "loop", datacenter: "dc1", address: "loop.node.consul", taggedAddresses: [:], meta: [], health: .passing)
        func instance(_ service: String, _ node: DNSNode, address: String = "", tags: [String] = []) -> DNSServiceInstance {
            DNSServiceInstance(
                node: node, serviceID: service + node.name, serviceName: service, serviceAddress: address, port: 80, tags: tags,
                weightPassing: 1, weightWarning: 1, health: node.health)
        }
        return DNSFixedCatalog(
            nodes: [n1, n2, n3, n4, loop],
            instances: [
                instance("web", n1, tags: ["a"]), instance("web", n2, address: "192.168.0.9"), instance("web", n3),
                instance("web", n4), instance("consul", n1), instance("consul", n3), instance("db", n1, address: "web.service.consul"),
                instance("loop", loop),
            ], dnsGeneration: nil)
    }()
}

/// An immutable catalog held in arrays: for the fuzz entry and benchmarks that need a catalog
/// without the state store. Lookups are linear, which is fine for the handful of entries they hold.
struct DNSFixedCatalog: DNSCatalogView {
    var nodes: [DNSNode]
    var instances: [DNSServiceInstance]
    var dnsGeneration: UInt64?

    func dnsNode(named name: String) -> DNSNode? {
        nodes.first { $0.name.equalsIgnoringASCIICase(name) }
    }

    func dnsServiceInstances(named name: String) -> [DNSServiceInstance] {
        instances.filter { $0.serviceName.equalsIgnoringASCIICase(name) }
    }

    func dnsNodes(withAddress address: String) -> [DNSNode] {
        nodes.filter { $0.address == address }
    }
}
