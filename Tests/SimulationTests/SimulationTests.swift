import ConsulCore
import Raft
import Testing
@testable import Simulation

@Suite struct SimulationTests {
    /// A handful of seeds pass every safety check, linearizability and the liveness phase.
    @Test(arguments: Array(UInt64(1)...UInt64(16)))
    func seedPasses(seed: UInt64) {
        let report = RaftSimulation(seed: seed).run()
        #expect(report.violation == nil, "seed \(seed): \(report.violation.map { "\($0)" } ?? "")")
        #expect(report.committed > 0)
    }

    /// Seeds that failed before a core fix, replayed on this simulator version: before the fix
    /// that lets a server campaign while its own removal is uncommitted, all of these deadlocked
    /// (liveness failure). New parameter draws go last in `SimulationParameters.init` so these keep
    /// their scenarios; if the draws do change, re-derive the list by reverting the fix.
    @Test(arguments: [UInt64(182), 460, 586, 689, 910, 1079])
    func regressionSeedPasses(seed: UInt64) {
        let report = RaftSimulation(seed: seed).run()
        #expect(report.violation == nil, "seed \(seed): \(report.violation.map { "\($0)" } ?? "")")
    }

    /// A single-server cluster that crashes after electing itself in term 3, before that vote is
    /// on disk, wins term 3 again after restarting and writes different entries there. Nothing
    /// of the first attempt was durable or sent, so this is safe; the log-matching checker once
    /// looked at unsynced in-memory writes and flagged it. It now checks what reaches a disk.
    @Test func singleServerTermReuseAfterLostVoteIsNotAViolation() {
        let report = RaftSimulation(seed: 117_504).run()
        #expect(report.violation == nil, "\(report.violation.map { "\($0)" } ?? "")")
    }

    /// Duplicated InstallSnapshot responses each made the leader send another chunk, whose answers
    /// did the same: a storm that grew without virtual time moving (seed 202709 hung). The leader
    /// now only advances on an answer to the chunk in flight; runaway runs also hit an event budget.
    @Test func duplicatedSnapshotAnswersDoNotBreedAStorm() {
        let report = RaftSimulation(seed: 202_709).run()
        #expect(report.violation == nil, "\(report.violation.map { "\($0)" } ?? "")")
        #expect(report.events < RaftSimulation.maxEvents / 10)
    }

    /// Same seed, same run: the whole trace (and the event fingerprint) repeat exactly.
    @Test func sameSeedGivesSameTrace() {
        let first = RaftSimulation(seed: 12345, trace: true).run()
        let second = RaftSimulation(seed: 12345, trace: true).run()
        #expect(first.trace.count > 50)
        #expect(first.trace == second.trace)
        #expect(first.fingerprint == second.fingerprint)
        let untraced = RaftSimulation(seed: 12345).run()
        #expect(untraced.fingerprint == first.fingerprint)
        let other = RaftSimulation(seed: 12346, trace: true).run()
        #expect(other.trace != first.trace)
    }

    @Test func commandLineParsing() {
        #expect(RaftSimulationCommand.parse(["--seed", "5", "--count", "10"]) == .init(seed: 5, count: 10, trace: false))
        #expect(RaftSimulationCommand.parse(["--seed", "5", "--trace"]) == .init(seed: 5, count: 1, trace: true))
        #expect(RaftSimulationCommand.parse(["--seed", "x"]) == nil)
        #expect(RaftSimulationCommand.parse(["--bogus"]) == nil)
        #expect(RaftSimulationCommand.parse(["--seed", "1", "--count", "2", "--trace"]) == nil)
        var errors: [String] = []
        #expect(SimulatorCommand.main(["nope"], out: { _ in }, err: { errors.append($0) }) == 2)
        #expect(errors.first?.hasPrefix("usage:") == true)
        var lines: [String] = []
        #expect(SimulatorCommand.main(["raft", "--seed", "3", "--count", "2"], out: { lines.append($0) }, err: { _ in }) == 0)
        #expect(lines.last == "raft: 2 seeds, 0 failures")
    }
}

/// The checkers must be able to fail: feed them fabricated bad histories and logs.
@Suite struct CheckerTests {
    private func op(_ kind: RegisterOperation.Kind, _ start: UInt64, _ end: UInt64?, _ outcome: RegisterOperation.Outcome) -> RegisterOperation {
        RegisterOperation(
            kind: kind, invoked: Timestamp(nanoseconds: start), completed: end.map { Timestamp(nanoseconds: $0) }, outcome: outcome)
    }

    @Test func linearizableHistoriesPass() {
        #expect(LinearizabilityChecker.check([op(.put(1), 0, 10, .ok), op(.get, 20, 30, .value(1))]))
        // Concurrent put and get: the get may see either value.
        #expect(LinearizabilityChecker.check([op(.put(1), 0, 10, .ok), op(.put(2), 5, 30, .ok), op(.get, 6, 8, .value(2))]))
        #expect(LinearizabilityChecker.check([op(.put(1), 0, 10, .ok), op(.cas(expected: 1, new: 2), 11, 12, .cas(succeeded: true)), op(.get, 13, 14, .value(2))]))
        // A write with unknown outcome may have happened...
        #expect(LinearizabilityChecker.check([op(.put(7), 0, nil, .unknown), op(.get, 20, 30, .value(7))]))
        // ...or not.
        #expect(LinearizabilityChecker.check([op(.put(7), 0, nil, .unknown), op(.get, 20, 30, .value(0))]))
    }

