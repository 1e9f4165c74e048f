import Testing
import Raft
import ConsulCore
@testable import ConsulAgent

/// `/v1/txn` node, service, check and session operations on the state store, applied through
/// encoded commands as Raft applies them: each verb, Consul's CAS rules and messages, atomic
/// rollback, the table indexes blocking queries wait on, and snapshot/restore afterwards.
@Suite struct CatalogTxnTests {
    static func outcome(_ result: StateCommandResult) -> TxnOutcome { TxnTests.outcome(result) }

    static func node(_ name: String, address: String = "10.0.0.1", id: String = "") -> CatalogNode {
        CatalogNode(id: id, name: name, address: address, datacenter: "dc1", taggedAddresses: [:], meta: [:], indexes: .init(createIndex: 0, modifyIndex: 0))
    }

    static func service(_ id: String, name: String = "web", port: Int = 80) -> CatalogService {
        StateHarness().service(id, name: name, tags: ["v1"], port: port)
    }

    static func check(_ id: String, node: String, status: HealthStatus = .passing, serviceID: String = "") -> HealthCheck {
        var check = StateHarness().check(id, status: status, serviceID: serviceID)
        check.node = node
        return check
    }

    /// A node `n1` with service `web1` (checked by `web-check`) and a node check `alive`.
    static func registered() -> StateHarness {
        var state = StateHarness()
        let result = Self.outcome(state.run(.txn([
            .node(.set, Self.node("n1"), index: 0),
            .service(.set, node: "n1", Self.service("web1"), index: 0),
            .check(.set, Self.check("web-check", node: "n1", serviceID: "web1"), index: 0),
            .check(.set, Self.check("alive", node: "n1"), index: 0),
        ])))
        #expect(result.errors.isEmpty)
        return state
    }

