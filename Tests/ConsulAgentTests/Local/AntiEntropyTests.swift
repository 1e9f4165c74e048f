import ConsulCore
import Testing

@testable import ConsulAgent

/// Anti-entropy's decision, deterministically: local state and catalog in, writes out.
struct AntiEntropyTests {
    static let t0 = Timestamp(nanoseconds: 5_000_000_000)
    static let zero = RaftIndexes(createIndex: 0, modifyIndex: 0)
    static let node = LocalNodeInfo(id: "id-n2", name: "n2", address: "10.0.0.2", taggedAddresses: [:], meta: ["consul-network-segment": ""])
    static let catalogNode = CatalogNode(
        id: "id-n2", name: "n2", address: "10.0.0.2", datacenter: "dc1", taggedAddresses: [:], meta: ["consul-network-segment": ""], indexes: zero)

    static func service(_ id: String, port: Int = 10000, tags: [String] = [], override: Bool = false) -> CatalogService {
        CatalogService(node: "n2", id: id, name: id, tags: tags, address: "", port: port, meta: [:], weights: ServiceWeights(),
                       enableTagOverride: override, indexes: zero)
    }

    static func check(_ id: String, service: String = "", status: HealthStatus = .passing, output: String = "") -> HealthCheck {
        HealthCheck(node: "n2", id: id, name: id, status: status, notes: "", output: output, serviceID: service, serviceName: service,
                    serviceTags: [], type: "http", interval: "10s", timeout: "", indexes: zero)
    }

    static func input(services: [CatalogService], checks: [HealthCheck], remote: RemoteNodeState) -> AntiEntropy.Input {
        AntiEntropy.Input(node: node, services: services, checks: checks, remote: remote, now: t0)
    }

    @Test func newServiceGoesWithItsChecks() {
        let web = Self.service("web3")
        let check = Self.check("service:web3", service: "web3")
        let plan = AntiEntropy.plan(Self.input(services: [web], checks: [check], remote: RemoteNodeState(node: Self.catalogNode)))
        #expect(plan.operations == [.registerService(web, checks: [check])])
    }

    @Test func inSyncMeansNoWrites() {
        let web = Self.service("web3")
        let check = Self.check("service:web3", service: "web3")
        var remote = RemoteNodeState(node: Self.catalogNode)
        remote.services["web3"] = web
        remote.checks["service:web3"] = check
        remote.checks["serfHealth"] = Self.check("serfHealth")
        remote.services["consul"] = Self.service("consul", port: 8300)
        #expect(AntiEntropy.plan(Self.input(services: [web], checks: [check], remote: remote)).operations.isEmpty)
    }

    @Test func catalogEditsAreWrittenBackAndStrangersRemoved() {
        let web = Self.service("web3")
        var remote = RemoteNodeState(node: Self.catalogNode)
        remote.services["web3"] = Self.service("web3", port: 9999)  // someone edited it through the catalog API
        remote.services["stray"] = Self.service("stray")
        remote.checks["stray-check"] = Self.check("stray-check", service: "stray")
        remote.checks["lonely"] = Self.check("lonely")
        let plan = AntiEntropy.plan(Self.input(services: [web], checks: [], remote: remote))
        #expect(plan.operations == [.deregisterService("stray"), .deregisterCheck("lonely"), .registerService(web, checks: [])])
    }

    @Test func statusChangesGoAtOnceOutputChangesWait() {
        let web = Self.service("web3")
        var remote = RemoteNodeState(node: Self.catalogNode)
        remote.services["web3"] = web
        remote.checks["c"] = Self.check("c", service: "web3", status: .passing, output: "old")
        var input = Self.input(services: [web], checks: [Self.check("c", service: "web3", status: .critical, output: "new")], remote: remote)
        input.outputSyncedAt["c"] = Self.t0 - .seconds(1)
        #expect(AntiEntropy.plan(input).operations == [.registerCheck(Self.check("c", service: "web3", status: .critical, output: "new"))])

        input.checks = [Self.check("c", service: "web3", status: .passing, output: "new")]
        let held = AntiEntropy.plan(input)
        #expect(held.operations.isEmpty)
        #expect(held.nextDeferredSync == Self.t0 - .seconds(1) + AntiEntropy.defaultCheckUpdateInterval)
        input.now = Self.t0 + AntiEntropy.defaultCheckUpdateInterval
        #expect(AntiEntropy.plan(input).operations.count == 1)
    }

    @Test func missingNodeIsRegisteredFirst() {
        let plan = AntiEntropy.plan(Self.input(services: [], checks: [Self.check("mem")], remote: RemoteNodeState()))
        #expect(plan.operations == [.registerNode, .registerCheck(Self.check("mem"))])
    }

    @Test func tagOverrideAdoptsCatalogTags() {
        let web = Self.service("web3", tags: ["a"], override: true)
        var remote = RemoteNodeState(node: Self.catalogNode)
        remote.services["web3"] = Self.service("web3", tags: ["b"], override: true)
        let plan = AntiEntropy.plan(Self.input(services: [web], checks: [], remote: remote))
        #expect(plan.operations.isEmpty)
        #expect(plan.adoptedTags == ["web3": ["b"]])
    }

    @Test func applyingOperationsConverges() {
        let web = Self.service("web3")
        let check = Self.check("service:web3", service: "web3")
        var remote = RemoteNodeState()
        remote.services["stray"] = Self.service("stray")
        remote.checks["stray-check"] = Self.check("stray-check", service: "stray")
        let input = Self.input(services: [web], checks: [check], remote: remote)
        for operation in AntiEntropy.plan(input).operations { remote = AntiEntropy.applying(operation, to: remote, node: Self.node) }
        var again = input
        again.remote = remote
        #expect(AntiEntropy.plan(again).operations.isEmpty)
    }

    @Test func fullSyncScalesWithClusterSize() {
        #expect(AntiEntropy.fullSyncInterval(clusterSize: 3) == .seconds(60))
        #expect(AntiEntropy.fullSyncInterval(clusterSize: 128) == .seconds(60))
        #expect(AntiEntropy.fullSyncInterval(clusterSize: 129) == .seconds(120))
        #expect(AntiEntropy.fullSyncInterval(clusterSize: 1000) == .seconds(240))
    }
}
