import ConsulCore
import NIOCore
import NIOPosix

/// What `consul-bench dns` runs: the real DNS server (same resolver path as the agent) over an
/// in-memory catalog of `services` × `instancesPerService`, and the equivalent static records for
/// dnsmasq, so bench/dns.sh compares both on the same names.
package enum DNSBench {
    /// Service `svc<i>` has instances on nodes `node<(i + k) % nodes>`; node `node<j>` is 10.0.<j / 250>.<j % 250 + 1>.
    static func catalog(services: Int, instancesPerService: Int, nodes nodeCount: Int) -> DNSIndexedCatalog {
        let nodes = (0..<nodeCount).map { index in
            DNSNode(
                name: "node\(index)", datacenter: "dc1", address: "10.0.\(index / 250).\(index % 250 + 1)", taggedAddresses: [:],
                meta: [], health: .passing)
        }
        var instances: [DNSServiceInstance] = []
        for service in 0..<services {
            for k in 0..<instancesPerService {
                let node = nodes[(service + k) % nodeCount]
                instances.append(
                    DNSServiceInstance(
                        node: node, serviceID: "svc\(service)-\(k)", serviceName: "svc\(service)", serviceAddress: "",
                        port: 20000 + service, tags: [], weightPassing: 1, weightWarning: 1, health: .passing))
            }
        }
        return DNSIndexedCatalog(nodes: nodes, instances: instances)
    }

    /// Serves the catalog on `host:port` (UDP and TCP) for `seconds`, calling `ready` with the
    /// port once it listens; returns the server's counters at the end.
    package static func serve(
        host: String, port: Int, services: Int, instancesPerService: Int, nodes: Int, seconds: Int,
        ready: @Sendable (Int) -> Void
    ) async throws -> String {
        let catalog = catalog(services: services, instancesPerService: instancesPerService, nodes: nodes)
        var configuration = DNSServerConfiguration(settings: DNSResolverSettings())
        configuration.host = host
        configuration.port = port
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await DNSServer.start(configuration: configuration, group: group, catalog: { catalog }, seed: 1)
        ready(server.localPort)
        try? await Task.sleep(for: .seconds(seconds))
        let counts = server.counters.snapshot
        await server.stop()
        try await group.shutdownGracefully()
        let answers = counts.answers.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key)=\($0.value)" }
        return "queries=\(counts.queries) dropped=\(counts.malformedDropped) " + answers.joined(separator: " ")
    }

    /// Resolves the benchmark's A and SRV queries in a loop without sockets for `seconds`;
    /// returns nanoseconds per query (what the resolver adds to each UDP round trip) and the
    /// number of queries (to divide an instruction count by, under callgrind).
    package static func resolveLoop(services: Int, instancesPerService: Int, nodes: Int, seconds: Double, clock: some MonotonicClock)
        -> (nanoseconds: Double, queries: Int)
    {
        let catalog = catalog(services: services, instancesPerService: instancesPerService, nodes: nodes)
        let resolver = DNSResolver(settings: DNSResolverSettings())
        let packets = (0..<services).flatMap { index in
            [DNSType.a, .srv].map { type in DNSBench.packet("svc\(index).service.consul", type: type.rawValue, id: UInt16(index)) }
        }
        var random = SeededRandom(seed: 1)
        var memo = DNSAnswerMemo()
        var calls = 0
        var sink = 0
        let start = clock.now()
        let budget = Duration.nanoseconds(Int64(seconds * 1e9))
        while clock.now().duration(since: start) < budget {
            for packet in packets {
                if case .respond(let bytes, _) = resolver.resolve(packet, transport: .udp, catalog: catalog, serial: 1, random: &random, memo: &memo) {
                    sink &+= bytes.count
                }
            }
            calls += packets.count
        }
        precondition(sink > 0)
        return (Double(clock.now().duration(since: start).totalNanoseconds) / Double(calls), calls)
    }

    /// A query as a stub resolver sends it (RD set, no EDNS).
    static func packet(_ name: String, type: UInt16, id: UInt16) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".") {
            bytes.append(UInt8(label.utf8.count))
            bytes.append(contentsOf: label.utf8)
        }
        return bytes + [0, UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
    }

    /// The same records for dnsmasq: an addn-hosts file (every A answer our server gives) and
    /// `srv-host` lines (every SRV answer, targets resolvable from the hosts file).
    package static func dnsmasqRecords(services: Int, instancesPerService: Int, nodes: Int, domain: String = "consul")
        -> (hosts: String, config: String)
    {
        let catalog = catalog(services: services, instancesPerService: instancesPerService, nodes: nodes)
        var hosts: [String] = []
        var config: [String] = []
        for node in catalog.nodes { hosts.append("\(node.address) \(node.name).node.dc1.\(domain)") }
        for instance in catalog.instances {
            let name = "\(instance.serviceName).service.\(domain)"
            hosts.append("\(instance.node.address) \(name)")
            config.append("srv-host=\(name),\(instance.node.name).node.dc1.\(domain),\(instance.port),1,1")
        }
        return (hosts.joined(separator: "\n") + "\n", config.joined(separator: "\n") + "\n")
    }

    /// The dnsperf query file: every service name, alternately as A and SRV.
    package static func queries(services: Int, domain: String = "consul") -> String {
        (0..<services).flatMap { ["svc\($0).service.\(domain) A", "svc\($0).service.\(domain) SRV"] }.joined(separator: "\n") + "\n"
    }
}

/// A catalog indexed by lower-cased names, as the state store keeps its tables: one dictionary
/// lookup per query. Used by the benchmark. A class, so handing it out as `any DNSCatalogView`
/// costs a reference, not a boxed copy.
final class DNSIndexedCatalog: DNSCatalogView {
    let nodes: [DNSNode]
    let instances: [DNSServiceInstance]
    private let nodesByName: [String: DNSNode]
    private let instancesByService: [String: [DNSServiceInstance]]

    init(nodes: [DNSNode], instances: [DNSServiceInstance]) {
        self.nodes = nodes
        self.instances = instances
        nodesByName = Dictionary(nodes.map { ($0.name.lowercasedASCII(), $0) }, uniquingKeysWith: { first, _ in first })
        instancesByService = Dictionary(grouping: instances, by: { $0.serviceName.lowercasedASCII() })
    }

    func dnsNode(named name: String) -> DNSNode? {
        nodesByName[name] ?? nodesByName[name.lowercasedASCII()]
    }

    func dnsServiceInstances(named name: String) -> [DNSServiceInstance] {
        instancesByService[name] ?? instancesByService[name.lowercasedASCII()] ?? []
    }

    func dnsNodes(withAddress address: String) -> [DNSNode] {
        nodes.filter { $0.address == address }
    }

    /// Never changes: built once.
    var dnsGeneration: UInt64? { 1 }
}
