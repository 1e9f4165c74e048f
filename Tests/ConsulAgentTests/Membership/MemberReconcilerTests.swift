import ConsulCore
@testable import Gossip
import Raft
import Testing

@testable import ConsulAgent

/// The leader's reconciliation of gossip members into the catalog and Raft, and the
/// `-bootstrap-expect` decision: pure functions over members, a state store and a configuration.
struct MemberReconcilerTests {
    static func member(_ name: String, _ ip: UInt8, status: SerfMemberStatus = .alive, server: Bool = false, expect: Int? = nil) -> SerfMemberInfo {
        var tags = ["dc": "dc1", "id": "id-\(name)", "role": server ? "consul" : "node"]
        if server { tags["port"] = "8300" }
        if let expect { tags["expect"] = String(expect) }
        return SerfMemberInfo(
            name: name, address: GossipAddress(ip: [10, 0, 0, ip], port: 8301), tags: tags, status: status, versions: .serfDefault)
    }

    struct World {
        var store = StateStore(datacenter: "dc1")
        var index: UInt64 = 0
        var configuration = ClusterConfiguration(servers: [ServerEntry(id: ServerID("id-s1"), suffrage: .voter, address: "10.0.0.1:8300")])
        var reconciler = MemberReconciler()
        var now = Timestamp.zero
        var autopilot = AgentConfig.AutopilotConfig()

        mutating func plan(_ members: [SerfMemberInfo]) -> [MemberReconciler.Action] {
            reconciler.plan(MemberReconciler.Input(
                members: members, store: store, configuration: configuration, selfName: "s1", selfID: ServerID("id-s1"),
                datacenter: "dc1", autopilot: autopilot, now: now))
        }

        /// Carries out catalog actions the way the leader does (through the state machine's rules).
        mutating func apply(_ actions: [MemberReconciler.Action]) {
            for action in actions {
                index += 1
                switch action {
                case .register(let registration): _ = store.apply(.register(registration), at: index)
                case .deregister(let node): _ = store.apply(.deregister(node: node, serviceID: nil, checkID: nil), at: index)
                default: break
                }
            }
        }
    }

    @Test func aliveMembersAreRegisteredOnceWithAPassingSerfCheck() throws {
        var world = World()
        let members = [Self.member("s1", 1, server: true), Self.member("c1", 4)]
        let actions = world.plan(members)
        #expect(actions.count == 1, "the leader registers itself elsewhere; only c1 is new: \(actions)")
        guard case .register(let registration) = try #require(actions.first) else { Issue.record("expected a registration"); return }
        #expect(registration.node.name == "c1")
        #expect(registration.node.address == "10.0.0.4")
        #expect(registration.node.id == "id-c1")
        #expect(registration.checks.map(\.status) == [.passing])
        #expect(registration.service == nil)
        world.apply(actions)
        #expect(world.plan(members).isEmpty, "nothing to do once the catalog agrees")
    }

    @Test func failedMembersTurnCriticalAndLeftOrReapedOnesAreDeregistered() {
        var world = World()
        world.apply(world.plan([Self.member("c1", 4), Self.member("c2", 5), Self.member("c3", 6)]))
        let failed = world.plan([Self.member("c1", 4, status: .failed), Self.member("c2", 5, status: .left), Self.member("c3", 6)])
        world.apply(failed)
        #expect(world.store.checks(onNode: "c1").first?.status == .critical)
        #expect(world.store.checks(onNode: "c1").first?.output == "Agent not live or unreachable")
        #expect(world.store.node(named: "c2") == nil)
        // c3 disappears from gossip altogether (reaped): it is deregistered too.
        world.apply(world.plan([Self.member("c1", 4, status: .failed)]))
        #expect(world.store.node(named: "c3") == nil)
        #expect(world.store.node(named: "c1") != nil)
    }

