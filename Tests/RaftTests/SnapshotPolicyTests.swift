import ConsulCore
import Testing
@testable import Raft

/// When a node snapshots: the pure policy, without a node around it.
@Suite struct SnapshotPolicyTests {
    let policy = SnapshotPolicy(threshold: 100, interval: .seconds(30), limit: 400)

    @Test func thresholdWaitsForTheCheckAndTheLimitForTheBytes() {
        #expect(!policy.wantsSnapshot(pending: 99, pendingBytes: 1 << 30, forcingBytes: 0, checkDue: true))
        #expect(policy.wantsSnapshot(pending: 100, pendingBytes: 0, forcingBytes: 1 << 30, checkDue: true))
        #expect(!policy.wantsSnapshot(pending: 399, pendingBytes: 1 << 30, forcingBytes: 0, checkDue: false))
        #expect(!policy.wantsSnapshot(pending: 400, pendingBytes: 999, forcingBytes: 1000, checkDue: false))
        #expect(policy.wantsSnapshot(pending: 400, pendingBytes: 1000, forcingBytes: 1000, checkDue: false))
        // Without periodic checks the threshold is enough on its own.
        #expect(SnapshotPolicy.every(5).wantsSnapshot(pending: 5, pendingBytes: 0, forcingBytes: 1 << 30, checkDue: false))
    }

    /// The forcing share lies between half and all of the last snapshot's size, and differs
    /// between draws (servers with states of one size do not all snapshot at the same entry).
    @Test func forcingBytesAreDrawnBetweenHalfAndAllOfTheSnapshot() {
        var random = SeededRandom(seed: 7)
        let draws = (0..<200).map { _ in policy.forcingBytes(lastSnapshotBytes: 1_000_001, using: &random) }
        #expect(draws.allSatisfy { (500_000...1_000_001).contains($0) })
        #expect(Set(draws).count > 150)
        #expect(draws.contains { $0 < 600_000 } && draws.contains { $0 > 900_000 })
        #expect(policy.forcingBytes(lastSnapshotBytes: 0, using: &random) == 0)
        #expect(policy.forcingBytes(lastSnapshotBytes: 1, using: &random) == 0)
        #expect(SnapshotPolicy.every(5).forcingBytes(lastSnapshotBytes: 1 << 20, using: &random) == 0)
    }
}
