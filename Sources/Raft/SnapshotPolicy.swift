import ConsulCore

/// When a `RaftNode` snapshots its state machine and compacts its log, as Consul's servers do: a
/// check every `interval` or so takes a snapshot when at least `threshold` entries were applied
/// since the last one (Consul's `raft_snapshot_interval` and `raft_snapshot_threshold`). Each wait
/// is drawn between `interval` and twice it, so the servers of one cluster, which apply the same
/// entries, do not all write their whole state at the same moment.
///
/// A snapshot writes the whole state, so taking one as soon as `threshold` is reached would, under
/// a steady write load, keep the disk busy with state files that the log's syncs then wait behind.
/// The log since the last snapshot is held in memory, though: past `limit` entries a snapshot is
/// taken at once, whatever the time, as soon as the commands in that log add up to a share of the
/// last snapshot's size (drawn per snapshot between a half and all of it). A large state is then
/// not rewritten for every `limit` entries (a few seconds of a heavy load), and the log held in
/// memory stays in proportion to the state held there anyway; the servers of one cluster, whose
/// states have the same size, draw different shares and do not all write theirs at once.
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

    /// Whether the `pending` entries applied since the last snapshot, whose commands hold
    /// `pendingBytes`, call for one now: at the periodic check (`due`) past the threshold (at once
    /// without periodic checks), or past the limit once `pendingBytes` reach `forcingBytes`.
    func wantsSnapshot(pending: UInt64, pendingBytes: UInt64, forcingBytes: UInt64, checkDue due: Bool) -> Bool {
        if pending >= threshold && (due || interval == .zero) { return true }
        return pending >= limit && pendingBytes >= forcingBytes
    }

    /// The command bytes past which the limit forces the next snapshot: between half and all of
    /// the last snapshot's size (nothing when its size is unknown or there is no periodic check).
    func forcingBytes(lastSnapshotBytes: UInt64, using random: inout SeededRandom) -> UInt64 {
        let half = lastSnapshotBytes / 2
        guard interval > .zero, half > 0 else { return 0 }
        return half + random.next() % (lastSnapshotBytes - half + 1)
    }

    /// The wait before the next periodic check: `interval` plus up to as much again.
    func nextCheckDelay(using random: inout SeededRandom) -> Duration {
        let nanoseconds = interval.totalNanoseconds
        guard nanoseconds > 0 else { return .zero }
        return .nanoseconds(nanoseconds + Int64(random.next() % UInt64(nanoseconds)))
    }
}
