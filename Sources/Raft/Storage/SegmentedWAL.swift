#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors of the on-disk log. Every one names the file, so an operator knows what to look at.
package enum WALError: Error, Hashable, Sendable, CustomStringConvertible {
    case io(operation: String, path: String, errno: Int32)
    /// A bad record that is not at the very end of the log: not a torn write, real damage.
    case corrupt(path: String, offset: Int, reason: String)
    case recordTooLarge(Int)

    package var description: String {
        switch self {
        case .io(let operation, let path, let code): "\(operation) \(path): \(String(cString: strerror(code)))"
        case .corrupt(let path, let offset, let reason): "\(path): corrupt record at byte \(offset): \(reason)"
        case .recordTooLarge(let size): "WAL record of \(size) bytes over the limit"
        }
    }
}

/// The durable Raft log: `PersistWork` records appended to numbered segment files
/// (`wal-0000000000000001.log`, ...) in one directory.
///
/// - `append` writes a record (no fsync); `sync` makes everything appended so far durable, so a
///   shell can group-commit many batches with one fsync.
/// - Opening replays every segment in order. A bad or incomplete record at the end of the last
///   segment is a torn write: the file is cut back to the last good record. A bad record anywhere
///   else is corruption and opening fails naming the file.
/// - `checkpoint` writes the whole recovered state as one record into a fresh segment and deletes
///   the older segments, which is how the log shrinks after snapshots. Replay starts over at a
///   checkpoint record.
///
/// Not thread-safe: owned by one `DiskWriter`, which uses it from its own queue only.
package final class SegmentedWAL {
    package let directory: String
    /// A segment is closed and a new one started once it grows past this.
    package let maxSegmentBytes: Int
    private var segments: [UInt64] = []
    private var descriptor: Int32 = -1
    private var currentSize = 0

    private init(directory: String, maxSegmentBytes: Int) {
        self.directory = directory
        self.maxSegmentBytes = maxSegmentBytes
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// Opens (creating if needed) the log in `directory` and returns it with the state it holds.
    /// Snapshots in the returned state carry metadata only; their data is in the snapshot store.
    package static func open(directory: String, maxSegmentBytes: Int = 64 * 1024 * 1024) throws(WALError) -> (SegmentedWAL, RecoveredState) {
        let wal = SegmentedWAL(directory: directory, maxSegmentBytes: max(maxSegmentBytes, 1))
        if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw .io(operation: "mkdir", path: directory, errno: errno) }
        wal.segments = try listSegments(directory)
        var state = RecoveredState()
        for (position, number) in wal.segments.enumerated() {
            let path = wal.path(of: number)
            let bytes = try readFile(path)
            let scan = WALRecord.scan(bytes)
            if let problem = scan.tail {
                guard position == wal.segments.count - 1 else {
                    throw .corrupt(path: path, offset: scan.validBytes, reason: "\(problem)")
                }
                try truncateFile(path, to: scan.validBytes)
            }
            for record in scan.records {
                if record.isCheckpoint { state = RecoveredState() }
                do { try state.apply(record.work) } catch {
                    throw .corrupt(path: path, offset: 0, reason: "\(error)")
                }
            }
            if position == wal.segments.count - 1 { wal.currentSize = scan.validBytes }
        }
        if let last = wal.segments.last {
            wal.descriptor = try openForAppend(wal.path(of: last), create: false)
        } else {
            try wal.startSegment(1)
        }
        return (wal, state)
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
        if currentSize > 0 && currentSize + record.count > maxSegmentBytes {
            try sync()
            try startSegment((segments.last ?? 0) + 1)
        }
        try writeAll(record, to: descriptor, path: path(of: segments.last ?? 0))
        currentSize += record.count
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

    /// Replaces the whole log by one record holding `state` (snapshot metadata, hard state,
    /// entries), then deletes the older segments. Crash-safe: until the new segment is synced and
    /// the directory entry durable, the old segments still hold everything.
    package func checkpoint(_ state: RecoveredState) throws(WALError) {
        try sync()
        let old = segments
        try startSegment((segments.last ?? 0) + 1)
        let work = PersistWork(
            snapshot: state.snapshot.map { Snapshot(metadata: $0.metadata, data: []) }, hardState: state.hardState,
            entries: state.entries)
        try append(work, checkpoint: true)
        try sync()
        // Newest first: if a crash interrupts this, what remains is still a prefix that replays
        // from the start (or from an earlier checkpoint), followed by this checkpoint.
        for number in old.reversed() {
            let path = path(of: number)
            if unlink(path) != 0 { throw .io(operation: "unlink", path: path, errno: errno) }
        }
        segments.removeAll { old.contains($0) }
        try syncDirectory()
    }

    /// Segment numbers currently on disk, oldest first (for tests and diagnostics).
    package var segmentNumbers: [UInt64] { segments }

    // MARK: - Files

    private func path(of number: UInt64) -> String {
        let hex = String(number, radix: 16)
        return directory + "/wal-" + String(repeating: "0", count: max(16 - hex.count, 0)) + hex + ".log"
    }

    private func startSegment(_ number: UInt64) throws(WALError) {
        if descriptor >= 0 { close(descriptor) }
        descriptor = try Self.openForAppend(path(of: number), create: true)
        segments.append(number)
        currentSize = 0
        try syncDirectory()
    }

    private func syncDirectory() throws(WALError) {
        let fd = systemOpen(directory, O_RDONLY)
        guard fd >= 0 else { throw .io(operation: "open", path: directory, errno: errno) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw .io(operation: "fsync", path: directory, errno: errno) }
    }

    private static func openForAppend(_ path: String, create: Bool) throws(WALError) -> Int32 {
        let flags = O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0)
        let fd = systemOpen(path, flags, 0o644)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        return fd
    }

    private static func listSegments(_ directory: String) throws(WALError) -> [UInt64] {
        guard let handle = opendir(directory) else { throw .io(operation: "opendir", path: directory, errno: errno) }
        defer { closedir(handle) }
        var numbers: [UInt64] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix("wal-"), name.hasSuffix(".log"), name.count == 24,
                  let number = UInt64(name.dropFirst(4).dropLast(4), radix: 16)
            else { continue }
            numbers.append(number)
        }
        return numbers.sorted()
    }

    private static func readFile(_ path: String) throws(WALError) -> [UInt8] {
        let fd = systemOpen(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "read", path: path, errno: errno)
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: buffer[..<count])
        }
    }

    private static func truncateFile(_ path: String, to length: Int) throws(WALError) {
        let fd = systemOpen(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        if ftruncate(fd, off_t(length)) != 0 { throw .io(operation: "ftruncate", path: path, errno: errno) }
        if fsync(fd) != 0 { throw .io(operation: "fsync", path: path, errno: errno) }
    }

    private func writeAll(_ bytes: [UInt8], to fd: Int32, path: String) throws(WALError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "write", path: path, errno: errno)
            }
            offset += written
        }
    }
}

/// `open(2)` under a name that does not collide with `SegmentedWAL.open`.
func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
    #if canImport(Glibc)
    return Glibc.open(path, flags, mode)
    #else
    return Darwin.open(path, flags, mode)
    #endif
}