    @Test func newServersJoinAsNonVotersAndAutopilotPromotesThemOnceStable() {
        var world = World()
        world.autopilot.serverStabilizationTime = .seconds(10)
        let members = [Self.member("s1", 1, server: true), Self.member("s2", 2, server: true)]
        let first = world.plan(members)
        #expect(first.contains(.addNonVoter(ServerID("id-s2"), address: "10.0.0.2:8300")))
        guard case .register(let registration)? = first.first(where: { if case .register = $0 { true } else { false } }) else {
            Issue.record("expected s2's registration")
            return
        }
        #expect(registration.service?.name == "consul")
        #expect(registration.service?.port == 8300)
        world.configuration = ClusterConfiguration(servers: world.configuration.servers + [ServerEntry(id: ServerID("id-s2"), suffrage: .nonvoter, address: "10.0.0.2:8300")])
        #expect(!world.plan(members).contains(.promote(ServerID("id-s2"))))
        world.now = world.now + .seconds(9)
        #expect(!world.plan(members).contains(.promote(ServerID("id-s2"))))
        world.now = world.now + .seconds(2)
        #expect(world.plan(members).contains(.promote(ServerID("id-s2"))))
    }

    @Test func deadServersLeaveRaftOnlyWhenAReplacementJoinsAndAMajorityStays() {
        var world = World()
        world.configuration = ClusterConfiguration(voters: ["id-s1", "id-s2", "id-s3"].map(ServerID.init))
        let s1 = Self.member("s1", 1, server: true), s3 = Self.member("s3", 3, server: true)
        let s2Failed = Self.member("s2", 2, status: .failed, server: true)
        let replacement = Self.member("s4", 4, server: true)
        let isRemoval: (MemberReconciler.Action) -> Bool = { if case .removeServer = $0 { true } else { false } }
        #expect(!world.plan([s1, s2Failed, s3]).contains(where: isRemoval), "a crashed server keeps its seat until replaced")
        let replaced = world.plan([s1, s2Failed, s3, replacement])
        #expect(replaced.contains(.removeServer(ServerID("id-s2"))))
        #expect(replaced.contains(.addNonVoter(ServerID("id-s4"), address: "10.0.0.4:8300")))
        let twoDead = world.plan([s1, s2Failed, Self.member("s3", 3, status: .failed, server: true), replacement])
        #expect(!twoDead.contains(where: isRemoval), "removing 2 of 3 voters would not be safe")
        world.autopilot.cleanupDeadServers = false
        #expect(!world.plan([s1, s2Failed, s3, replacement]).contains(where: isRemoval))
        world.autopilot.cleanupDeadServers = true
        let left = world.plan([s1, Self.member("s2", 2, status: .left, server: true), s3])
        #expect(left.contains(.removeServer(ServerID("id-s2"))), "a server that left gracefully leaves Raft at once")
    }

    @Test func membersOfAnotherDatacenterAreIgnored() {
        var world = World()
        var stranger = Self.member("x1", 9, server: true)
        stranger.tags["dc"] = "dc2"
        #expect(world.plan([Self.member("s1", 1, server: true), stranger]).isEmpty)
    }

    @Test func bootstrapExpectWaitsForEveryServerAndRefusesConflicts() {
        let servers = (1...3).map { Self.member("s\($0)", UInt8($0), server: true, expect: 3) }
        #expect(ExpectBootstrap.decide(members: Array(servers.prefix(2)) + [Self.member("c1", 9)], expect: 3, datacenter: "dc1") == .wait(seen: 2))
        guard case .bootstrap(let configuration) = ExpectBootstrap.decide(members: servers, expect: 3, datacenter: "dc1") else {
            Issue.record("three servers expecting three must bootstrap")
            return
        }
        #expect(configuration.servers.map(\.address) == ["10.0.0.1:8300", "10.0.0.2:8300", "10.0.0.3:8300"])
        #expect(configuration.voters.count == 3)
        var conflicting = servers
        conflicting[1].tags["expect"] = "5"
        guard case .refuse(let reason) = ExpectBootstrap.decide(members: conflicting, expect: 3, datacenter: "dc1") else {
            Issue.record("a conflicting expect value must be refused")
            return
        }
        #expect(reason.contains("conflicting expect value"))
        var failedOne = servers
        failedOne[2].status = .failed
        #expect(ExpectBootstrap.decide(members: failedOne, expect: 3, datacenter: "dc1") == .wait(seen: 2))
    }
}
