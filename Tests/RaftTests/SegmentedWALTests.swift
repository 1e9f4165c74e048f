#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
@testable import Raft

/// The on-disk log, exercised in a fresh temporary directory per test.
@Suite struct SegmentedWALTests {
    let directory: String

    init() {
        var template = Array("/tmp/raft-wal-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        directory = String(cString: made!)
    }

    /// The log's segments (not the discarded ones still being removed).
    func files() -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix("wal-") && name.hasSuffix(".log") { names.append(name) }
        }
        return names.sorted()
    }

    /// Removes every file the test left (segments and spare segments) and the directory.
    func removeAll() {
        if let names = try? fileNames(in: directory) {
            for name in names where name != "." && name != ".." { unlink(directory + "/" + name) }
        }
        rmdir(directory)
    }

    func size(_ name: String) -> Int {
        var info = stat()
        stat(directory + "/" + name, &info)
        return Int(info.st_size)
    }

    static func entries(_ range: ClosedRange<LogIndex>, term: Term) -> [LogEntry] {
        range.map { LogEntry(index: $0, term: term, payload: .command(Array(repeating: UInt8(truncatingIfNeeded: $0), count: 20))) }
    }

    /// Writes a little history (by default entries 1...12, a conflicting suffix replaced on the
    /// way) and returns the state it must replay to.
    func writeHistory(_ wal: SegmentedWAL, _ works: [PersistWork] = [
        PersistWork(entries: Self.entries(1...5, term: 1)),
        PersistWork(entries: Self.entries(4...9, term: 2)),
        PersistWork(entries: Self.entries(10...12, term: 2)),
    ]) throws -> RecoveredState {
        var expected = RecoveredState()
        for work in works {
            try wal.append(work)
            try expected.apply(work)
        }
        try wal.sync()
        return expected
    }

    @Test func appendsAndReplays() throws {
        defer { removeAll() }
        let (wal, empty) = try SegmentedWAL.open(directory: directory)
        #expect(empty == RecoveredState())
        let expected = try writeHistory(wal)
        let (_, replayed) = try SegmentedWAL.open(directory: directory)
        #expect(replayed == expected)
        #expect(replayed.entries.map(\.index) == Array(1...12))
        #expect(replayed.entries[4].term == 2)
    }

    @Test func rotatesSegments() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        let expected = try writeHistory(wal)
        #expect(wal.segmentNumbers.count >= 3)
        #expect(files().count == wal.segmentNumbers.count)
        let (_, replayed) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        #expect(replayed == expected)
    }

    @Test func tornTailIsCutBack() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory)
        var expected = try writeHistory(wal)
        let last = PersistWork(entries: Self.entries(13...14, term: 2))
        try wal.append(last)
        try wal.sync()
        let name = try #require(files().last)
        let full = size(name)
        // The last write reached the disk only partly.
        #expect(truncate(directory + "/" + name, off_t(full - 7)) == 0)
        let (reopened, replayed) = try SegmentedWAL.open(directory: directory)
        #expect(replayed == expected)
        #expect(size(name) < full - 7)
        // The log goes on from the cut.
        try reopened.append(last)
        try reopened.sync()
        try expected.apply(last)
        let (_, again) = try SegmentedWAL.open(directory: directory)
        #expect(again == expected)
    }

    @Test func corruptionBeforeTheEndIsAnErrorNamingTheFile() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        _ = try writeHistory(wal)
        let first = try #require(files().first)
        let fd = open(directory + "/" + first, O_WRONLY)
        #expect(fd >= 0)
        var garbage: [UInt8] = [0xFF, 0xEE]
        #expect(pwrite(fd, &garbage, 2, 12) == 2)
        close(fd)
        #expect(throws: WALError.self) { _ = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200) }
        do {
            _ = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        } catch {
            #expect("\(error)".contains(first))
        }
    }

    @Test func checkpointReplacesOldSegments() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        var state = try writeHistory(wal)
        let before = files()
        // A snapshot at 10 lets the log drop everything up to there.
        let configuration = ClusterConfiguration(voters: [ServerID("a"), ServerID("b")])
        try state.apply(PersistWork(
            snapshot: Snapshot(metadata: SnapshotMetadata(index: 10, term: 2, configuration: configuration), data: [])))
        try wal.checkpoint(state)
        #expect(files().count == 1)
        #expect(!before.contains(files()[0]))
        let (reopened, replayed) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        #expect(replayed == state)
        #expect(replayed.entries.map(\.index) == [11, 12])
        try reopened.append(PersistWork(entries: Self.entries(13...13, term: 2)))
        try reopened.sync()
        let (_, after) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        #expect(after.entries.map(\.index) == [11, 12, 13])
    }

    func readBytes(_ name: String) -> [UInt8] {
        let fd = open(directory + "/" + name, O_RDONLY)
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: size(name))
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return Array(buffer.prefix(max(count, 0)))
    }

    func writeBytes(_ name: String, _ bytes: [UInt8]) {
        let fd = open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Whatever a crash in the middle of a checkpoint's deletions leaves of the old segments (the
    /// newer ones now; a log of an older version, which deleted newest first, the oldest), it
    /// still replays to the checkpointed state.
    @Test func interruptedCheckpointStillReplays() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        let state = try writeHistory(wal)
        let old = files().map { ($0, readBytes($0)) }
        #expect(old.count >= 3)
        try wal.checkpoint(state)
        #expect(files().count == 1)
        let deleted = old.filter { !files().contains($0.0) }
        // The newer old segments back, as if the crash hit after the first deletion.
        for (name, bytes) in deleted.dropFirst() { writeBytes(name, bytes) }
        let (_, afterNewerLeft) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        #expect(afterNewerLeft == state)
        // Only the oldest back instead (a hole before the checkpoint).
        for (name, _) in deleted.dropFirst() { unlink(directory + "/" + name) }
        writeBytes(deleted[0].0, deleted[0].1)
        #expect(files().count == 2)
        let (_, replayed) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        #expect(replayed == state)
    }

    // MARK: - Compaction records

    static func snapshot(at index: LogIndex, term: Term) -> SnapshotMetadata {
        SnapshotMetadata(index: index, term: term, configuration: ClusterConfiguration(voters: [ServerID("a")]))
    }

    /// Entries 1...40, two a record (about three entries a segment of 200 bytes), and the state
    /// they replay to.
    func writeLongHistory(_ wal: SegmentedWAL) throws -> RecoveredState {
        try writeHistory(wal, stride(from: LogIndex(1), through: 40, by: 2).map { PersistWork(entries: Self.entries($0...($0 + 1), term: 1)) })
    }

    /// A compaction record drops what the snapshot covers and deletes only the segments holding
    /// nothing after it; nothing after the snapshot is rewritten.
    @Test func compactionDeletesOnlyCoveredSegments() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        var expected = try writeLongHistory(wal)
        let before = files()
        let bytesBefore = before.map(size).reduce(0, +)
        let snapshot = Self.snapshot(at: 20, term: 1)
        try wal.compact(to: snapshot)
        expected.compact(to: snapshot)
        // Every remaining segment but the first holds only entries after 20, the first one some.
        let (_, replayed) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        #expect(replayed == expected)
        #expect(replayed.entries.map(\.index) == Array(21...40))
        #expect(files().count < before.count)
        let remaining = try files().map { name in
            WALRecord.scan(readBytes(name)).records.flatMap(\.work.entries).map(\.index)
        }
        #expect(remaining.first.map { $0.contains { $0 > 20 } } == true)
        #expect(remaining.flatMap { $0 }.contains(21))
        // The entries after the snapshot were not written again: the log grew by one small record.
        #expect(files().map(size).reduce(0, +) < bytesBefore)
        // The deleted segments were renamed away at once and are removed in the background; one
        // a crash left behind is removed at the next open.
        wal.waitForBackgroundWork()
        let discarded = before.filter { !files().contains($0) }.map { directory + "/" + $0 + SegmentedWAL.discardedSuffix }
        #expect(!discarded.isEmpty && discarded.allSatisfy { access($0, F_OK) != 0 })
        writeBytes(before[0] + SegmentedWAL.discardedSuffix, [UInt8](repeating: 1, count: 100))
        let (reopened, again) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        #expect(again == expected)
        #expect(access(discarded[0], F_OK) != 0)
        reopened.waitForBackgroundWork()
    }

    /// A large file removed a few MiB at a time is gone in the end; one already gone is no error.
    @Test func removeGraduallyRemovesTheFile() throws {
        defer { removeAll() }
        _ = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        writeBytes("big", [UInt8](repeating: 7, count: 10 << 20))
        try removeGradually(directory + "/big", stepBytes: 3 << 20)
        #expect(access(directory + "/big", F_OK) != 0)
        try removeGradually(directory + "/big")
    }

    /// Compaction after compaction, with a conflicting suffix replaced in between: every reopen
    /// replays to the state the writes describe, though the log on disk now begins mid-history
    /// (a kept segment may start with an old compaction record followed by entries after a gap).
    @Test func repeatedCompactionsReplayFromTheMiddle() throws {
        defer { removeAll() }
        var (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 160)
        var expected = RecoveredState()
        var next: LogIndex = 1
        for round in 1...12 {
            for _ in 0..<5 {
                let work = PersistWork(entries: Self.entries(next...(next + 1), term: Term(round)))
                try wal.append(work)
                try expected.apply(work)
                next += 2
            }
            if round % 3 == 0 {
                // A conflicting suffix from a newer term replaces the last three entries.
                next -= 3
                let work = PersistWork(entries: Self.entries(next...next, term: Term(round + 100)))
                try wal.append(work)
                try expected.apply(work)
                next += 1
            }
            try wal.sync()
            let snapshot = Self.snapshot(at: next - 4, term: expected.entries.first { $0.index == next - 4 }!.term)
            try wal.compact(to: snapshot)
            expected.compact(to: snapshot)
            let (reopened, replayed) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 160)
            let matches = replayed == expected
            #expect(matches, "round \(round): replayed \(replayed.entries.map(\.index)) after \(replayed.snapshot?.metadata.index ?? 0)")
            wal = reopened
        }
        #expect(try #require(files().first) != "wal-0000000000000001.log")
    }

    /// A crash among a compaction's deletions (oldest first) leaves the newer covered segments;
    /// the log still replays to the compacted state.
    @Test func interruptedCompactionStillReplays() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        var expected = try writeLongHistory(wal)
        let before = files()
        let saved = before.map { ($0, readBytes($0)) }
        let snapshot = Self.snapshot(at: 30, term: 1)
        try wal.compact(to: snapshot)
        expected.compact(to: snapshot)
        let deleted = saved.filter { !files().contains($0.0) }
        #expect(deleted.count >= 3)
        // Put back all but the oldest deleted segment, as if the crash came after the first unlink.
        for (name, bytes) in deleted.dropFirst() { writeBytes(name, bytes) }
        let (_, replayed) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        #expect(replayed == expected)
    }

    /// A segment missing from the middle of the log is damage, compacted log or not: opening
    /// names it. (Only the oldest segments are ever deleted.)
    @Test func missingSegmentAfterCompactionIsAnError() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        _ = try writeLongHistory(wal)
        try wal.compact(to: Self.snapshot(at: 10, term: 1))
        let kept = files()
        #expect(kept.count >= 4)
        let third = readBytes(kept[2])
        unlink(directory + "/" + kept[2])
        #expect(throws: WALError.missingSegment(path: directory + "/" + kept[2])) {
            _ = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        }
        // The oldest kept segment lost instead: the log resumes after entries no snapshot covers.
        writeBytes(kept[2], third)
        unlink(directory + "/" + kept[0])
        do {
            _ = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
            Issue.record("a missing first segment was not noticed")
        } catch {
            #expect("\(error)".contains(kept[1]))
            #expect("\(error)".contains("which no snapshot covers"))
        }
    }

    // MARK: - Preallocated segments

    func inode(_ name: String) -> UInt64? {
        var info = stat()
        guard stat(directory + "/" + name, &info) == 0 else { return nil }
        return UInt64(info.st_ino)
    }

    func pwriteBytes(_ name: String, _ bytes: [UInt8], at offset: Int) {
        let fd = open(directory + "/" + name, O_WRONLY)
        defer { close(fd) }
        #expect(bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) } == bytes.count)
    }

    @Test func preallocatedSegmentsHaveTheirFullSizeAndReplay() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 300, preallocate: true)
        defer { wal.waitForBackgroundWork() }
        let expected = try writeHistory(wal)
        #expect(wal.segmentNumbers.count == 3)
        for name in files() {
            #expect(size(name) == 300)
            // The unused rest reads as zeros, which is a clean end, in every segment.
            #expect(WALRecord.scan(readBytes(name)).tail == nil)
        }
        let (again, replayed) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 300, preallocate: true)
        defer { again.waitForBackgroundWork() }
        #expect(replayed == expected)
        #expect(again.repairs.isEmpty)
        #expect(again.segmentNumbers == wal.segmentNumbers)
    }

    /// The spare made in the background becomes the next segment (same file, renamed), and a new
    /// spare is made after it.
    @Test func spareSegmentBecomesTheNextSegment() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 300, preallocate: true)
        defer { wal.waitForBackgroundWork() }
        wal.waitForBackgroundWork()
        #expect(size("spare.seg") == 300)
        #expect(readBytes("spare.seg").allSatisfy { $0 == 0 })
        let spare = try #require(inode("spare.seg"))
        _ = try writeHistory(wal)
        let second = try #require(files().dropFirst().first)
        #expect(inode(second) == spare)
        #expect(size(second) == 300)
        wal.waitForBackgroundWork()
        #expect(size("spare.seg") == 300)
        #expect(inode("spare.seg") != spare)
    }

    /// A crash while a spare was being made leaves `spare.tmp`, or a `spare.seg` of the wrong
    /// size: neither is used, and a good spare is made again.
    @Test func spareLeftoversAreRemade() throws {
        defer { removeAll() }
        mkdir(directory, 0o755)
        writeBytes("spare.tmp", [1, 2, 3])
        writeBytes("spare.seg", [0, 0, 0])
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 300, preallocate: true)
        defer { wal.waitForBackgroundWork() }
        wal.waitForBackgroundWork()
        #expect(inode("spare.tmp") == nil)
        #expect(size("spare.seg") == 300)
        #expect(readBytes("spare.seg").allSatisfy { $0 == 0 })
    }

    /// A torn last write in a preallocated segment is zeroed, the segment keeps its size, the cut
    /// is reported, and the log goes on from there.
    @Test func tornTailInPreallocatedSegmentIsZeroed() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 4096, preallocate: true)
        var expected = try writeHistory(wal)
        wal.waitForBackgroundWork()
        let name = try #require(files().last)
        let valid = WALRecord.scan(readBytes(name)).validBytes
        let last = PersistWork(entries: Self.entries(13...14, term: 2))
        let record = try WALRecord.encode(last)
        // The write reached the disk only partly.
        pwriteBytes(name, Array(record.dropLast(5)), at: valid)
        let (reopened, replayed) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 4096, preallocate: true)
        defer { reopened.waitForBackgroundWork() }
        #expect(replayed == expected)
        #expect(reopened.repairs.count == 1)
        #expect(reopened.repairs.first?.contains(name) == true)
        #expect(size(name) == 4096)
        #expect(readBytes(name)[valid...].allSatisfy { $0 == 0 })
        try reopened.append(last)
        try reopened.sync()
        try expected.apply(last)
        let (again, replayedAgain) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 4096, preallocate: true)
        defer { again.waitForBackgroundWork() }
        #expect(replayedAgain == expected)
        #expect(again.repairs.isEmpty)
    }

    /// Writeback order is not write order: after a crash a later, unsynced record may be on disk
    /// while the one before it is not (still zeros). Recovery must erase it, or a new record of
    /// the lost one's size would later line up with it and bring it back into the log.
    @Test func staleRecordBehindAHoleIsErased() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 4096, preallocate: true)
        var expected = try writeHistory(wal)
        wal.waitForBackgroundWork()
        let name = try #require(files().last)
        let valid = WALRecord.scan(readBytes(name)).validBytes
        let lost = try WALRecord.encode(PersistWork(entries: Self.entries(13...13, term: 2)))
        let stale = try WALRecord.encode(PersistWork(entries: Self.entries(14...14, term: 2)))
        pwriteBytes(name, stale, at: valid + lost.count)
        let (reopened, replayed) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 4096, preallocate: true)
        defer { reopened.waitForBackgroundWork() }
        #expect(replayed == expected)
        #expect(reopened.repairs.count == 1)
        #expect(readBytes(name)[valid...].allSatisfy { $0 == 0 })
        // A new leader's entry 13, exactly as long as the lost record.
        let replacement = PersistWork(entries: Self.entries(13...13, term: 3))
        #expect(try WALRecord.encode(replacement).count == lost.count)
        try reopened.append(replacement)
        try reopened.sync()
        try expected.apply(replacement)
        let (again, replayedAgain) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 4096, preallocate: true)
        defer { again.waitForBackgroundWork() }
        #expect(replayedAgain == expected)
        #expect(replayedAgain.entries.last?.index == 13)
    }

    /// A crash right after a spare was renamed into place leaves an all-zero last segment: an
    /// empty, clean segment that the next record goes into.
    @Test func allZeroLastSegmentIsEmpty() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 4096, preallocate: true)
        var expected = try writeHistory(wal)
        wal.waitForBackgroundWork()
        let first = try #require(files().first)
        let second = "wal-" + String(repeating: "0", count: 15) + "2.log"
        writeBytes(second, [UInt8](repeating: 0, count: 4096))
        let (reopened, replayed) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 4096, preallocate: true)
        defer { reopened.waitForBackgroundWork() }
        #expect(replayed == expected)
        #expect(reopened.repairs.isEmpty)
        let next = PersistWork(entries: Self.entries(13...13, term: 2))
        try reopened.append(next)
        try reopened.sync()
        try expected.apply(next)
        #expect(WALRecord.scan(readBytes(second)).records.count == 1)
        #expect(files() == [first, second])
        let (again, replayedAgain) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 4096, preallocate: true)
        defer { again.waitForBackgroundWork() }
        #expect(replayedAgain == expected)
    }

    /// Zeros end a segment cleanly only when nothing but zeros follows: in a segment that is not
    /// the last, anything after them is corruption, reported with the file and offset.
    @Test func garbageAfterZerosBeforeTheLastSegmentIsCorruption() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 300, preallocate: true)
        _ = try writeHistory(wal)
        wal.waitForBackgroundWork()
        let first = try #require(files().first)
        let valid = WALRecord.scan(readBytes(first)).validBytes
        pwriteBytes(first, [7], at: valid + 20)
        do {
            _ = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 300, preallocate: true)
            Issue.record("opened a log with garbage in \(first)")
        } catch {
            #expect("\(error)".contains(first))
            #expect("\(error)".contains("byte \(valid)"))
        }
    }

    /// A checkpoint goes into the current segment (no fresh segment per snapshot) and every
    /// older segment is deleted; replay starts at it, ignoring the records before it.
    @Test func checkpointStaysInTheCurrentSegment() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 300, preallocate: true)
        defer { wal.waitForBackgroundWork() }
        var state = try writeHistory(wal)
        let before = files()
        #expect(before.count == 3)
        let configuration = ClusterConfiguration(voters: [ServerID("a"), ServerID("b")])
        try state.apply(PersistWork(
            snapshot: Snapshot(metadata: SnapshotMetadata(index: 12, term: 2, configuration: configuration), data: [])))
        try wal.checkpoint(state)
        #expect(files() == [before.last!])
        let (reopened, replayed) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 300, preallocate: true)
        defer { reopened.waitForBackgroundWork() }
        #expect(replayed == state)
        let next = PersistWork(entries: Self.entries(13...13, term: 2))
        try reopened.append(next)
        try reopened.sync()
        try state.apply(next)
        let (again, replayedAgain) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 300, preallocate: true)
        defer { again.waitForBackgroundWork() }
        #expect(replayedAgain == state)
        #expect(replayedAgain.entries.map(\.index) == [13])
    }
}
