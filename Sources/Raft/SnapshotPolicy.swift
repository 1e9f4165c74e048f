import ConsulCore

/// When a `RaftNode` snapshots its state machine and compacts its log, as Consul's servers do: a
/// check every `interval` or so takes a snapshot when at least `threshold` entries were applied
/// since the last one (Consul's `raft_snapshot_interval` and `raft_snapshot_threshold`). Each wait
/// is drawn between `interval` and twice it, so the servers of one cluster, which apply the same
/// entries, do not all write their whole state at the same moment.
///
/// A snapshot writes the whole state, so taking one as soon as `threshold` is reached would, under
/// a steady write load, keep the disk busy with state files that the log's syncs then wait behind.
/// The log since the last snapshot is held in memory, though: at `limit` entries a snapshot is
/// taken at once, whatever the time.
package struct SnapshotPolicy: Hashable, Sendable {
    package var threshold: UInt64
    /// Zero: no periodic check; a snapshot is taken as soon as `threshold` is reached.
    package var interval: Duration
    package var limit: UInt64

    /// `limit` defaults to four times `threshold`.
    package init(threshold: UInt64, interval: Duration, limit: UInt64? = nil) {
        self.threshold = max(threshold, 1)
        self.interval = interval
        let fourTimes = self.threshold > UInt64.max / 4 ? UInt64.max : self.threshold * 4
        self.limit = max(limit ?? fourTimes, self.threshold)
    }

    /// A snapshot as soon as `entries` were applied since the last one (tests and tools).
    package static func every(_ entries: UInt64) -> SnapshotPolicy {
        SnapshotPolicy(threshold: entries, interval: .zero, limit: entries)
    }

    /// Whether `pending` applied entries since the last snapshot call for one now: at the periodic
    /// check (`due`), or at once past the limit (or at the threshold without periodic checks).
    func wantsSnapshot(pending: UInt64, checkDue due: Bool) -> Bool {
        if pending >= limit { return true }
        return pending >= threshold && (due || interval == .zero)
    }

    /// The wait before the next periodic check: `interval` plus up to as much again.
    func nextCheckDelay(using random: inout SeededRandom) -> Duration {
        let nanoseconds = interval.totalNanoseconds
        guard nanoseconds > 0 else { return .zero }
        return .nanoseconds(nanoseconds + Int64(random.next() % UInt64(nanoseconds)))
    }
}