    @Test func nodeVerbs() {
        var state = StateHarness()
        let created = Self.outcome(state.run(.txn([.node(.set, Self.node("n1"), index: 0)])))
        #expect(created.results == [.node(CatalogNode(
            id: "", name: "n1", address: "10.0.0.1", datacenter: "dc1", taggedAddresses: [:], meta: [:], indexes: .init(createIndex: 1, modifyIndex: 1)))])
        #expect(state.store.node(named: "n1")?.indexes == .init(createIndex: 1, modifyIndex: 1))

        // Setting the same node again changes nothing, so the nodes table does not move.
        #expect(Self.outcome(state.run(.txn([.node(.set, Self.node("n1"), index: 0)]))).errors.isEmpty)
        #expect(state.store.index(of: .nodes) == 1)

        let got = Self.outcome(state.run(.txn([.node(.get, Self.node("N1"), index: 0)])))
        #expect(got.results.count == 1)
        let missing = Self.outcome(state.run(.txn([.node(.get, Self.node("nope"), index: 0)])))
        #expect(missing.errors == [TxnError(opIndex: 0, what: #"node "nope" doesn't exist"#)])

        // cas: 0 only creates; otherwise the ModifyIndex must match.
        let stale = Self.outcome(state.run(.txn([
            .node(.cas, Self.node("n1", address: "10.0.0.2"), index: 0),
            .node(.cas, Self.node("n1", address: "10.0.0.2"), index: 99),
            .node(.cas, Self.node("n2"), index: 7),
        ])))
        #expect(stale.errors == [
            TxnError(opIndex: 0, what: #"failed to set node "n1", index is stale"#),
            TxnError(opIndex: 1, what: #"failed to set node "n1", index is stale"#),
            TxnError(opIndex: 2, what: #"failed to set node "n2", index is stale"#),
        ])
        let swapped = Self.outcome(state.run(.txn([.node(.cas, Self.node("n1", address: "10.0.0.2"), index: 1), .node(.cas, Self.node("n2"), index: 0)])))
        #expect(swapped.errors.isEmpty)
        #expect(state.store.node(named: "n1")?.address == "10.0.0.2")
        #expect(state.store.node(named: "n1")?.indexes == .init(createIndex: 1, modifyIndex: state.index))

        // A node given by ID is found by it.
        state.run(.txn([.node(.set, Self.node("n3", id: "11111111-2222-3333-4444-555555555555"), index: 0)]))
        let byID = Self.outcome(state.run(.txn([.node(.get, Self.node("", id: "11111111-2222-3333-4444-555555555555"), index: 0)])))
        guard case .node(let found)? = byID.results.first else { Issue.record("no node by ID"); return }
        #expect(found.name == "n3")

        // delete-cas of a missing node fails (unlike KV's); delete of a missing node is fine.
        let deleteStale = Self.outcome(state.run(.txn([.node(.deleteCAS, Self.node("n2"), index: 1), .node(.deleteCAS, Self.node("gone"), index: 0)])))
        #expect(deleteStale.errors == [
            TxnError(opIndex: 0, what: #"failed to delete node "n2", index is stale"#),
            TxnError(opIndex: 1, what: #"failed to delete node "gone", index is stale"#),
        ])
        let n2Index = state.store.node(named: "n2")!.indexes.modifyIndex
        let deleted = Self.outcome(state.run(.txn([.node(.deleteCAS, Self.node("n2"), index: n2Index), .node(.delete, Self.node("gone"), index: 0)])))
        #expect(deleted.errors.isEmpty && deleted.results.isEmpty)
        #expect(state.store.node(named: "n2") == nil)
        #expect(state.store.index(of: .nodes) == state.index)
    }

    @Test func deletingANodeRemovesItsServicesChecksAndSessions() {
        var state = Self.registered()
        state.run(.createSession(state.session("s1", node: "n1", behavior: .release)))
        state.run(.txn([TxnTests.op(.lock, "lock", "v", session: "s1")]))
        let result = Self.outcome(state.run(.txn([.node(.delete, Self.node("n1"), index: 0)])))
        #expect(result.errors.isEmpty)
        #expect(state.store.node(named: "n1") == nil)
        #expect(state.store.services(onNode: "n1").isEmpty && state.store.serviceInstances(named: "web").isEmpty)
        #expect(state.store.checks(onNode: "n1").isEmpty)
        #expect(state.store.session("s1") == nil)
        #expect(state.store.kvEntry("lock")?.session == nil)
        for table in [StateTable.nodes, .services, .checks, .sessions, .kv] { #expect(state.store.index(of: table) == state.index) }
    }

    @Test func serviceVerbs() {
        var state = StateHarness()
        let orphan = Self.outcome(state.run(.txn([.service(.set, node: "n1", Self.service("web1"), index: 0)])))
        #expect(orphan.errors == [TxnError(opIndex: 0, what: "Missing node registration")])

        state = Self.registered()
        let got = Self.outcome(state.run(.txn([.service(.get, node: "n1", Self.service("web1"), index: 0)])))
        guard case .service(let web1)? = got.results.first else { Issue.record("no service"); return }
        #expect(web1.node == "n1" && web1.name == "web" && web1.indexes == .init(createIndex: 1, modifyIndex: 1))
        #expect(state.store.serviceInstances(named: "web").map(\.id) == ["web1"])
        let missing = Self.outcome(state.run(.txn([.service(.get, node: "n1", Self.service("nope"), index: 0)])))
        #expect(missing.errors == [TxnError(opIndex: 0, what: #"service "nope" on node "n1" doesn't exist"#)])

        let stale = Self.outcome(state.run(.txn([
            .service(.cas, node: "n1", Self.service("web1", port: 81), index: 0),
            .service(.cas, node: "n1", Self.service("web1", port: 81), index: 5),
        ])))
        #expect(stale.errors.map(\.what) == Array(repeating: #"failed to set service "web1" on node "n1", index is stale"#, count: 2))
        let renamed = Self.outcome(state.run(.txn([.service(.cas, node: "n1", Self.service("web1", name: "api", port: 81), index: 1)])))
        guard case .service(let updated)? = renamed.results.first else { Issue.record("no result"); return }
        #expect(updated.port == 81 && updated.indexes == .init(createIndex: 1, modifyIndex: state.index))
        // The by-name index follows a rename.
        #expect(state.store.serviceInstances(named: "web").isEmpty && state.store.serviceInstances(named: "api").count == 1)

        let deleteStale = Self.outcome(state.run(.txn([.service(.deleteCAS, node: "n1", Self.service("web1"), index: 1)])))
        #expect(deleteStale.errors == [TxnError(opIndex: 0, what: #"failed to delete service "web1" on node "n1", index is stale"#)])
        // Deleting a service removes its checks, as a deregistration does.
        let deleted = Self.outcome(state.run(.txn([.service(.deleteCAS, node: "n1", Self.service("web1"), index: updated.indexes.modifyIndex)])))
        #expect(deleted.errors.isEmpty && deleted.results.isEmpty)
        #expect(state.store.services(onNode: "n1").isEmpty)
        #expect(state.store.checks(onNode: "n1").map(\.id) == ["alive"])
        #expect(state.store.index(of: .services) == state.index && state.store.index(of: .checks) == state.index)
        #expect(Self.outcome(state.run(.txn([.service(.delete, node: "n1", Self.service("web1"), index: 0)]))).errors.isEmpty)
    }

    @Test func checkVerbs() {
        var state = Self.registered()
        let stored = state.store.checks(onNode: "n1").first { $0.id == "web-check" }
        // A service check carries its service's name and tags, whatever the operation said.
        #expect(stored?.serviceName == "web" && stored?.serviceTags == ["v1"])

        let orphan = Self.outcome(state.run(.txn([
            .check(.set, Self.check("c", node: "nowhere"), index: 0),
            .check(.set, Self.check("c", node: "n1", serviceID: "nope"), index: 0),
        ])))
        #expect(orphan.errors == [TxnError(opIndex: 0, what: "Missing node registration"), TxnError(opIndex: 1, what: "Missing service registration")])

        let got = Self.outcome(state.run(.txn([.check(.get, Self.check("alive", node: "n1"), index: 0)])))
        #expect(got.results.count == 1)
        let missing = Self.outcome(state.run(.txn([.check(.get, Self.check("nope", node: "n1"), index: 0)])))
        #expect(missing.errors == [TxnError(opIndex: 0, what: #"check "nope" on node "n1" doesn't exist"#)])

        let stale = Self.outcome(state.run(.txn([.check(.cas, Self.check("alive", node: "n1", status: .warning), index: 99)])))
        #expect(stale.errors == [TxnError(opIndex: 0, what: #"failed to set check "alive" on node "n1", index is stale"#)])
        let warned = Self.outcome(state.run(.txn([.check(.cas, Self.check("alive", node: "n1", status: .warning), index: 1)])))
        guard case .check(let alive)? = warned.results.first else { Issue.record("no result"); return }
        #expect(alive.status == .warning && alive.indexes == .init(createIndex: 1, modifyIndex: state.index))
        #expect(state.store.index(of: .checks) == state.index)

        let deleteStale = Self.outcome(state.run(.txn([.check(.deleteCAS, Self.check("alive", node: "n1"), index: 1)])))
        #expect(deleteStale.errors == [TxnError(opIndex: 0, what: #"failed to delete check "alive" on node "n1", index is stale"#)])
        let deleted = Self.outcome(state.run(.txn([
            .check(.deleteCAS, Self.check("alive", node: "n1"), index: alive.indexes.modifyIndex),
            .check(.delete, Self.check("web-check", node: "n1"), index: 0),
            .check(.delete, Self.check("never", node: "n1"), index: 0),
        ])))
        #expect(deleted.errors.isEmpty && deleted.results.isEmpty)
        #expect(state.store.checks(onNode: "n1").isEmpty)
    }

    @Test func aCriticalCheckSetInATransactionEndsTheSessionsThatDependOnIt() {
        var state = Self.registered()
        state.run(.createSession(state.session("s1", node: "n1", behavior: .delete, checks: ["alive"])))
        state.run(.txn([TxnTests.op(.lock, "owned", "v", session: "s1")]))
        #expect(Self.outcome(state.run(.txn([.check(.set, Self.check("alive", node: "n1", status: .critical), index: 0)]))).errors.isEmpty)
        #expect(state.store.session("s1") == nil && state.store.kvEntry("owned") == nil)
    }

    @Test func sessionDeleteReleasesOrDeletesItsLocks() {
        var state = Self.registered()
        state.run(.createSession(state.session("keep", node: "n1", behavior: .release)))
        state.run(.createSession(state.session("drop", node: "n1", behavior: .delete)))
        state.run(.txn([TxnTests.op(.lock, "a", "1", session: "keep"), TxnTests.op(.lock, "b", "2", session: "drop")]))
        let result = Self.outcome(state.run(.txn([.destroySession(id: "keep"), .destroySession(id: "drop"), .destroySession(id: "unknown")])))
        #expect(result.errors.isEmpty && result.results.isEmpty)
        #expect(state.store.allSessions.isEmpty)
        #expect(state.store.kvEntry("a")?.session == nil && state.store.kvEntry("a")?.value == Array("1".utf8))
        #expect(state.store.kvEntry("b") == nil)
        #expect(state.store.index(of: .sessions) == state.index && state.store.index(of: .kv) == state.index)
        // The lock-delay of released locks is recorded as for /v1/session/destroy.
        #expect(state.machine.lockDelays.isDelayed("a") && state.machine.lockDelays.isDelayed("b"))
    }

    @Test func aFailingOperationRollsBackEverythingBeforeIt() {
        var state = Self.registered()
        state.run(.createSession(state.session("s1", node: "n1")))
        state.run(.txn([TxnTests.op(.lock, "held", "v", session: "s1")]))
        let before = state.store
        let result = Self.outcome(state.run(.txn([
            TxnTests.op(.set, "k", "v"),
            .node(.set, Self.node("n2"), index: 0),
            .service(.set, node: "n2", Self.service("db", name: "db"), index: 0),
            .check(.set, Self.check("alive", node: "n1", status: .critical), index: 0),
            .node(.delete, Self.node("n1"), index: 0),
            .destroySession(id: "s1"),
            .service(.get, node: "n1", Self.service("missing"), index: 0),
        ])))
        #expect(result.results.isEmpty)
        #expect(result.errors == [TxnError(opIndex: 6, what: #"service "missing" on node "n1" doesn't exist"#)])
        #expect(state.store.allNodes == before.allNodes)
        #expect(state.store.services(onNode: "n1") == before.services(onNode: "n1"))
        #expect(state.store.allChecks == before.allChecks)
        #expect(state.store.kvEntry("k") == nil && state.store.session("s1") != nil)
        #expect(state.store.tableIndexes == before.tableIndexes)
        #expect(state.machine.watch.current.tableIndexes == before.tableIndexes)
        // The session's end was rolled back too: its lock is still held and no lock-delay was set.
        #expect(state.store.kvEntry("held")?.session == "s1" && !state.machine.lockDelays.isDelayed("held"))
    }

    @Test func aMixedTransactionMovesEveryTableItWroteAndWatchersSeeIt() {
        var state = StateHarness()
        let result = Self.outcome(state.run(.txn([
            TxnTests.op(.set, "config/web", "on"),
            .node(.set, Self.node("n1"), index: 0),
            .service(.set, node: "n1", Self.service("web1"), index: 0),
            .check(.set, Self.check("web-check", node: "n1", serviceID: "web1"), index: 0),
            TxnTests.op(.get, "config/web"),
        ])))
        #expect(result.errors.isEmpty)
        #expect(result.results.count == 5)
        guard case .kv(let read) = result.results[4] else { Issue.record("not a KV result"); return }
        #expect(read.value == Array("on".utf8))
        for table in [StateTable.kv, .nodes, .services, .checks] { #expect(state.store.index(of: table) == 1) }
        #expect(state.store.index(of: .sessions) == 0)
        #expect(state.machine.watch.current.index(of: [.services]) == 1)
        #expect(state.machine.watch.current.serviceInstances(named: "web").count == 1)
    }

    @Test func readOnlyCatalogTransactionsAreAnsweredFromTheStore() {
        let state = Self.registered()
        let read = state.store.readTxn([
            .node(.get, Self.node("n1"), index: 0), .service(.get, node: "n1", Self.service("web1"), index: 0),
            .check(.get, Self.check("alive", node: "n1"), index: 0),
        ])
        #expect(read.errors.isEmpty && read.results.count == 3)
        #expect(!TxnOperation.node(.get, Self.node("n1"), index: 0).isWrite)
        #expect(TxnOperation.node(.delete, Self.node("n1"), index: 0).isWrite && TxnOperation.destroySession(id: "s").isWrite)
    }

    @Test func snapshotAndRestoreAfterATransaction() throws {
        var state = Self.registered()
        state.run(.txn([TxnTests.op(.set, "k", "v"), .service(.set, node: "n1", Self.service("db1", name: "db"), index: 0)]))
        let bytes = state.machine.snapshotData()
        var restored = ConsulStateMachine(datacenter: "dc1")
        try restored.restore(snapshotData: bytes)
        #expect(restored.store.allNodes == state.store.allNodes)
        #expect(restored.store.services(onNode: "n1") == state.store.services(onNode: "n1"))
        #expect(restored.store.serviceInstances(named: "db").map(\.id) == ["db1"])
        #expect(restored.store.allChecks == state.store.allChecks)
        #expect(restored.store.kvEntry("k") == state.store.kvEntry("k"))
        #expect(restored.store.tableIndexes == state.store.tableIndexes && restored.store.lastIndex == state.store.lastIndex)
        #expect(restored.snapshotData() == bytes)
    }

    @Test func logFormats() throws {
        // A KV-only transaction keeps the format older servers read (tag 6, no kind bytes) ...
        let kvOnly = StateCommand.txn([TxnTests.op(.set, "a", "1")])
        let kvBytes = kvOnly.encoded()
        #expect(kvBytes.first == 6)
        #expect(try StateCommand.decode(kvBytes) == kvOnly)
        // ... and a log entry written before catalog operations existed still decodes.
        var old = ByteWriter()
        old.u8(6); old.u32(1)
        old.u8(0); old.text("key"); old.blob(Array("v".utf8)); old.u64(3); old.u64(0); old.text("")
        #expect(try StateCommand.decode(old.bytes) == .txn([.kv(TxnKVOperation(verb: .set, key: "key", value: Array("v".utf8), flags: 3))]))

        let mixed = StateCommand.txn([
            TxnTests.op(.cas, "a", "1", index: 4), .node(.cas, Self.node("n1", id: "11111111-2222-3333-4444-555555555555"), index: 3),
            .service(.deleteCAS, node: "n1", Self.service("web1"), index: 9), .check(.get, Self.check("c", node: "n1", status: .warning), index: 0),
            .destroySession(id: "s1"),
        ])
        let mixedBytes = mixed.encoded()
        #expect(mixedBytes.first == 12)
        #expect(try StateCommand.decode(mixedBytes) == mixed)
        #expect(throws: DecodeError.self) { try StateCommand.decode(Array(mixedBytes.dropLast())) }

        let outcome = StateCommandResult.txn(TxnOutcome(results: [
            .kv(KVEntry(key: "a", flags: 0, value: [], lockIndex: 0, session: nil, indexes: .init(createIndex: 1, modifyIndex: 2))),
            .node(Self.node("n1")), .service(Self.service("web1")), .check(Self.check("c", node: "n1")),
        ]))
        #expect(StateCommandResult.decode(outcome.encoded()) == outcome)
    }
}
