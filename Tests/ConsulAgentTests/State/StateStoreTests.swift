import Testing
import Raft
import ConsulCore
@testable import ConsulAgent

/// Drives the state store through `ConsulStateMachine`, the way Raft does: encoded commands in log order.
struct StateHarness {
    var machine = ConsulStateMachine(datacenter: "dc1")
    var index: UInt64 = 0

    @discardableResult
    mutating func run(_ command: StateCommand) -> StateCommandResult {
        index += 1
        return StateCommandResult.decode(machine.apply(command.encoded(), at: index))
    }

    var store: StateStore { machine.store }

    mutating func registerNode(_ name: String, address: String = "10.0.0.1") {
        run(.register(.init(node: node(name, address: address), service: nil, checks: [])))
    }

    func node(_ name: String, address: String = "10.0.0.1") -> CatalogNode {
        CatalogNode(id: "", name: name, address: address, datacenter: "dc1", taggedAddresses: [:], meta: [:], indexes: .init(createIndex: 0, modifyIndex: 0))
    }

    func service(_ id: String, name: String, tags: [String] = [], port: Int = 80) -> CatalogService {
        CatalogService(node: "", id: id, name: name, tags: tags, address: "", port: port, meta: [:], weights: .init(), enableTagOverride: false, indexes: .init(createIndex: 0, modifyIndex: 0))
    }

    func check(_ id: String, status: HealthStatus, serviceID: String = "") -> HealthCheck {
        HealthCheck(node: "", id: id, name: id, status: status, notes: "", output: "", serviceID: serviceID, serviceName: "", serviceTags: [], type: "", interval: "", timeout: "", indexes: .init(createIndex: 0, modifyIndex: 0))
    }

    func session(_ id: String, node: String, behavior: SessionBehavior = .release, checks: [String] = []) -> Session {
        Session(id: id, name: "", node: node, nodeChecks: checks, lockDelay: .seconds(15), behavior: behavior, ttl: "", indexes: .init(createIndex: 0, modifyIndex: 0))
    }

    static func kv(_ verb: StateCommand.KVVerb, _ key: String, _ value: String = "") -> StateCommand {
        .kv(.init(verb: verb, key: key, value: Array(value.utf8)))
    }
}

@Suite struct StateStoreTests {
    @Test func casWithZeroOnlyCreatesAndCasWithIndexOnlyUpdatesThatVersion() {
        var state = StateHarness()
        #expect(state.run(StateHarness.kv(.cas(0), "a", "1")) == .applied(true))
        #expect(state.run(StateHarness.kv(.cas(0), "a", "2")) == .applied(false))
        let version = state.store.kvEntry("a")!.indexes.modifyIndex
        #expect(state.run(StateHarness.kv(.cas(version + 5), "a", "3")) == .applied(false))
        #expect(state.run(StateHarness.kv(.cas(version), "a", "4")) == .applied(true))
        let entry = state.store.kvEntry("a")!
        #expect(entry.value == Array("4".utf8))
        #expect(entry.indexes.createIndex == 1)
        #expect(entry.indexes.modifyIndex == state.index)
    }

    @Test func keysRollUpAtTheSeparatorAndDeleteTreeRemovesAPrefix() {
        var state = StateHarness()
        for key in ["web/a", "web/sub/b", "web/sub/c", "webby", "x"] { state.run(StateHarness.kv(.set, key)) }
        #expect(state.store.kvKeys(prefix: "web/", separator: "/") == ["web/a", "web/sub/"])
        #expect(state.store.kvKeys(prefix: "", separator: nil).count == 5)
        state.run(StateHarness.kv(.deleteTree, "web"))
        #expect(state.store.kvKeys(prefix: "", separator: nil) == ["x"])
    }

    @Test func locksNeedALiveSessionAndReleaseWhenTheSessionEnds() {
        var state = StateHarness()
        state.registerNode("n1")
        #expect(state.run(StateHarness.kv(.lock(session: "nope"), "lock")) == .refused("invalid session \"nope\""))
        #expect(state.run(.createSession(state.session("s1", node: "n1"))) == .done)
        #expect(state.run(.createSession(state.session("s2", node: "n1"))) == .done)
        #expect(state.run(StateHarness.kv(.lock(session: "s1"), "lock", "held")) == .applied(true))
        #expect(state.run(StateHarness.kv(.lock(session: "s2"), "lock")) == .applied(false))
        #expect(state.store.kvEntry("lock")?.lockIndex == 1)
        #expect(state.run(StateHarness.kv(.unlock(session: "s2"), "lock")) == .applied(false))
        state.run(.destroySession(id: "s1"))
        #expect(state.store.kvEntry("lock")?.session == nil)
        #expect(state.run(StateHarness.kv(.lock(session: "s2"), "lock")) == .applied(true))
        #expect(state.store.kvEntry("lock")?.lockIndex == 2)
    }

    @Test func aCriticalNodeCheckInvalidatesItsSessionsAndDeleteBehaviorRemovesKeys() {
        var state = StateHarness()
        state.run(.register(.init(node: state.node("n1"), service: nil, checks: [state.check("serfHealth", status: .passing)])))
        state.run(.createSession(state.session("s1", node: "n1", behavior: .delete, checks: ["serfHealth"])))
        state.run(StateHarness.kv(.lock(session: "s1"), "leader"))
        state.run(.register(.init(node: state.node("n1"), service: nil, checks: [state.check("serfHealth", status: .critical)])))
        #expect(state.store.session("s1") == nil)
        #expect(state.store.kvEntry("leader") == nil)
        #expect(state.run(.createSession(state.session("s2", node: "n1", checks: ["serfHealth"]))) == .refused("Check 'serfHealth' is in critical state"))
    }

