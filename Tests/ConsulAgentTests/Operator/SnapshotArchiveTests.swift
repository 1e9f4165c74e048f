import ConsulCore
import Raft
import Testing
@testable import ConsulAgent

/// Snapshot archives (gzip'd tar of meta.json, state.bin, SHA256SUMS) and the restore command.
@Suite struct SnapshotArchiveTests {
    static func sampleState() -> StateHarness {
        var state = StateHarness()
        state.registerNode("n1")
        state.run(StateHarness.kv(.set, "a", "1"))
        state.run(.setAutopilot(AgentConfig.AutopilotConfig(), cas: nil))
        return state
    }

    static func archive(_ state: StateHarness) throws -> [UInt8] {
        let data = state.machine.snapshotData()
        return try SnapshotArchive(meta: .init(id: "2-3-1", index: state.store.lastIndex, term: 2, size: data.count), state: data).encoded()
    }

    @Test func archivesRoundTripAndCarryConsulsLayout() throws {
        let state = Self.sampleState()
        let bytes = try Self.archive(state)
        #expect(bytes.prefix(2) == [0x1f, 0x8b])
        let decoded = try SnapshotArchive.decode(bytes)
        #expect(decoded.meta.index == 3 && decoded.meta.term == 2 && decoded.meta.id == "2-3-1")
        #expect(decoded.state == state.machine.snapshotData())
        let tar = try Gzip.decompress(bytes, limit: 1 << 20)
        #expect(try Tar.read(tar).keys.sorted() == ["SHA256SUMS", "meta.json", "state.bin"])
    }

    @Test func corruptArchivesAreNamedProblemsNotTraps() throws {
        let bytes = try Self.archive(Self.sampleState())
        #expect(throws: SnapshotArchive.Problem.self) { try SnapshotArchive.decode(Array("not a snapshot".utf8)) }
        #expect(throws: SnapshotArchive.Problem.self) { try SnapshotArchive.decode(Array(bytes.prefix(bytes.count / 2))) }
        // A changed state.bin inside a well-formed archive fails the sum.
        var tar = try Gzip.decompress(bytes, limit: 1 << 20)
        tar[512 * 3 + 520] ^= 0xFF  // inside state.bin (after meta.json's header, body, and state.bin's header)
        do {
            _ = try SnapshotArchive.decode(try Gzip.compress(tar))
            Issue.record("a damaged archive must not decode")
        } catch {
            #expect("\(error)".contains("does not match") || "\(error)".contains("checksum"))
        }
        var random = SeededRandom(seed: 5)
        for _ in 0..<300 {
            var damaged = bytes
            damaged[Int(random.next() % UInt64(damaged.count))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            _ = try? SnapshotArchive.decode(damaged)
        }
    }

    @Test func restoreCommandReplacesTheStateAndMovesEveryTableIndex() throws {
        let saved = Self.sampleState()
        var state = StateHarness()
        state.run(StateHarness.kv(.set, "other", "x"))
        state.run(StateHarness.kv(.set, "more", "y"))
        state.run(StateHarness.kv(.set, "again", "z"))
        state.run(StateHarness.kv(.set, "last", "w"))
        #expect(state.run(.restoreState(saved.machine.snapshotData())) == .done)
        #expect(state.store.kvEntry("a")?.value == Array("1".utf8) && state.store.kvEntry("other") == nil)
        #expect(state.store.node(named: "n1") != nil && state.store.autopilot != nil)
        #expect(state.store.index(of: .kv) == 5 && state.store.lastIndex == 5)
        #expect(state.run(.restoreState([1, 2, 3])) != .done)
        #expect(state.store.kvEntry("a") != nil)
        let command = StateCommand.restoreState([9, 8, 7])
        #expect(try StateCommand.decode(command.encoded()) == command)
    }
}
