#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Synchronization

/// The WAL's next segment, made ahead of time on a background queue so the write path never waits
/// for it: the file is allocated (`posix_fallocate`), then really written with zeros and synced, so
/// records later overwrite blocks that are allocated *and* initialized. (Blocks that are only
/// allocated are "unwritten" extents: the first write into each one still changes the file's
/// metadata, which `fdatasync` then has to commit.)
///
/// Files in the WAL directory: `spare.tmp` while being made (removed on open: a crash may have cut
/// it short), `spare.seg` once complete and durable. `take` renames it to the next segment's name;
/// the WAL then syncs the directory.
final class SpareSegment: Sendable {
    let directory: String
    let bytes: Int
    /// Zeros are written in chunks of this size, with an `fdatasync` every `syncEveryBytes`, so the
    /// preparation never puts a whole segment's worth of dirty pages in front of the log's syncs.
    static let chunkBytes = 1 << 20
    static let syncEveryBytes = 8 << 20

    private enum Phase {
        case absent
        case preparing
        case ready
    }

    private let phase: Mutex<Phase>
    private let queue = DispatchQueue(label: "raft.wal.spare", qos: .utility)

    var readyPath: String { directory + "/spare.seg" }
    var temporaryPath: String { directory + "/spare.tmp" }

    init(directory: String, bytes: Int) {
        self.directory = directory
        self.bytes = bytes
        unlink(directory + "/spare.tmp")
        var info = stat()
        let path = directory + "/spare.seg"
        if stat(path, &info) == 0 && Int(info.st_size) == bytes {
            phase = Mutex(.ready)
        } else {
            unlink(path)
            phase = Mutex(.absent)
        }
    }

    /// Starts making a spare unless one is ready or being made.
    func prepareInBackground() {
        let start = phase.withLock { phase -> Bool in
            guard case .absent = phase else { return false }
            phase = .preparing
            return true
        }
        guard start else { return }
        queue.async {
            let made = self.make()
            self.phase.withLock { $0 = made ? .ready : .absent }
        }
    }

    /// Renames the ready spare to `path`; false when none is ready (the caller then makes the
    /// segment itself).
    func take(renamingTo path: String) -> Bool {
        phase.withLock { phase in
            guard case .ready = phase else { return false }
            phase = .absent
            guard rename(readyPath, path) == 0 else {
                unlink(readyPath)
                return false
            }
            return true
        }
    }

    /// Blocks until no preparation is running.
    func waitUntilIdle() {
        queue.sync {}
    }

    /// Writes the spare; false (leaving nothing behind) on any error: the WAL then allocates its
    /// next segment itself.
    private func make() -> Bool {
        let path = temporaryPath
        let fd = systemOpen(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        var ok = true
        #if canImport(Glibc)
        // Reserves the blocks in one go (contiguous where possible); not supported everywhere, and
        // the zeros below allocate them anyway.
        _ = posix_fallocate(fd, 0, off_t(bytes))
        #endif
        let zeros = [UInt8](repeating: 0, count: Self.chunkBytes)
        var offset = 0
        while ok && offset < bytes {
            do throws(WALError) {
                let count = min(Self.chunkBytes, bytes - offset)
                try writeAll(count == zeros.count ? zeros : Array(zeros.prefix(count)), at: offset, to: fd, path: path)
                offset += count
                if offset % Self.syncEveryBytes == 0 || offset == bytes {
                    #if canImport(Glibc)
                    ok = fdatasync(fd) == 0
                    #else
                    ok = fsync(fd) == 0
                    #endif
                }
            } catch {
                ok = false
            }
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(path, readyPath) == 0 else {
            unlink(path)
            return false
        }
        return true
    }
}