    /// Consul's lock-delay: keys released by invalidating their session (not by a plain release)
    /// cannot be acquired for the session's LockDelay; every server applying it records it.
    @Test func invalidatedSessionsLeaveALockDelayOnTheirKeys() {
        let clock = ManualClock()
        var state = StateHarness(machine: ConsulStateMachine(datacenter: "dc1", lockDelays: LockDelays(clock: clock)))
        state.registerNode("n1")
        state.run(.createSession(state.session("s1", node: "n1")))
        state.run(.createSession(state.session("s2", node: "n1")))
        #expect(state.run(StateHarness.kv(.lock(session: "s1"), "held")) == .applied(true))
        #expect(state.run(StateHarness.kv(.lock(session: "s2"), "released")) == .applied(true))
        #expect(state.run(StateHarness.kv(.unlock(session: "s2"), "released")) == .applied(true))
        state.run(.destroySession(id: "s1"))
        #expect(state.store.kvEntry("held")?.session == nil)
        #expect(state.machine.lockDelays.isDelayed("held"))
        #expect(!state.machine.lockDelays.isDelayed("released"), "a plain release sets no delay")
        #expect(state.store.releasedLocks.isEmpty, "the delays are not part of the published state")
        clock.advance(by: .seconds(14))
        #expect(state.machine.lockDelays.isDelayed("held"))
        clock.advance(by: .seconds(2))
        #expect(!state.machine.lockDelays.isDelayed("held"))
    }

    @Test func registeringServicesAndChecksAndDeregisteringTheNode() {
        var state = StateHarness()
        let web = state.service("web1", name: "web", tags: ["v1"])
        let check = state.check("service:web1", status: .passing, serviceID: "web1")
        state.run(.register(.init(node: state.node("n1"), service: web, checks: [check])))
        state.run(.register(.init(node: state.node("n2", address: "10.0.0.2"), service: state.service("web2", name: "Web", tags: ["v2"]), checks: [])))
        #expect(state.store.serviceInstances(named: "WEB").map(\.id) == ["web1", "web2"])
        #expect(state.store.serviceNamesWithTags.map(\.tags) == [["v1", "v2"]])
        #expect(state.store.checks(onNode: "n1").first?.serviceName == "web")
        let orphan = state.check("c", status: .passing, serviceID: "ghost")
        if case .refused = state.run(.register(.init(node: state.node("n1"), service: nil, checks: [orphan]))) {} else {
            Issue.record("a check for a missing service must be refused")
        }
        state.run(.deregister(node: "n1", serviceID: nil, checkID: nil))
        #expect(state.store.node(named: "n1") == nil)
        #expect(state.store.serviceInstances(named: "web").map(\.id) == ["web2"])
        #expect(state.store.allChecks.isEmpty)
    }

    @Test func reRegisteringUnchangedRecordsKeepsTheirIndexes() {
        var state = StateHarness()
        state.registerNode("n1")
        let before = state.store.index(of: .nodes)
        state.registerNode("n1")
        #expect(state.store.index(of: .nodes) == before)
        #expect(state.store.node(named: "N1")?.indexes.modifyIndex == before)
    }

    @Test func snapshotRestoresEveryTableAndIndex() throws {
        var state = StateHarness()
        state.run(.register(.init(node: state.node("n1"), service: state.service("db", name: "db"), checks: [state.check("serfHealth", status: .passing)])))
        state.run(.createSession(state.session("s1", node: "n1")))
        state.run(StateHarness.kv(.lock(session: "s1"), "k", "v"))
        let bytes = state.machine.snapshotData()
        var restored = ConsulStateMachine(datacenter: "dc1")
        try restored.restore(snapshotData: bytes)
        #expect(restored.snapshotData() == bytes)
        #expect(restored.store.kvEntry("k")?.session == "s1")
        #expect(restored.store.serviceInstances(named: "db").count == 1)
        #expect(restored.store.index(of: .kv) == state.store.index(of: .kv))
    }

    @Test func garbageCommandsAndSnapshotsAreErrorsNotTraps() {
        var random = SeededRandom(seed: 11)
        var state = StateHarness()
        for _ in 0..<2000 {
            var bytes = StateHarness.kv(.set, "key", "value").encoded()
            let position = Int(random.next() % UInt64(bytes.count))
            bytes[position] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            _ = try? StateCommand.decode(bytes)
        }
        // A real snapshot, damaged: cut short anywhere or with a byte changed, it restores to an
        // error or to some state, never a trap.
        state.run(.register(.init(node: state.node("n1"), service: state.service("db", name: "db"), checks: [state.check("serfHealth", status: .passing)])))
        state.run(StateHarness.kv(.set, "k", "v"))
        let snapshot = state.machine.snapshotData()
        for _ in 0..<2000 {
            var damaged = Array(snapshot.prefix(Int(random.next() % UInt64(snapshot.count + 1))))
            if !damaged.isEmpty, random.next() % 2 == 0 {
                damaged[Int(random.next() % UInt64(damaged.count))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            }
            var machine = ConsulStateMachine(datacenter: "dc1")
            _ = try? machine.restore(snapshotData: damaged)
        }
        state.index += 1
        let answer = StateCommandResult.decode(state.machine.apply([0xFF, 1, 2], at: state.index))
        if case .refused = answer {} else { Issue.record("an unreadable entry must be refused") }
    }
}
