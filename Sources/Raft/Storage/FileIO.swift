#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The few file operations the Raft stores share. Every error names the file it is about.

/// `open(2)` under a name that does not collide with `SegmentedWAL.open`.
func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
    #if canImport(Glibc)
    return Glibc.open(path, flags, mode)
    #else
    return Darwin.open(path, flags, mode)
    #endif
}

/// Writes all of `bytes` at `offset` (positioned writes: a preallocated segment is written in place).
func writeAll(_ bytes: [UInt8], at offset: Int, to fd: Int32, path: String) throws(WALError) {
    var done = 0
    while done < bytes.count {
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
        if written < 0 {
            if errno == EINTR { continue }
            throw .io(operation: "write", path: path, errno: errno)
        }
        done += written
    }
}

/// `fsync` on a directory, so the names created, renamed or removed in it are durable.
func syncDirectory(_ directory: String) throws(WALError) {
    let fd = systemOpen(directory, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw .io(operation: "open", path: directory, errno: errno) }
    defer { close(fd) }
    if fsync(fd) != 0 { throw .io(operation: "fsync", path: directory, errno: errno) }
}

/// Removes a file a few MiB at a time: truncated from its end in `stepBytes` steps, then unlinked.
/// ext4 frees all of a large file's blocks in one journal transaction when it is unlinked at once,
/// and a log's `fdatasync` that waits for that transaction stalled 20-40 ms on this machine for a
/// 200 MB file; in 8 MiB steps, under 5 ms. For background threads (it takes as long or longer in
/// all). A file already gone counts as removed.
func removeGradually(_ path: String, stepBytes: Int = 8 << 20) throws(WALError) {
    let fd = systemOpen(path, O_WRONLY | O_CLOEXEC)
    if fd < 0 {
        if errno == ENOENT { return }
        throw .io(operation: "open", path: path, errno: errno)
    }
    var info = stat()
    if fstat(fd, &info) == 0 {
        var size = Int(info.st_size)
        while size > 0 {
            size = max(size - max(stepBytes, 1), 0)
            if ftruncate(fd, off_t(size)) != 0 {
                close(fd)
                throw .io(operation: "ftruncate", path: path, errno: errno)
            }
        }
    }
    close(fd)
    if unlink(path) != 0 && errno != ENOENT { throw .io(operation: "unlink", path: path, errno: errno) }
}

/// The names in a directory, sorted.
func fileNames(in directory: String) throws(WALError) -> [String] {
    guard let handle = opendir(directory) else { throw .io(operation: "opendir", path: directory, errno: errno) }
    defer { closedir(handle) }
    var names: [String] = []
    while let entry = readdir(handle) {
        names.append(withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
    }
    return names.sorted()
}

/// The whole file. A file larger than `limit` is refused as corrupt rather than read into memory.
func readWholeFile(_ path: String, limit: UInt64 = .max) throws(WALError) -> [UInt8] {
    let fd = systemOpen(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw .io(operation: "fstat", path: path, errno: errno) }
    guard UInt64(info.st_size) <= limit else {
        throw .corrupt(path: path, offset: 0, reason: "file larger than \(limit) bytes")
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(Int(info.st_size))
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

/// The file's first `limit + 1` bytes at most (enough for a parser to refuse an oversized file),
/// or nil when it does not exist.
func readFileIfPresent(_ path: String, limit: UInt64) throws(WALError) -> [UInt8]? {
    let fd = systemOpen(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        if errno == ENOENT { return nil }
        throw .io(operation: "open", path: path, errno: errno)
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    while UInt64(bytes.count) <= limit {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw .io(operation: "read", path: path, errno: errno)
        }
        if count == 0 { break }
        bytes.append(contentsOf: buffer[..<count])
    }
    return bytes
}

/// Replaces `path` with `bytes` so that a crash leaves either the old contents or the new, never a
/// mix: write a temporary file beside it, fsync it, rename it over `path`, fsync the directory.
func replaceFileAtomically(_ path: String, with bytes: [UInt8]) throws(WALError) {
    try replaceFileAtomically(path) { fd, temporary throws(WALError) in try writeAll(bytes, at: 0, to: fd, path: temporary) }
}

/// The same, with the contents written by `write` into the temporary file (open for writing, at
/// its start); the file is fsynced after it returns.
func replaceFileAtomically(_ path: String, write: (_ fd: Int32, _ temporary: String) throws(WALError) -> Void) throws(WALError) {
    let slash = path.lastIndex(of: "/")
    let directory = slash.map { String(path[..<$0]) } ?? "."
    let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
    let temporary = directory + "/.tmp-" + name
    let fd = systemOpen(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw .io(operation: "open", path: temporary, errno: errno) }
    do throws(WALError) {
        try write(fd, temporary)
        if fsync(fd) != 0 { throw .io(operation: "fsync", path: temporary, errno: errno) }
    } catch {
        close(fd)
        unlink(temporary)
        throw error
    }
    close(fd)
    if rename(temporary, path) != 0 { throw .io(operation: "rename", path: temporary, errno: errno) }
    try syncDirectory(directory)
}
