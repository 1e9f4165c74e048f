/// The in-memory log of a RaftCore: a snapshot point followed by contiguous entries.
///
/// The shell keeps the durable copy; this one answers "what term is at index i" and "give me entries
/// from i" without I/O. Entries at or below the snapshot index may be kept (trailing entries) so a
/// follower that is only a little behind catches up from the log rather than a snapshot.
package struct RaftLog: Sendable {
    /// The latest snapshot (taken locally or installed from a leader). Its data is empty when the
    /// shell keeps it in its own store (`RaftCore.storedSnapshotSize`).
    package private(set) var snapshot: Snapshot?
    package private(set) var entries: [LogEntry]

    package init(snapshot: Snapshot?, entries: [LogEntry]) {
        self.snapshot = snapshot
        self.entries = entries
    }

    package var snapshotIndex: LogIndex { snapshot?.metadata.index ?? 0 }
    package var snapshotTerm: Term { snapshot?.metadata.term ?? 0 }

    /// The first index whose entry this log holds (snapshotIndex + 1 if it holds none).
    package var firstIndex: LogIndex { entries.first?.index ?? snapshotIndex + 1 }

    package var lastIndex: LogIndex { entries.last?.index ?? snapshotIndex }
    package var lastTerm: Term { entries.last?.term ?? snapshotTerm }
    package var lastPosition: LogPosition { LogPosition(index: lastIndex, term: lastTerm) }

    /// The term at `index`, or nil when the index is compacted away or beyond the end.
    package func term(at index: LogIndex) -> Term? {
        if index == 0 { return 0 }
        if let first = entries.first, index >= first.index, index <= lastIndex {
            return entries[Int(index - first.index)].term
        }
        if index == snapshotIndex { return snapshotTerm }
        return nil
    }

    package func entry(at index: LogIndex) -> LogEntry? {
        guard let first = entries.first, index >= first.index, index <= lastIndex else { return nil }
        return entries[Int(index - first.index)]
    }

    /// Up to `limit` entries starting at `index`, or nil when `index` is compacted away.
    package func entries(from index: LogIndex, limit: Int) -> [LogEntry]? {
        if index > lastIndex { return [] }
        guard let first = entries.first, index >= first.index else { return nil }
        let start = Int(index - first.index)
        let end = min(entries.count, start + max(limit, 0))
        return Array(entries[start..<end])
    }

    /// Entries in `range`, which the caller knows to be present.
    package func entries(in range: ClosedRange<LogIndex>) -> [LogEntry] {
        guard let first = entries.first, range.lowerBound >= first.index, range.upperBound <= lastIndex else { return [] }
        return Array(entries[Int(range.lowerBound - first.index)...Int(range.upperBound - first.index)])
    }

    /// Appends `entry`, which must follow the last one.
    package mutating func append(_ entry: LogEntry) {
        precondition(entry.index == lastIndex + 1, "log append out of order")
        entries.append(entry)
    }

    /// Drops every entry at or after `index` (a conflicting suffix from an older term).
    package mutating func truncate(from index: LogIndex) {
        guard let first = entries.first, index <= lastIndex else { return }
        if index <= first.index {
            entries.removeAll()
        } else {
            entries.removeSubrange(Int(index - first.index)...)
        }
    }

    /// The first index holding `term`, scanning back from `index` but not below `floor`.
    package func firstIndex(ofTermAt index: LogIndex, floor: LogIndex) -> LogIndex {
        guard let term = term(at: index) else { return index }
        var candidate = index
        while candidate > floor, candidate > firstIndex, self.term(at: candidate - 1) == term {
            candidate -= 1
        }
        return candidate
    }

    /// The last index holding `term`, or nil if this log has no entry of that term.
    package func lastIndex(ofTerm term: Term) -> LogIndex? {
        var low = 0
        var high = entries.count
        // Terms are non-decreasing along the log: binary search the last entry with term <= `term`.
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].term <= term { low = mid + 1 } else { high = mid }
        }
        if low > 0, entries[low - 1].term == term { return entries[low - 1].index }
        if low == 0, snapshotTerm == term, snapshot != nil { return snapshotIndex }
        return nil
    }

    /// Records a snapshot taken locally at `metadata.index` (which this log holds) and drops entries
    /// more than `trailing` below it. Returns the highest index dropped, if any.
    package mutating func compact(to snapshot: Snapshot, trailing: LogIndex) -> LogIndex? {
        self.snapshot = snapshot
        let keepFrom = snapshot.metadata.index > trailing ? snapshot.metadata.index - trailing + 1 : 1
        guard let first = entries.first, keepFrom > first.index else { return nil }
        let drop = min(Int(keepFrom - first.index), entries.count)
        // A new array of what is kept, rather than removing in place: a shell that still holds
        // the old array (to free the dropped entries off its loop) would otherwise have it copied
        // whole here first, every entry retained and released again.
        entries = Array(entries[drop...])
        return keepFrom - 1
    }

    /// Forgets the snapshot's data (the shell keeps it in its store), keeping its metadata.
    package mutating func dropSnapshotData() {
        guard let snapshot else { return }
        self.snapshot = Snapshot(metadata: snapshot.metadata, data: [])
    }

    /// Installs a snapshot received from a leader. Keeps the suffix after the snapshot when this log
    /// agrees with it at the snapshot point (§7: "retain log entries following it"), otherwise drops
    /// the whole log. Returns whether the suffix was kept.
    @discardableResult
    package mutating func install(_ snapshot: Snapshot) -> Bool {
        let meta = snapshot.metadata
        let keep = term(at: meta.index) == meta.term && meta.index <= lastIndex
        if keep, let first = entries.first, meta.index >= first.index {
            entries.removeFirst(Int(meta.index - first.index) + 1)
        } else if !keep {
            entries.removeAll()
        }
        self.snapshot = snapshot
        return keep
    }
}
