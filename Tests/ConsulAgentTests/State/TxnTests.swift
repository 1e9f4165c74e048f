import Testing
import Raft
import ConsulCore
import NIOCore
import NIOPosix
@testable import ConsulAgent

/// `/v1/txn` on the state store (through encoded commands, as Raft applies them) and its request
/// parsing through the request path.
@Suite struct TxnTests {
    static func op(_ verb: TxnKVOperation.Verb, _ key: String, _ value: String = "", index: UInt64 = 0, session: String = "") -> TxnOperation {
        .kv(TxnKVOperation(verb: verb, key: key, value: Array(value.utf8), index: index, session: session))
    }

    /// The KV entries among a transaction's results.
    static func kv(_ outcome: TxnOutcome) -> [KVEntry] {
        outcome.results.compactMap { if case .kv(let entry) = $0 { return entry } else { return nil } }
    }

    static func outcome(_ result: StateCommandResult) -> TxnOutcome {
        guard case .txn(let outcome) = result else { Issue.record("not a txn result: \(result)"); return TxnOutcome() }
        return outcome
    }

    @Test func writesApplyTogetherAndResultsBlankValuesExceptReads() {
        var state = StateHarness()
        state.run(StateHarness.kv(.set, "old", "x"))
        let result = Self.outcome(state.run(.txn([
            Self.op(.set, "a", "1"), Self.op(.checkNotExists, "b"), Self.op(.set, "b", "2"),
            Self.op(.get, "a"), Self.op(.delete, "old"), Self.op(.getTree, ""),
        ])))
        #expect(result.errors.isEmpty)
        let entries = Self.kv(result)
        #expect(entries.map(\.key) == ["a", "b", "a", "a", "b"])
        #expect(entries[0].value.isEmpty && entries[1].value.isEmpty)
        #expect(entries[2].value == Array("1".utf8))
        #expect(entries[0].indexes == RaftIndexes(createIndex: 2, modifyIndex: 2))
        #expect(state.store.kvEntry("old") == nil)
        #expect(state.store.kvEntry("b")?.value == Array("2".utf8))
        #expect(state.store.index(of: .kv) == 2)
    }

    @Test func anyFailureAppliesNothingAndReportsEveryFailedOperation() {
        var state = StateHarness()
        state.run(StateHarness.kv(.set, "a", "1"))
        let before = state.store.kv
        let result = Self.outcome(state.run(.txn([
            Self.op(.set, "new", "n"), Self.op(.cas, "a", "2", index: 99), Self.op(.delete, "a"),
            Self.op(.get, "missing"), Self.op(.checkIndex, "new", index: 3),
        ])))
        #expect(result.results.isEmpty)
        #expect(result.errors == [
            TxnError(opIndex: 1, what: #"failed to set key "a", index is stale"#),
            TxnError(opIndex: 3, what: #"key "missing" doesn't exist"#),
            TxnError(opIndex: 4, what: "current modify index 2 != 3"),
        ])
        #expect(state.store.kv.values == before.values)
        #expect(state.store.index(of: .kv) == 1)
        #expect(state.store.lastIndex == 2)
    }

    @Test func locksAndSessionChecks() {
        var state = StateHarness()
        state.registerNode("n1")
        state.run(.createSession(state.session("s1", node: "n1")))
        let missing = Self.outcome(state.run(.txn([Self.op(.lock, "l", "v", session: "nope")])))
        #expect(missing.errors == [TxnError(opIndex: 0, what: #"invalid session "nope""#)])
        let locked = Self.outcome(state.run(.txn([Self.op(.lock, "l", "v", session: "s1"), Self.op(.checkSession, "l", session: "s1")])))
        #expect(locked.errors.isEmpty)
        #expect(Self.kv(locked).first?.session == "s1" && Self.kv(locked).first?.lockIndex == 1)
        let wrong = Self.outcome(state.run(.txn([Self.op(.unlock, "l", session: "s2"), Self.op(.checkSession, "l", session: "")])))
        #expect(wrong.errors.map(\.opIndex) == [0, 1])
        #expect(wrong.errors[1].what == #"failed session check for key "l", current session "s1" != """#)
        #expect(Self.outcome(state.run(.txn([Self.op(.unlock, "l", session: "s1")]))).errors.isEmpty)
        #expect(state.store.kvEntry("l")?.session == nil)
    }

    @Test func readOnlyTransactionsChangeNothing() {
        var state = StateHarness()
        state.run(StateHarness.kv(.set, "k/1", "a"))
        state.run(StateHarness.kv(.set, "k/2", "b"))
        let result = state.store.readTxn([Self.op(.getTree, "k/"), Self.op(.getOrEmpty, "none"), Self.op(.checkIndex, "k/1", index: 1)])
        #expect(result.errors.isEmpty)
        #expect(Self.kv(result).map(\.key) == ["k/1", "k/2", "none", "k/1"])
        #expect(Self.kv(result)[1].value == Array("b".utf8))
    }

    @Test func commandAndOutcomeSurviveEncoding() throws {
        let command = StateCommand.txn([Self.op(.deleteCAS, "x", index: 7), Self.op(.lock, "y", "v", session: "s")])
        #expect(try StateCommand.decode(command.encoded()) == command)
        let outcome = StateCommandResult.txn(TxnOutcome(results: [], errors: [TxnError(opIndex: 3, what: "no")]))
        #expect(StateCommandResult.decode(outcome.encoded()) == outcome)
    }

    // MARK: - Request parsing (answered before any forwarding)

    static func call(_ method: String, _ body: String) async throws -> (Int, String) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let dispatcher = APIDispatcher(agent: RPCRelayTests.clientRuntime(), seed: 1)
        let answer = try await AgentLocalEndpointTests.call(dispatcher, group.next(), method, "/v1/txn", body)
        try await group.shutdownGracefully()
        return answer
    }

    @Test func badBodiesAreRefusedWithAMessage() async throws {
        let badJSON = try await Self.call("PUT", "[{")
        #expect(badJSON.0 == 400 && badJSON.1.hasPrefix("Failed to parse body"))
        let notList = try await Self.call("PUT", #"{"KV": {}}"#)
        #expect(notList.0 == 400 && notList.1.contains("list of operations"))
        let badBase64 = try await Self.call("PUT", #"[{"KV": {"Verb": "set", "Key": "a", "Value": "!!!"}}]"#)
        #expect(badBase64 == (400, "Failed to parse body: operation 0: failed to decode value: illegal base64 data"))
        let badFlags = try await Self.call("PUT", #"[{"KV": {"Verb": "set", "Key": "a", "Flags": "x"}}]"#)
        #expect(badFlags.0 == 400)
        #expect(try await Self.call("GET", "[]").0 == 405)
        let many = "[" + Array(repeating: #"{"KV": {"Verb": "get", "Key": "a"}}"#, count: 129).joined(separator: ",") + "]"
        #expect(try await Self.call("PUT", many) == (413, "Transaction contains too many operations (129 > 128)"))
    }

    @Test func unknownVerbsAreConflictsWithTheirPosition() async throws {
        let answer = try await Self.call("PUT", #"[{"KV": {"Verb": "get", "Key": "a"}}, {"kv": {"verb": "frob", "key": "a"}}, {}]"#)
        #expect(answer.0 == 409)
        #expect(answer.1 == #"{"Results":null,"Errors":[{"OpIndex":1,"What":"unknown KV verb \"frob\""},{"OpIndex":2,"What":"no operation specified"}]}"#)
    }
}