    @Test func staleReadIsCaught() {
        #expect(!LinearizabilityChecker.check([op(.put(1), 0, 10, .ok), op(.put(2), 11, 20, .ok), op(.get, 21, 30, .value(1))]))
    }

    @Test func impossibleCasIsCaught() {
        #expect(!LinearizabilityChecker.check([op(.put(1), 0, 10, .ok), op(.cas(expected: 5, new: 6), 11, 20, .cas(succeeded: true))]))
        #expect(!LinearizabilityChecker.check([op(.put(1), 0, 10, .ok), op(.cas(expected: 1, new: 6), 11, 20, .cas(succeeded: false))]))
        // A value that appears out of nowhere.
        #expect(!LinearizabilityChecker.check([op(.get, 0, 10, .value(9))]))
        // A read that sees a write and then an older state.
        #expect(!LinearizabilityChecker.check([
            op(.put(1), 0, 100, .ok), op(.get, 10, 20, .value(1)), op(.get, 30, 40, .value(0)),
        ]))
    }

    @Test func twoLeadersInOneTermAreCaught() throws {
        var checker = SafetyChecker()
        try checker.observeLeader(ServerID("a"), term: 3)
        try checker.observeLeader(ServerID("a"), term: 3)
        #expect(throws: Violation.self) { try checker.observeLeader(ServerID("b"), term: 3) }
    }

    @Test func logMatchingViolationIsCaught() throws {
        var checker = SafetyChecker()
        try checker.observeWrite(LogEntry(index: 5, term: 2, payload: .command([1])), previousTerm: 1, by: ServerID("a"))
        #expect(throws: Violation.self) {
            try checker.observeWrite(LogEntry(index: 5, term: 2, payload: .command([2])), previousTerm: 1, by: ServerID("b"))
        }
        #expect(throws: Violation.self) {
            try checker.observeWrite(LogEntry(index: 5, term: 2, payload: .command([1])), previousTerm: 2, by: ServerID("c"))
        }
    }

    @Test func changedCommittedEntryIsCaught() throws {
        var checker = SafetyChecker()
        try checker.observeCommitted(LogEntry(index: 4, term: 2, payload: .noop), by: ServerID("a"), inTerm: 2)
        #expect(throws: Violation.self) {
            try checker.observeCommitted(LogEntry(index: 4, term: 3, payload: .noop), by: ServerID("b"), inTerm: 3)
        }
        try checker.observeApplied(index: 4, digest: 10, by: ServerID("a"))
        #expect(throws: Violation.self) { try checker.observeApplied(index: 4, digest: 11, by: ServerID("b")) }
    }

    @Test func leaderMissingCommittedEntryIsCaught() throws {
        var checker = SafetyChecker()
        for index in 1...3 {
            try checker.observeCommitted(LogEntry(index: LogIndex(index), term: 1, payload: .noop), by: ServerID("a"), inTerm: 1)
        }
        let short = RaftLog(snapshot: nil, entries: (1...2).map { LogEntry(index: $0, term: 1, payload: .noop) })
        #expect(throws: Violation.self) { try checker.checkLeaderCompleteness(short, leader: ServerID("b"), term: 2) }
        let wrong = RaftLog(snapshot: nil, entries: [
            LogEntry(index: 1, term: 1, payload: .noop), LogEntry(index: 2, term: 2, payload: .noop), LogEntry(index: 3, term: 2, payload: .noop),
        ])
        #expect(throws: Violation.self) { try checker.checkLeaderCompleteness(wrong, leader: ServerID("b"), term: 2) }
        let good = RaftLog(snapshot: nil, entries: (1...4).map { LogEntry(index: $0, term: 1, payload: .noop) })
        try checker.checkLeaderCompleteness(good, leader: ServerID("b"), term: 2)
        // Found by the simulator (a paused candidate won term 4 with votes cast before index 3 was
        // committed in term 5): not a violation, completeness binds only leaders of later terms.
        var later = SafetyChecker()
        try later.observeCommitted(LogEntry(index: 1, term: 1, payload: .noop), by: ServerID("a"), inTerm: 1)
        try later.observeCommitted(LogEntry(index: 2, term: 5, payload: .noop), by: ServerID("c"), inTerm: 5)
        let behind = RaftLog(snapshot: nil, entries: [LogEntry(index: 1, term: 1, payload: .noop)])
        try later.checkLeaderCompleteness(behind, leader: ServerID("b"), term: 4)
        #expect(throws: Violation.self) { try later.checkLeaderCompleteness(behind, leader: ServerID("b"), term: 6) }
    }

    /// A disk that loses its unsynced writes on a crash, keeping a torn prefix.
    @Test func diskLosesUnsyncedWritesOnCrash() throws {
        var disk = SimDisk()
        let e1 = LogEntry(index: 1, term: 1, payload: .noop)
        disk.write(PersistWork(hardState: HardState(term: 1), entries: [e1]))
        try disk.sync()
        let more = (2...5).map { LogEntry(index: $0, term: 2, payload: .noop) }
        disk.write(PersistWork(hardState: HardState(term: 2, votedFor: ServerID("a")), entries: more))
        try disk.crash(survivors: 0, tornEntries: 2)
        #expect(disk.durable.entries.map(\.index) == [1, 2, 3])
        #expect(disk.durable.hardState.term == 2)
        disk.write(PersistWork(entries: [LogEntry(index: 4, term: 2, payload: .noop)]))
        try disk.crash(survivors: 0, tornEntries: nil)
        #expect(disk.durable.entries.map(\.index) == [1, 2, 3])
    }
}
