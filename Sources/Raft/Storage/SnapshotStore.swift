#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Snapshots on disk, one file each (`snapshot-<index>-<term>.snap`, hex, zero-padded):
///
///     magic "RSNP", version u8, metadata (index, term, configuration), data length u64, data, CRC-32C u32
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
    /// A snapshot file is written in writes of this size, with an `fdatasync` every `syncEveryBytes`.
    static let chunkBytes = 1 << 20
    static let syncEveryBytes = 4 << 20
    static let version: UInt8 = 1

    package init(directory: String, retain: Int = 2) throws(WALError) {
        self.directory = directory
        self.retain = max(retain, 1)
        if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw .io(operation: "mkdir", path: directory, errno: errno) }
        // Leftovers of a save interrupted by a crash.
        for name in try Self.names(in: directory) where name.hasPrefix(".tmp-") {
            unlink(directory + "/" + name)
        }
    }

    package func save(_ snapshot: Snapshot) throws(WALError) {
        var writer = ByteWriter()
        for byte in Self.magic { writer.u8(byte) }
        writer.u8(Self.version)
        WALRecord.encode(snapshot.metadata, into: &writer)
        writer.u64(UInt64(snapshot.data.count))
        var bytes = writer.bytes + snapshot.data
        let crc = CRC32C.checksum(bytes)
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: crc >> UInt32(shift))) }

        let name = Self.fileName(snapshot.metadata)
        let temporary = directory + "/.tmp-" + name
        let fd = systemOpen(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(operation: "open", path: temporary, errno: errno) }
        // Written and flushed a few MiB at a time: the log's syncs share the disk with this file,
        // and one flush of a whole large snapshot would hold every one of them up at once.
        var offset = 0
        var unsynced = 0
        while offset < bytes.count {
            let chunk = min(Self.chunkBytes, bytes.count - offset)
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, chunk) }
            if written < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                throw .io(operation: "write", path: temporary, errno: code)
            }
            offset += written
            unsynced += written
            if unsynced >= Self.syncEveryBytes {
                unsynced = 0
                #if canImport(Glibc)
                let synced = fdatasync(fd)
                #else
                let synced = fsync(fd)
                #endif
                if synced != 0 {
                    let code = errno
                    close(fd)
                    throw .io(operation: "fdatasync", path: temporary, errno: code)
                }
            }
        }
        if fsync(fd) != 0 {
            let code = errno
            close(fd)
            throw .io(operation: "fsync", path: temporary, errno: code)
        }
        close(fd)
        if rename(temporary, directory + "/" + name) != 0 { throw .io(operation: "rename", path: temporary, errno: errno) }
        try syncDirectory(directory)
        let all = try list()
        for old in all.dropLast(retain) {
            unlink(directory + "/" + Self.fileName(index: old.index, term: old.term))
        }
    }

    /// Snapshots on disk as (index, term), oldest first.
    package func list() throws(WALError) -> [LogPosition] {
        try Self.names(in: directory).compactMap(Self.parse).sorted { ($0.index, $0.term) < ($1.index, $1.term) }
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
            guard version == Self.version else { throw .invalid("unknown snapshot version \(version)", at: 4) }
            let metadata = try WALRecord.decodeMetadata(&reader)
            let length = try reader.u64()
            guard length == UInt64(reader.remaining) else { throw .invalid("data length \(length) does not match file", at: reader.offset) }
            let data = Array(bytes[reader.offset..<(bytes.count - 4)])
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

    static func names(in directory: String) throws(WALError) -> [String] {
        guard let handle = opendir(directory) else { throw .io(operation: "opendir", path: directory, errno: errno) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            names.append(withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
        }
        return names.sorted()
    }
}
