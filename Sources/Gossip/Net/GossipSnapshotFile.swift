#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore
import Dispatch
import Synchronization

/// Why the snapshot file could not be used at start (the node does not start without it, as serf's
/// "Failed to setup snapshot").
package struct GossipSnapshotError: Error, Equatable, Sendable, CustomStringConvertible {
    package var path: String
    package var reason: String
    package var description: String { "Failed to setup snapshot \(path): \(reason)" }
}

/// serf's snapshotter on a real file: the node reports member changes, delivered user events and
/// queries, and its membership clock; this keeps `SerfSnapshot` current in memory and appends the
/// matching lines to the file on a serial dispatch queue of its own, so no write, `fsync` or
/// `rename` ever runs on an event loop or on Swift's cooperative pool.
///
/// - Lines wait in a bounded buffer (`maxPendingBytes`). When the disk falls that far behind, the
///   waiting lines are dropped and the file is rewritten from the in-memory state instead, which
///   loses nothing (the state is what the lines would have built).
/// - Once the file passes `SerfSnapshot.compactionThreshold` it is compacted the same way:
///   written to `PATH.compact`, fsynced, renamed over the log, directory fsynced.
/// - A graceful leave writes `leave` and fsyncs; `close()` writes the clock, fsyncs and closes.
///   Ordinary appends are not fsynced (as in serf): a crash may lose the last lines, and the
///   torn or missing tail only costs a slightly older view.
/// - Bad lines found when the file is opened are skipped, logged with the file name, and dropped
///   by an immediate compaction (so later appends never follow a torn line).
package final class GossipSnapshotFile: Sendable {
    package static let lanPath = "serf/local.snapshot"
    package static let wanPath = "serf/remote.snapshot"
    /// Lines (in bytes) waiting for the writer before they are replaced by a compaction.
    package static let defaultMaxPendingBytes = 256 * 1024

    package let path: String
    package let rejoinAfterLeave: Bool
    package let maxPendingBytes: Int
    private let logger: RateLimitedLogger
    private let queue: DispatchQueue
    private let state: Mutex<State>
    /// The open log; only the writer queue touches it.
    private let file: Mutex<Int32>

    private struct State {
        var snapshot: SerfSnapshot
        var pending: [UInt8] = []
        /// Bytes in the file plus those pending: decides compaction.
        var fileBytes: Int
        var compactNext = false
        var draining = false
        /// After a graceful leave, members are no longer recorded (the clock still is, as in serf).
        var leaving = false
        var closed = false
        var syncRequested = false
        var syncWaiters: [CheckedContinuation<Void, Never>] = []
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
        var stats = Stats()
    }

    /// Counters for tests and `consul info`-style output.
    package struct Stats: Equatable, Sendable {
        package var linesWritten = 0
        package var compactions = 0
        package var overflows = 0
        package var syncs = 0
        package var writeErrors = 0
    }

    private init(
        path: String, rejoinAfterLeave: Bool, maxPendingBytes: Int, logger: RateLimitedLogger, descriptor: Int32, snapshot: SerfSnapshot, size: Int
    ) {
        self.path = path
        self.rejoinAfterLeave = rejoinAfterLeave
        self.maxPendingBytes = maxPendingBytes
        self.logger = logger
        self.queue = DispatchQueue(label: "gossip-snapshot")
        self.file = Mutex(descriptor)
        self.state = Mutex(State(snapshot: snapshot, fileBytes: size))
    }

    /// Opens (creating it and its directory) and replays the snapshot on a dispatch thread, and
    /// returns it with the state of the last run. Bad lines are logged and compacted away.
    package static func open(
        path: String, rejoinAfterLeave: Bool, logger: RateLimitedLogger, maxPendingBytes: Int = defaultMaxPendingBytes
    ) async throws(GossipSnapshotError) -> GossipSnapshotFile {
        let result: Result<GossipSnapshotFile, GossipSnapshotError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: openNow(path: path, rejoinAfterLeave: rejoinAfterLeave, maxPendingBytes: maxPendingBytes, logger: logger))
            }
        }
        return try result.get()
    }

    private static func openNow(path: String, rejoinAfterLeave: Bool, maxPendingBytes: Int, logger: RateLimitedLogger) -> Result<GossipSnapshotFile, GossipSnapshotError> {
        do {
            try GossipKeyringFile.makeParentDirectory(of: path)
        } catch {
            return .failure(GossipSnapshotError(path: path, reason: error.reason))
        }
        let descriptor = systemOpen(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return .failure(GossipSnapshotError(path: path, reason: "open: \(errnoText())")) }
        var replay = SerfSnapshot.Replay(rejoinAfterLeave: rejoinAfterLeave)
        var size = 0
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, off_t(size)) }
            if count < 0 {
                if errno == EINTR { continue }
                let reason = "read: \(errnoText())"
                systemClose(descriptor)
                return .failure(GossipSnapshotError(path: path, reason: reason))
            }
            if count == 0 { break }
            size += count
            replay.feed(chunk[0..<count])
        }
        for problem in replay.problems {
            logger.log(.warn, "serf: skipping a bad line in snapshot \(path): \(problem)")
        }
        if replay.moreProblems > 0 { logger.log(.warn, "serf: skipping \(replay.moreProblems) more bad lines in snapshot \(path)") }
        if replay.tornTailBytes > 0 {
            logger.log(.warn, "serf: snapshot \(path) ends in an incomplete line (\(replay.tornTailBytes) bytes), ignored")
        }
        if replay.leavesKept > 0 { logger.log(.info, "serf: Ignoring previous leave in snapshot \(path)") }
        let snapshotFile = GossipSnapshotFile(
            path: path, rejoinAfterLeave: rejoinAfterLeave, maxPendingBytes: maxPendingBytes, logger: logger, descriptor: descriptor,
            snapshot: replay.snapshot, size: size)
        if !replay.problems.isEmpty || replay.moreProblems > 0 || replay.tornTailBytes > 0 {
            // Rewrite the file from what was read before anything is appended, so no append ever
            // follows a torn or bad line (nobody else holds the object yet).
            snapshotFile.compact(replay.snapshot)
        }
        return .success(snapshotFile)
    }

    /// The state of the last run as replayed at open, updated by everything recorded since.
    package var snapshot: SerfSnapshot { state.withLock { $0.snapshot } }
    package var stats: Stats { state.withLock { $0.stats } }

    // MARK: - Recording (non-blocking; called from event loops)

    /// A member joined (serf `EventMemberJoin`).
    package func memberAlive(_ name: String, address: GossipAddress) {
        record(.alive(name: name, address: address.hostPort), name: name, isMember: true)
    }

    /// A member failed or left (serf `EventMemberLeave` / `EventMemberFailed`).
    package func memberGone(_ name: String) {
        record(.notAlive(name: name), name: name, isMember: true)
    }

    /// The membership clock now reads `time`; recorded when it moved (serf records time − 1,
    /// the last value actually used).
    package func clockAdvanced(to time: LamportTime) {
        guard time > 0 else { return }
        let seen = time - 1
        record(.clock(seen), name: nil, isMember: false) { $0.clock < seen }
    }

    /// A user event was delivered to the application.
    package func userEventDelivered(at time: LamportTime) {
        record(.eventClock(time), name: nil, isMember: true) { $0.eventClock < time }
    }

    /// A query was delivered to the application.
    package func queryDelivered(at time: LamportTime) {
        record(.queryClock(time), name: nil, isMember: true) { $0.queryClock < time }
    }

    private func record(_ record: SerfSnapshot.Record, name: String?, isMember: Bool, when condition: (SerfSnapshot) -> Bool = { _ in true }) {
        if let name, !SerfSnapshot.canRecord(name: name) {
            logger.log(.warn, "serf: not recording member \(name.debugDescription) in snapshot \(path): the name cannot be written as one line")
            return
        }
        let start = state.withLock { state -> Bool in
            guard !state.closed, !(state.leaving && isMember), condition(state.snapshot) else { return false }
            state.snapshot.apply(record, rejoinAfterLeave: rejoinAfterLeave)
            append(record, to: &state)
            return startDraining(&state)
        }
        if start { queue.async { self.drain() } }
    }

    private func append(_ record: SerfSnapshot.Record, to state: inout State) {
        let line = Array(SerfSnapshot.format(record).utf8)
        guard !state.compactNext else { return }  // the compaction writes the state, this included
        if state.pending.count + line.count > maxPendingBytes {
            state.pending.removeAll()
            state.compactNext = true
            state.stats.overflows += 1
            return
        }
        state.pending += line
        state.fileBytes += line.count
    }

    private func startDraining(_ state: inout State) -> Bool {
        guard !state.draining else { return false }
        state.draining = true
        return true
    }

    /// serf `Snapshotter.Leave`: records `leave` (forgetting the members unless rejoining after a
    /// leave), stops recording members, and fsyncs. Returns once the leave is on disk.
    package func leave() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let start = state.withLock { state -> Bool? in
                guard !state.closed else { return nil }
                if !state.leaving {
                    state.leaving = true
                    if !rejoinAfterLeave { state.snapshot.alive.removeAll() }
                    append(.leave, to: &state)
                }
                state.syncRequested = true
                state.syncWaiters.append(continuation)
                return startDraining(&state)
            }
            guard let start else { return continuation.resume() }
            if start { queue.async { self.drain() } }
        }
    }

    /// Writes what is pending, fsyncs and closes the file; later records are ignored.
    package func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let start = state.withLock { state -> Bool? in
                guard !state.closed else { return nil }
                state.closed = true
                state.closeWaiters.append(continuation)
                return startDraining(&state)
            }
            guard let start else { return continuation.resume() }
            if start { queue.async { self.drain() } }
        }
    }

    // MARK: - The writer queue

    private enum Work {
        case append([UInt8])
        case compact(SerfSnapshot)
    }

    private func drain() {
        while true {
            let next = state.withLock { state -> (work: Work?, sync: Bool, close: Bool)? in
                var work: Work?
                if state.compactNext || state.fileBytes > state.snapshot.compactionThreshold {
                    state.compactNext = false
                    state.pending.removeAll()
                    work = .compact(state.snapshot)
                } else if !state.pending.isEmpty {
                    work = .append(state.pending)
                    state.pending.removeAll(keepingCapacity: true)
                }
                let sync = state.syncRequested
                state.syncRequested = false
                let close = state.closed && work == nil && !sync
                if work == nil && !sync && !state.closed {
                    state.draining = false
                    return nil
                }
                return (work, sync, close)
            }
            guard let next else { return }
            switch next.work {
            case .append(let bytes)?: write(bytes)
            case .compact(let snapshot)?: compact(snapshot)
            case nil: break
            }
            if next.sync || next.close { sync() }
            if next.sync {
                let waiters = state.withLock { state in
                    defer { state.syncWaiters.removeAll() }
                    return state.syncWaiters
                }
                for waiter in waiters { waiter.resume() }
            }
            if next.close {
                file.withLock { descriptor in
                    if descriptor >= 0 { systemClose(descriptor) }
                    descriptor = -1
                }
                let waiters = state.withLock { state in
                    state.draining = false
                    defer { state.closeWaiters.removeAll(); state.syncWaiters.removeAll() }
                    return state.closeWaiters + state.syncWaiters
                }
                for waiter in waiters { waiter.resume() }
                return
            }
        }
    }

    private func write(_ bytes: [UInt8]) {
        let failure = file.withLock { descriptor -> String? in
            guard descriptor >= 0 else { return "the file is closed" }
            return Self.writeAll(descriptor, bytes)
        }
        state.withLock { state in
            if failure == nil {
                state.stats.linesWritten += bytes.count(where: { $0 == UInt8(ascii: "\n") })
            } else {
                state.stats.writeErrors += 1
                state.compactNext = true  // the next drain rewrites the whole state
            }
        }
        if let failure { logger.log(.error, "serf: Failed to update snapshot \(path): \(failure)") }
    }

    private func sync() {
        let failed = file.withLock { descriptor in descriptor >= 0 && fsync(descriptor) != 0 }
        state.withLock { $0.stats.syncs += 1 }
        if failed { logger.log(.error, "serf: failed to sync snapshot \(path): \(errnoText())") }
    }

    /// serf `compact`: the state as a fresh file, fsynced, renamed over the log, then appended to.
    private func compact(_ snapshot: SerfSnapshot) {
        let text = Array(snapshot.compacted.utf8)
        let temporary = path + ".compact"
        let failure: String? = file.withLock { descriptor in
            let fresh = systemOpen(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fresh >= 0 else { return "open \(temporary): \(errnoText())" }
            if let error = Self.writeAll(fresh, text) {
                systemClose(fresh)
                return "write \(temporary): \(error)"
            }
            guard fsync(fresh) == 0 else {
                let error = errnoText()
                systemClose(fresh)
                return "fsync \(temporary): \(error)"
            }
            systemClose(fresh)
            guard rename(temporary, path) == 0 else { return "rename \(temporary): \(errnoText())" }
            Self.syncDirectory(of: path)
            let reopened = systemOpen(path, O_RDWR | O_APPEND | O_CLOEXEC)
            guard reopened >= 0 else { return "reopen: \(errnoText())" }
            if descriptor >= 0 { systemClose(descriptor) }
            descriptor = reopened
            return nil
        }
        state.withLock { state in
            if failure == nil {
                state.stats.compactions += 1
                // What was recorded meanwhile is still pending, to be appended after the state.
                state.fileBytes = text.count + state.pending.count
            } else {
                state.stats.writeErrors += 1
            }
        }
        if let failure { logger.log(.error, "serf: Compaction of snapshot \(path) failed: \(failure)") }
    }

    private static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> String? {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { systemWrite(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                return errnoText()
            }
            offset += written
        }
        return nil
    }

    private static func syncDirectory(of path: String) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let descriptor = systemOpen(directory.isEmpty ? "/" : directory, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        systemClose(descriptor)
    }
}

private func errnoText() -> String { String(cString: strerror(errno)) }

// The POSIX calls under names that do not clash with the methods above.
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 { open(path, flags, mode) }
private func systemClose(_ descriptor: Int32) { _ = close(descriptor) }
private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(descriptor, buffer, count) }
