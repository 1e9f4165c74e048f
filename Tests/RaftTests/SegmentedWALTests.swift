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

    func files() -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix("wal-") { names.append(name) }
        }
        return names.sorted()
    }

    func removeAll() {
        for name in files() { unlink(directory + "/" + name) }
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

    /// Writes a little history and returns the state it must replay to.
    func writeHistory(_ wal: SegmentedWAL) throws -> RecoveredState {
        var expected = RecoveredState()
        let works = [
            PersistWork(hardState: HardState(term: 1), entries: Self.entries(1...5, term: 1)),
            PersistWork(hardState: HardState(term: 2, votedFor: ServerID("b")), entries: Self.entries(4...9, term: 2)),
            PersistWork(entries: Self.entries(10...12, term: 2)),
        ]
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

    /// A crash in the middle of a checkpoint's deletions (which go newest first) leaves a prefix of
    /// the old segments and the checkpoint; that still replays to the checkpointed state.
    @Test func interruptedCheckpointStillReplays() throws {
        defer { removeAll() }
        let (wal, _) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        let state = try writeHistory(wal)
        let old = files()
        #expect(old.count >= 3)
        let oldest = readBytes(old[0])
        try wal.checkpoint(state)
        #expect(files().count == 1)
        // Put the oldest segment back, as if the crash hit before its deletion.
        writeBytes(old[0], oldest)
        #expect(files().count == 2)
        let (_, replayed) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: 200)
        #expect(replayed == state)
    }
}
