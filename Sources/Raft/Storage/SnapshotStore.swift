#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Snapshots on disk, one file each (`snapshot-<index>-<term>.snap`, hex, zero-padded):
///
///     magic "RSNP", version u8 (2), metadata (index, term, configuration), data, data length u64, CRC-32C u32
///
/// The data is what the state machine wrote into a `SnapshotSink`, streamed into the file as it is
/// encoded; the checksum covers everything before it.
///
/// Saving writes a temporary file, fsyncs it, renames it into place and fsyncs the directory, so a
/// crash leaves either the old set or the new one, never half a snapshot under a final name. Only
/// the newest `retain` snapshots are kept.
package struct SnapshotStore: Sendable {
    package let directory: String
    /// How many snapshots to keep (the newest plus fallbacks for debugging).
    package let retain: Int
    /// A snapshot file larger than this is refused as corrupt rather than read into memory.
    package static let maxSnapshotBytes: UInt64 = 4 * 1024 * 1024 * 1024
    static let magic: [UInt8] = Array("RSNP".utf8)
    /// A snapshot file is flushed with an `fdatasync` every `syncEveryBytes` while it is written:
    /// a log sync queued behind a flush waits for all of it (a probe's 400-byte append+fdatasync
    /// loop next to a 200 MB file written this way: p99 2.2 ms with 4 MiB flushes, 1.1 ms with 1 MiB).
    static let syncEveryBytes = 1 << 20
    /// Version 2 puts the data's length after the data (a streamed snapshot's length is known only
    /// at its end); version 1, before it, is still read.
    static let version: UInt8 = 2

    package init(directory: String, retain: Int = 2) throws(WALError) {
        self.directory = directory
        self.retain = max(retain, 1)
        if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw .io(operation: "mkdir", path: directory, errno: errno) }
        // Leftovers of a save interrupted by a crash.
        for name in try fileNames(in: directory) where name.hasPrefix(".tmp-") {
            unlink(directory + "/" + name)
        }
    }

    /// Saves a snapshot whose data is in hand (one received from a leader).
    package func save(_ snapshot: Snapshot) throws(WALError) {
        _ = try save(snapshot.metadata, keepingData: false) { deliver throws(WALError) in
            for start in stride(from: 0, to: snapshot.data.count, by: SnapshotSink.chunkBytes) {
                try deliver(Array(snapshot.data[start..<min(start + SnapshotSink.chunkBytes, snapshot.data.count)]))
            }
        }
    }

    /// Saves the snapshot a state machine streams into a `SnapshotSink`: the file is written as
    /// the machine encodes, a chunk at a time. Returns the snapshot with its data.
    package func save(_ metadata: SnapshotMetadata, machine write: (SnapshotSink) -> Void) throws(WALError) -> Snapshot {
        try saveStreamed(metadata, keepingData: true, machine: write).snapshot
    }

    /// Saves the snapshot a state machine streams into a `SnapshotSink`, keeping its data only in
    /// the file (a node reads the chunks it sends to followers back with `readData`). Returns the
    /// data's size.
    package func store(_ metadata: SnapshotMetadata, machine write: (SnapshotSink) -> Void) throws(WALError) -> UInt64 {
        try saveStreamed(metadata, keepingData: false, machine: write).dataSize
    }

    /// `length` bytes (fewer at the end) of the stored snapshot's data from `offset`.
    package func readData(of metadata: SnapshotMetadata, offset: UInt64, length: Int) throws(WALError) -> [UInt8] {
        let path = directory + "/" + Self.fileName(metadata)
        let fd = systemOpen(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        var version: UInt8 = 0
        guard pread(fd, &version, 1, off_t(Self.magic.count)) == 1 else { throw .corrupt(path: path, offset: 4, reason: "no version") }
        guard version == 1 || version == Self.version else {
            throw .corrupt(path: path, offset: 4, reason: "unknown snapshot version \(version)")
        }
        // The data follows the header (and, in version 1, its length).
        var header = ByteWriter()
        WALRecord.encode(metadata, into: &header)
        let dataStart = UInt64(Self.magic.count + 1 + header.bytes.count + (version == 1 ? 8 : 0))
        // ...and is followed by the checksum (and, in version 2, its length).
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io(operation: "fstat", path: path, errno: errno) }
        let trailer: UInt64 = version == 1 ? 4 : 12
        guard UInt64(info.st_size) >= dataStart + trailer else { throw .corrupt(path: path, offset: 0, reason: "shorter than its header") }
        let dataSize = UInt64(info.st_size) - dataStart - trailer
        let available = offset < dataSize ? dataSize - offset : 0
        var bytes = [UInt8](repeating: 0, count: Int(min(UInt64(max(length, 0)), available)))
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(dataStart + offset) + off_t(done)) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "read", path: path, errno: errno)
            }
            if count == 0 { break }
            done += count
        }
        return Array(bytes.prefix(done))
    }

    private func saveStreamed(
        _ metadata: SnapshotMetadata, keepingData: Bool, machine write: (SnapshotSink) -> Void
    ) throws(WALError) -> (snapshot: Snapshot, dataSize: UInt64) {
        try save(metadata, keepingData: keepingData) { deliver throws(WALError) in
            try withoutActuallyEscaping(deliver) { (deliver) throws(WALError) in
                let sink = SnapshotSink(deliver: deliver)
                write(sink)
                try sink.finish()
            }
        }
    }

    /// The file: the header, the data as `produce` hands it over (through `deliver`), then the
    /// data's length and the checksum of everything before it, computed as the bytes go by.
    private func save(
        _ metadata: SnapshotMetadata, keepingData: Bool,
        produce: (_ deliver: ([UInt8]) throws(WALError) -> Void) throws(WALError) -> Void
    ) throws(WALError) -> (snapshot: Snapshot, dataSize: UInt64) {
        var header = ByteWriter()
        header.raw(Self.magic)
        header.u8(Self.version)
        WALRecord.encode(metadata, into: &header)

        var data: [UInt8] = []
        var dataSize: UInt64 = 0
        try replaceFileAtomically(directory + "/" + Self.fileName(metadata)) { fd, temporary throws(WALError) in
            var offset = 0
            var unsynced = 0
            var crc: UInt32 = 0
            // Written and flushed a few MiB at a time: the log's syncs share the disk with this
            // file, and one flush of a whole large snapshot would hold every one of them up at once.
            func append(_ bytes: [UInt8]) throws(WALError) {
                crc = CRC32C.checksum(bytes, continuing: crc)
                try writeAll(bytes, at: offset, to: fd, path: temporary)
                offset += bytes.count
                unsynced += bytes.count
                if unsynced >= Self.syncEveryBytes {
                    unsynced = 0
                    #if canImport(Glibc)
                    let synced = fdatasync(fd)
                    #else
                    let synced = fsync(fd)
                    #endif
                    if synced != 0 { throw .io(operation: "fdatasync", path: temporary, errno: errno) }
                }
            }
            try append(header.bytes)
            let dataStart = offset
            try produce { chunk throws(WALError) in
                if keepingData { data += chunk }
                try append(chunk)
            }
            dataSize = UInt64(offset - dataStart)
            var length = ByteWriter()
            length.u64(dataSize)
            try append(length.bytes)
            var trailer = ByteWriter()
            trailer.u32(crc)
            try writeAll(trailer.bytes, at: offset, to: fd, path: temporary)
        }
        let all = try list()
        for old in all.dropLast(retain) {
            // A few MiB at a time, so the log's syncs do not stall behind one large removal. An
            // old file that cannot be removed is no reason to fail the new snapshot's save.
            try? removeGradually(directory + "/" + Self.fileName(index: old.index, term: old.term))
        }
        return (Snapshot(metadata: metadata, data: data), dataSize)
    }

    /// Snapshots on disk as (index, term), oldest first.
    package func list() throws(WALError) -> [LogPosition] {
        try fileNames(in: directory).compactMap(Self.parse).sorted { ($0.index, $0.term) < ($1.index, $1.term) }
    }

    /// The newest snapshot, or nil when there is none. A damaged newest snapshot is an error naming
    /// its file: silently starting from an older one could leave a gap before the log.
    package func latest() throws(WALError) -> Snapshot? {
        guard let newest = try list().last else { return nil }
        return try load(newest)
    }

    package func load(_ position: LogPosition) throws(WALError) -> Snapshot {
        let path = directory + "/" + Self.fileName(index: position.index, term: position.term)
        let bytes = try readWholeFile(path, limit: Self.maxSnapshotBytes)
        guard bytes.count >= Self.magic.count + 1 + 4, Array(bytes.prefix(4)) == Self.magic else {
            throw .corrupt(path: path, offset: 0, reason: "not a snapshot file")
        }
        let body = bytes.dropLast(4)
        var crcReader = ByteReader(bytes, from: bytes.count - 4)
        let stored: UInt32
        do { stored = try crcReader.u32() } catch { throw .corrupt(path: path, offset: bytes.count - 4, reason: "\(error)") }
        guard CRC32C.checksum(body) == stored else { throw .corrupt(path: path, offset: 0, reason: "checksum mismatch") }
        var reader = ByteReader(bytes, from: 4, to: bytes.count - 4)
        do throws(DecodeError) {
            let version = try reader.u8()
            let metadata = try WALRecord.decodeMetadata(&reader)
            let data: [UInt8]
            switch version {
            case 1:
                let length = try reader.u64()
                guard length == UInt64(reader.remaining) else { throw .invalid("data length \(length) does not match file", at: reader.offset) }
                data = Array(bytes[reader.offset..<(bytes.count - 4)])
            case 2:
                guard reader.remaining >= 8 else { throw .truncated(at: reader.offset) }
                var lengthReader = ByteReader(bytes, from: bytes.count - 12, to: bytes.count - 4)
                let length = try lengthReader.u64()
                guard length == UInt64(reader.remaining - 8) else { throw .invalid("data length \(length) does not match file", at: bytes.count - 12) }
                data = Array(bytes[reader.offset..<(bytes.count - 12)])
            default:
                throw .invalid("unknown snapshot version \(version)", at: 4)
            }
            guard metadata.index == position.index, metadata.term == position.term else {
                throw .invalid("metadata \(metadata.index)@\(metadata.term) does not match the file name", at: 5)
            }
            return Snapshot(metadata: metadata, data: data)
        } catch {
            throw .corrupt(path: path, offset: 0, reason: "\(error)")
        }
    }

    // MARK: - Files

    static func fileName(_ metadata: SnapshotMetadata) -> String { fileName(index: metadata.index, term: metadata.term) }

    static func fileName(index: LogIndex, term: Term) -> String {
        "snapshot-" + hex16(index) + "-" + hex16(term) + ".snap"
    }

    static func hex16(_ value: UInt64) -> String {
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: max(16 - hex.count, 0)) + hex
    }

    static func parse(_ name: String) -> LogPosition? {
        guard name.hasPrefix("snapshot-"), name.hasSuffix(".snap"), name.count == 9 + 16 + 1 + 16 + 5 else { return nil }
        let body = name.dropFirst(9).dropLast(5)
        guard let index = UInt64(body.prefix(16), radix: 16), let term = UInt64(body.suffix(16), radix: 16) else { return nil }
        return LogPosition(index: index, term: term)
    }
}
