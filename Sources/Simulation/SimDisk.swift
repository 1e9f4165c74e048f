import ConsulCore
import Raft

/// A simulated disk. Writes land in a volatile queue and become durable only when a sync completes;
/// a crash loses the unsynced queue except for a random prefix, possibly tearing the last write
/// (as a real WAL's tail is cut back to its last good record).
struct SimDisk {
    /// What survives a crash.
    private(set) var durable = RecoveredState()
    /// Written but not yet fsynced, oldest first.
    private(set) var unsynced: [PersistWork] = []

    /// A stored log that does not line up with a write (a gap) is a harness or core bug.
    struct Inconsistency: Error, CustomStringConvertible {
        var description: String
    }

    mutating func write(_ work: PersistWork) {
        unsynced.append(work)
    }

    /// Makes every unsynced write durable (group commit: one sync for all of them).
    mutating func sync() throws(Inconsistency) {
        let pending = unsynced
        unsynced.removeAll()
        for work in pending { try SimDisk.apply(work, to: &durable) }
    }

    /// Snapshots are written atomically (write + rename) when the state machine takes them.
    mutating func storeLocalSnapshot(_ snapshot: Snapshot) {
        if (durable.snapshot?.metadata.index ?? 0) < snapshot.metadata.index { durable.snapshot = snapshot }
    }

    /// A crash: keep `survivors` whole unsynced writes and, when `tornEntries` is set, the hard state
    /// and that many leading entries of the next one. Records are ordered snapshot, hard state,
    /// entries, compaction within a write, so a torn write keeps a prefix of them.
    mutating func crash(survivors: Int, tornEntries: Int?) throws(Inconsistency) {
        let kept = min(max(survivors, 0), unsynced.count)
        for work in unsynced.prefix(kept) { try SimDisk.apply(work, to: &durable) }
        if let tornEntries, kept < unsynced.count, unsynced[kept].snapshot == nil {
            var torn = unsynced[kept]
            torn.entries = Array(torn.entries.prefix(tornEntries))
            torn.compactThrough = nil
            try SimDisk.apply(torn, to: &durable)
        }
        unsynced.removeAll()
    }

    static func apply(_ work: PersistWork, to state: inout RecoveredState) throws(Inconsistency) {
        do {
            try state.apply(work)
        } catch {
            throw Inconsistency(description: "\(error)")
        }
    }
}
