#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// Errors of the on-disk log. Every one names the file, so an operator knows what to look at.
package enum WALError: Error, Hashable, Sendable, CustomStringConvertible {
    case io(operation: String, path: String, errno: Int32)
    /// A bad record that is not at the very end of the log: not a torn write, real damage.
    case corrupt(path: String, offset: Int, reason: String)
    case recordTooLarge(Int)
    /// A segment between two that are present is gone: the log has a hole.
    case missingSegment(path: String)

    package var description: String {
        switch self {
        case .io(let operation, let path, let code): "\(operation) \(path): \(String(cString: strerror(code)))"
        case .corrupt(let path, let offset, let reason): "\(path): corrupt record at byte \(offset): \(reason)"
        case .missingSegment(let path): "\(path) is missing (segments before and after it are present): the log has a hole"
        case .recordTooLarge(let size): "WAL record of \(size) bytes over the limit"
        }
    }
}

/// The durable Raft log: `PersistWork` records appended to numbered segment files
/// (`wal-0000000000000001.log`, ...) in one directory.
///
/// - `append` writes a record (no fsync); `sync` makes everything appended so far durable, so a
///   shell can group-commit many batches with one fsync.
/// - Preallocation (`preallocate`): every segment is given its full size before records go into
///   it, so a record overwrites blocks that already belong to the file and `fdatasync` flushes data
///   only. Appending to a growing file instead makes every `fdatasync` also commit the new size and
///   block allocation through the filesystem's journal, which roughly doubles its cost. The next
///   segment is made ahead of time off the write path (`SpareSegment`: allocated and zero-filled,
///   then synced), and renamed into place when the current one is full; when none is ready, a new
///   segment is allocated on the spot (`posix_fallocate`, blocks reserved but not yet written).
///   The unused rest of a segment reads as zeros, which `WALRecord.scan` takes as the end.
/// - Opening replays every segment in order, from the newest checkpoint record on. A bad or
///   incomplete record at the end of the last segment is a torn write: everything from it on is
///   cut back (truncated, or zeroed in a preallocated segment so the file keeps its blocks) and
///   described in `repairs`. A bad record anywhere else is corruption and opening fails naming the
///   file and offset.
/// - `compact` is how the log shrinks after this server's own snapshots: it appends a small
///   compaction record (the snapshot's metadata) and, once that is durable, deletes the oldest
///   segments holding no entry after the snapshot. The entries after it are not rewritten, so a
///   snapshot costs the write path one small record, however many entries followed it. The log on
///   disk may then begin in the middle of a segment's history; replay accepts entries that resume
///   after a gap only where older segments were deleted, and only if the newest snapshot covers the
///   gap (otherwise a segment is missing, and opening fails naming it).
/// - `checkpoint` writes a whole recovered state as one record and deletes every segment before the
///   one holding it (after a snapshot installed from the leader, which replaces the log, and after
///   `peers.json` recovery). Replay starts at the newest checkpoint. Both go into the current
///   segment (a fresh one only when they do not fit), so snapshots do not use up preallocated
///   segments.
/// - Segments deleted by either are renamed `<name>.discarded` at once and removed in the
///   background, a few MiB at a time (`removeGradually`); opening removes any a crash left.
///
/// Not thread-safe: owned by one `DiskWriter`, which uses it from its own queue only.
package final class SegmentedWAL {
    package let directory: String
    /// A segment is closed and a new one started once the next record would not fit; with
    /// preallocation, also the size every segment is given up front.
    package let maxSegmentBytes: Int
    package let preallocate: Bool
    private var segments: [UInt64] = []
    /// The highest entry index written into each segment (0: none): a segment whose entries a
    /// snapshot covers can go.
    private var lastEntryIndex: [UInt64: LogIndex] = [:]
    /// The segment holding the newest checkpoint record: replay needs nothing before it.
    private var checkpointSegment: UInt64?
    private var descriptor: Int32 = -1
    /// Where the next record goes in the open segment: just past its last good record.
    private var writeOffset = 0
    private let spare: SpareSegment?
    /// Where discarded segments are removed (`deleteOldest`).
    private let discards = DispatchQueue(label: "raft.wal.discard", qos: .utility)
    static let discardedSuffix = ".discarded"
    /// What opening had to repair (torn tails cut back), one line each, for the owner to log.
    package private(set) var repairs: [String] = []

    private init(directory: String, maxSegmentBytes: Int, preallocate: Bool) {
        self.directory = directory
        self.maxSegmentBytes = maxSegmentBytes
        self.preallocate = preallocate
        self.spare = preallocate ? SpareSegment(directory: directory, bytes: maxSegmentBytes) : nil
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// Opens (creating if needed) the log in `directory` and returns it with the state it holds.
    /// Snapshots in the returned state carry metadata only; their data is in the snapshot store.
    package static func open(
        directory: String, maxSegmentBytes: Int = 64 * 1024 * 1024, preallocate: Bool = false
    ) throws(WALError) -> (SegmentedWAL, RecoveredState) {
        if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw .io(operation: "mkdir", path: directory, errno: errno) }
        let wal = SegmentedWAL(directory: directory, maxSegmentBytes: max(maxSegmentBytes, 1), preallocate: preallocate)
        let names = try fileNames(in: directory)
        for name in names where name.hasSuffix(discardedSuffix) {
            try removeGradually(directory + "/" + name)
        }
        wal.segments = segmentNumbers(in: names)
        var replay: [(segment: UInt64, path: String, record: WALRecord.Record)] = []
        for (position, number) in wal.segments.enumerated() {
            let path = wal.path(of: number)
            let bytes = try readWholeFile(path)
            let scan = WALRecord.scan(bytes)
            let isLast = position == wal.segments.count - 1
            if let problem = scan.tail {
                guard isLast else { throw .corrupt(path: path, offset: scan.validBytes, reason: "\(problem)") }
                try wal.cutTail(path, bytes: bytes, at: scan.validBytes, problem: problem)
            }
            replay += scan.records.map { (number, path, $0) }
            wal.lastEntryIndex[number] = scan.records.reduce(0) { max($0, $1.work.entries.last?.index ?? 0) }
            if isLast { wal.writeOffset = scan.validBytes }
        }
        wal.checkpointSegment = replay.last { $0.record.isCheckpoint }?.segment
        try wal.checkNoHoles()
        let state = try replayed(replay.map { ($0.path, $0.record) }, olderSegmentsDeleted: (wal.segments.first ?? 1) > 1)
        if let last = wal.segments.last {
            let path = wal.path(of: last)
            wal.descriptor = try openForWriting(path)
            if preallocate { try wal.allocate(path, size: max(wal.maxSegmentBytes, wal.writeOffset)) }
        } else {
            try wal.startSegment(1)
        }
        wal.spare?.prepareInBackground()
        return (wal, state)
    }

    /// Segments are numbered in order and only the oldest are ever deleted, so a number missing
    /// between two present ones is a lost file. (Before the newest checkpoint, a log written by an
    /// older version, which deleted newest first, may have any of them left after a crash: replay
    /// does not need those.)
    private func checkNoHoles() throws(WALError) {
        let needed = segments.drop { $0 < checkpointSegment ?? 0 }
        for (previous, number) in zip(needed, needed.dropFirst()) where number != previous + 1 {
            throw .missingSegment(path: path(of: previous + 1))
        }
    }

    /// The state `records` (every segment's, in order) leave. Replay starts over at the newest
    /// checkpoint: what precedes it (possibly segments a crash kept from being deleted) is not
    /// needed. Without one, and with the oldest segments deleted by compactions, the log begins in
    /// the middle: entries that resume after a gap start it again, and the newest snapshot must
    /// cover every gap.
    private static func replayed(
        _ records: [(path: String, record: WALRecord.Record)], olderSegmentsDeleted: Bool
    ) throws(WALError) -> RecoveredState {
        var state = RecoveredState()
        let checkpoint = records.lastIndex { $0.record.isCheckpoint }
        let beginsMidLog = checkpoint == nil && olderSegmentsDeleted
        var gap: (path: String, through: LogIndex)?
        for (path, record) in records[(checkpoint ?? 0)...] {
            if let metadata = record.compaction {
                state.compact(to: metadata)
                continue
            }
            var work = record.work
            if beginsMidLog, let head = work.entries.first, work.snapshot == nil,
               head.index > (state.entries.last?.index ?? state.snapshot?.metadata.index ?? 0) + 1 {
                // What came before was in deleted segments: the log starts again here.
                state.entries = work.entries
                work.entries = []
                gap = (path, max(gap?.through ?? 0, head.index - 1))
            }
            do { try state.apply(work) } catch {
                throw .corrupt(path: path, offset: 0, reason: "\(error)")
            }
        }
        if let gap, gap.through > state.snapshot?.metadata.index ?? 0 {
            throw .corrupt(path: gap.path, offset: 0, reason: "the log resumes after entry \(gap.through), which no snapshot covers (a segment before this one is missing)")
        }
        return state
    }

    /// Appends one record; durable only after the next `sync`.
    package func append(_ work: PersistWork) throws(WALError) {
        try append(work, checkpoint: false)
    }

    private func append(_ work: PersistWork, checkpoint: Bool) throws(WALError) {
        let record: [UInt8]
        do { record = try WALRecord.encode(work, checkpoint: checkpoint) } catch {
            switch error {
            case .recordTooLarge(let size): throw .recordTooLarge(size)
            }
        }
        try append(record, lastEntry: work.entries.last?.index)
    }

    private func append(_ record: [UInt8], lastEntry: LogIndex?) throws(WALError) {
        if writeOffset > 0 && writeOffset + record.count > maxSegmentBytes {
            try sync()
            try startSegment((segments.last ?? 0) + 1)
        }
        let segment = segments.last ?? 0
        try writeAll(record, at: writeOffset, to: descriptor, path: path(of: segment))
        writeOffset += record.count
        if let lastEntry { lastEntryIndex[segment] = max(lastEntryIndex[segment] ?? 0, lastEntry) }
    }

    /// Makes every appended record durable (fdatasync on the open segment).
    package func sync() throws(WALError) {
        #if canImport(Glibc)
        let result = fdatasync(descriptor)
        #else
        let result = fsync(descriptor)
        #endif
        if result != 0 { throw .io(operation: "fdatasync", path: path(of: segments.last ?? 0), errno: errno) }
    }

    /// Replaces the whole log by one record holding `state` (snapshot metadata and entries; its
    /// hard state belongs to the `StableStore`), then deletes the segments before the one holding it. Crash-safe: until the
    /// checkpoint is synced, the old segments still hold everything, and replay starts at the
    /// newest checkpoint, so whatever a crash leaves undeleted is ignored.
    package func checkpoint(_ state: RecoveredState) throws(WALError) {
        let work = PersistWork(snapshot: state.snapshot.map { Snapshot(metadata: $0.metadata, data: []) }, entries: state.entries)
        try append(work, checkpoint: true)
        try sync()
        checkpointSegment = segments.last
        try deleteOldest(segments.count - 1)
    }

    /// Records that this server's snapshot `metadata` covers its log up to there, and deletes the
    /// oldest segments holding nothing after it (never the open one). Crash-safe: the record is
    /// synced before anything is deleted, and segments go oldest first, so what a crash leaves is
    /// still a contiguous run of segments.
    package func compact(to metadata: SnapshotMetadata) throws(WALError) {
        try append(WALRecord.encodeCompaction(metadata), lastEntry: nil)
        try sync()
        let covered = segments.dropLast().prefix { number in
            number < checkpointSegment ?? 0 || lastEntryIndex[number] ?? 0 <= metadata.index
        }
        try deleteOldest(covered.count)
    }

    /// Deletes the `count` oldest segments, oldest first, so a crash leaves a contiguous run: each
    /// is renamed out of the log (`.discarded`) here, and removed on a background queue a few MiB
    /// at a time (`removeGradually`): unlinking 64 MiB at once would hold up this writer and the
    /// next syncs of the log for tens of milliseconds. A discarded file left by a crash is removed
    /// when the log is opened again.
    private func deleteOldest(_ count: Int) throws(WALError) {
        guard count > 0 else { return }
        for number in segments.prefix(count) {
            let path = path(of: number)
            let discarded = path + Self.discardedSuffix
            if rename(path, discarded) != 0 { throw .io(operation: "rename", path: path, errno: errno) }
            segments.removeFirst()
            lastEntryIndex[number] = nil
            // A failure leaves the file for the next open to remove; nothing reads it meanwhile.
            discards.async { try? removeGradually(discarded) }
        }
        try syncDirectory(directory)
    }

    /// Segment numbers currently on disk, oldest first (for tests and diagnostics).
    package var segmentNumbers: [UInt64] { segments }

    /// Waits until no spare segment is being prepared and no discarded segment is being removed in
    /// the background (tests; before removing the directory).
    package func waitForBackgroundWork() {
        spare?.waitUntilIdle()
        discards.sync {}
    }

    // MARK: - Files

    private func path(of number: UInt64) -> String {
        let hex = String(number, radix: 16)
        return directory + "/wal-" + String(repeating: "0", count: max(16 - hex.count, 0)) + hex + ".log"
    }

    private func startSegment(_ number: UInt64) throws(WALError) {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        let path = path(of: number)
        if let spare, spare.take(renamingTo: path) {
            descriptor = try Self.openForWriting(path)
        } else {
            let fd = systemOpen(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
            descriptor = fd
            if preallocate { try allocate(path, size: maxSegmentBytes) }
        }
        segments.append(number)
        writeOffset = 0
        try syncDirectory(directory)
        spare?.prepareInBackground()
    }

    /// Gives the open segment `size` bytes of disk (a no-op when it has them), and makes the new
    /// size durable now rather than in the first record's `fdatasync`. Filesystems without
    /// `fallocate` are left to grow the file as it is written.
    private func allocate(_ path: String, size: Int) throws(WALError) {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw .io(operation: "fstat", path: path, errno: errno) }
        guard Int(info.st_size) < size else { return }
        #if canImport(Glibc)
        let result = posix_fallocate(descriptor, 0, off_t(size))
        if result == EOPNOTSUPP || result == EINVAL { return }
        if result != 0 { throw .io(operation: "fallocate", path: path, errno: result) }
        if fsync(descriptor) != 0 { throw .io(operation: "fsync", path: path, errno: errno) }
        #endif
    }

    /// Cuts a torn tail off the last segment: everything from `valid` on that is not zero. A
    /// preallocated segment (zeros after the damage) is zeroed in place and keeps its size;
    /// otherwise the file is truncated.
    private func cutTail(_ path: String, bytes: [UInt8], at valid: Int, problem: DecodeError) throws(WALError) {
        let end = (bytes.lastIndex { $0 != 0 } ?? (valid - 1)) + 1
        let fd = systemOpen(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        if end < bytes.count {
            try writeAll([UInt8](repeating: 0, count: end - valid), at: valid, to: fd, path: path)
        } else if ftruncate(fd, off_t(valid)) != 0 {
            throw .io(operation: "ftruncate", path: path, errno: errno)
        }
        if fsync(fd) != 0 { throw .io(operation: "fsync", path: path, errno: errno) }
        repairs.append("\(path): torn tail at byte \(valid) (\(problem)): \(end - valid) bytes cut back")
    }

    private static func openForWriting(_ path: String) throws(WALError) -> Int32 {
        let fd = systemOpen(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        return fd
    }

    /// The segment numbers among a directory's file names, oldest first.
    private static func segmentNumbers(in names: [String]) -> [UInt64] {
        names.compactMap { name in
            guard name.hasPrefix("wal-"), name.hasSuffix(".log"), name.count == 24 else { return nil }
            return UInt64(name.dropFirst(4).dropLast(4), radix: 16)
        }.sorted()
    }
}

/// How a node's WAL lays out its segments (see `SegmentedWAL`).
package struct WALOptions: Sendable, Hashable {
    /// Size of a segment (64 MiB, as etcd's and hashicorp/raft-wal's).
    package var segmentBytes = 64 * 1024 * 1024
    /// Give segments their full size before writing into them (see `SegmentedWAL`).
    package var preallocate = true

    package init(segmentBytes: Int = 64 * 1024 * 1024, preallocate: Bool = true) {
        self.segmentBytes = segmentBytes
        self.preallocate = preallocate
    }
}
