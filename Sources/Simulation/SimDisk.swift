import ConsulCore
import Raft

/// A simulated disk. Writes land in a volatile queue and become durable only when a sync completes;
/// a crash loses the unsynced queue except for a random prefix, possibly tearing the last write
/// (as a real WAL's tail is cut back to its last good record).
///
/// Alongside the durable state it keeps the byte images the real stores would hold: the WAL's
/// (`WALRecord`, torn tails included) and the stable store's (term and vote, replaced atomically),
/// so every restart also checks that reading those bytes back gives the same state.
struct SimDisk {
    /// What survives a crash.
    private(set) var durable = RecoveredState()
    /// Written but not yet fsynced, oldest first.
    private(set) var unsynced: [PersistWork] = []
    /// The WAL bytes for `durable` (snapshot data lives in the snapshot store, not here).
    private(set) var walImage: [UInt8] = []
    /// The stable store's file for `durable.hardState` (empty: never written).
    private(set) var stableImage: [UInt8] = []
    /// Entries that became durable since the last `takeDurableWrites`, each with the term of the
    /// entry before it on this disk: what the log-matching checker looks at. Entries that never
    /// reached the disk were never visible to anyone (messages leave only after persistence).
    private var durableWrites: [(entry: LogEntry, previousTerm: Term?)] = []

    mutating func takeDurableWrites() -> [(entry: LogEntry, previousTerm: Term?)] {
        defer { durableWrites.removeAll() }
        return durableWrites
    }

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
        for work in pending { try makeDurable(work) }
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
        for work in unsynced.prefix(kept) { try makeDurable(work) }
        if let tornEntries, kept < unsynced.count, unsynced[kept].snapshot == nil {
            var torn = unsynced[kept]
            torn.entries = Array(torn.entries.prefix(tornEntries))
            torn.compactThrough = nil
            try makeDurable(torn)
        }
        // The write after the last survivor reached the platter only partly: half its bytes.
        if kept < unsynced.count, let lost = try? WALRecord.encode(Self.withoutSnapshotData(unsynced[kept])) {
            walImage += lost.prefix(lost.count / 2)
        }
        unsynced.removeAll()
    }

    /// Replays the WAL image as a restarting server would (cutting a torn tail) and reads the stable
    /// store's, and checks they agree with the durable state on the log and the hard state.
    mutating func checkWALReplay() throws(Inconsistency) {
        let scan = WALRecord.scan(walImage)
        var replayed = RecoveredState()
        for record in scan.records {
            if record.isCheckpoint { replayed = RecoveredState() }
            do { try replayed.apply(record.work) } catch {
                throw Inconsistency(description: "WAL replay failed: \(error)")
            }
        }
        guard replayed.entries == durable.entries else {
            throw Inconsistency(description:
                "WAL replay gives \(replayed.entries.count) entries; disk holds \(durable.entries.count) entries")
        }
        let stable: HardState
        do { stable = stableImage.isEmpty ? HardState() : try StableStore.decode(stableImage, path: "stable-state") } catch {
            throw Inconsistency(description: "stable store: \(error)")
        }
        guard stable == durable.hardState else {
            throw Inconsistency(description: "stable store holds term \(stable.term), disk holds term \(durable.hardState.term)")
        }
        // A restarted server cuts the torn tail off before appending again.
        walImage.removeSubrange(scan.validBytes...)
    }

    private mutating func makeDurable(_ work: PersistWork) throws(Inconsistency) {
        try SimDisk.apply(work, to: &durable)
        if work.hardState != nil { stableImage = StableStore.encode(durable.hardState) }
        if let first = work.entries.first {
            var previous = Self.term(at: first.index - 1, in: durable)
            for entry in work.entries {
                durableWrites.append((entry, previous))
                previous = entry.term
            }
        }
        do {
            if work.compactThrough != nil || work.snapshot != nil {
                // After compaction or an installed snapshot, the image is rewritten as one
                // checkpoint record carrying the snapshot point. (The real WAL appends a compaction
                // record and deletes covered segments after its own snapshots; that replays to the
                // same state, which is what the model needs.)
                let checkpoint = PersistWork(snapshot: durable.snapshot, entries: durable.entries)
                walImage = try WALRecord.encode(Self.withoutSnapshotData(checkpoint), checkpoint: true)
            } else {
                walImage += try WALRecord.encode(Self.withoutSnapshotData(work))
            }
        } catch {
            throw Inconsistency(description: "WAL record: \(error)")
        }
    }

    private static func term(at index: LogIndex, in state: RecoveredState) -> Term? {
        if index == 0 { return 0 }
        if let first = state.entries.first, index >= first.index, index - first.index < UInt64(state.entries.count) {
            return state.entries[Int(index - first.index)].term
        }
        if let meta = state.snapshot?.metadata, meta.index == index { return meta.term }
        return nil
    }

    private static func withoutSnapshotData(_ work: PersistWork) -> PersistWork {
        var stripped = work
        stripped.snapshot = stripped.snapshot.map { Snapshot(metadata: $0.metadata, data: []) }
        return stripped
    }

    static func apply(_ work: PersistWork, to state: inout RecoveredState) throws(Inconsistency) {
        do {
            try state.apply(work)
        } catch {
            throw Inconsistency(description: "\(error)")
        }
    }
}
