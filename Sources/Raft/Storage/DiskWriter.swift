import Dispatch
import Synchronization

/// Carries out a node's durable writes on a serial dispatch queue of its own, so no `fsync` ever
/// runs on the node's event loop or Swift's cooperative thread pool, and does group commit: the jobs that arrive while one
/// group is being written and synced form the next group, which costs one more `fdatasync` however
/// many jobs it holds.
///
/// Jobs are written strictly in submission order. Each `submit` returns a sequence number; the
/// writer reports `.durable(seq)` once every job up to and including `seq` is on disk, and
/// `.failed` (then nothing more) when a write fails.
package final class DiskWriter: Sendable {
    package enum Job: Sendable {
        /// One output batch's persist work (a received snapshot is saved to the snapshot store
        /// first, then a new term or vote to the stable store, then entries to the log), and how
        /// the log then sheds what a snapshot covers.
        case persist(PersistWork, then: LogRewrite?)
    }

    package enum LogRewrite: Sendable {
        /// This server took a snapshot: a compaction record, then the segments it covers go.
        case compaction(SnapshotMetadata)
        /// The log is replaced by this one state (a snapshot installed from the leader, which may
        /// replace the whole log): written as a checkpoint record instead of the job's own work.
        case checkpoint(RecoveredState)
    }

    package enum Event: Sendable, Hashable {
        case durable(UInt64)
        case failed(RaftNodeError)
    }

    package struct Stats: Sendable, Hashable {
        /// `fdatasync` calls on the log (one per group; checkpoints sync on their own).
        package var syncs = 0
        package var jobs = 0
        /// Log entries written.
        package var entries = 0
        package var largestGroup = 0
        /// Jobs submitted and not yet durable.
        package var queued = 0
    }

    /// A disk that falls this far behind has stalled: the writer fails rather than queue without
    /// bound. (The core's own limits keep a healthy node far below it: proposals stop at
    /// `maxUncommittedEntries`, and each step submits at most one job.)
    package static let maxQueuedJobs = 65_536

    private struct Files {
        var wal: SegmentedWAL
        var snapshots: SnapshotStore
        var stable: StableStore
    }

    private struct State {
        var jobs: [(seq: UInt64, job: Job)] = []
        var nextSeq: UInt64 = 0
        var draining = false
        var failed = false
        var closed = false
        var stats = Stats()
        var whenIdle: [CheckedContinuation<Void, Never>] = []
    }

    private let files: Mutex<Files>
    private let state = Mutex(State())
    private let queue: DispatchQueue
    private let report: @Sendable (Event) -> Void
    private let beforeSync: (@Sendable () -> Void)?

    /// - Parameters:
    ///   - report: called with `.durable` / `.failed`, in order, on the writer's queue (or, for a
    ///     queue overflow, on the submitting thread); never after `close()` returns. It must not
    ///     block: it hands the event on (the node schedules it on its event loop).
    ///   - beforeSync: instrumentation for tests, called on the writer's queue before each sync.
    package init(
        wal: sending SegmentedWAL, snapshots: SnapshotStore, stable: StableStore, label: String, report: @escaping @Sendable (Event) -> Void,
        beforeSync: (@Sendable () -> Void)? = nil
    ) {
        self.files = Mutex(Files(wal: wal, snapshots: snapshots, stable: stable))
        self.queue = DispatchQueue(label: label)
        self.report = report
        self.beforeSync = beforeSync
    }

    /// Queues a job and returns its sequence number (jobs after `close()` or a failure are dropped:
    /// they are never reported durable).
    @discardableResult
    package func submit(_ job: Job) -> UInt64 {
        let (seq, startDrain, overflow) = state.withLock { state -> (UInt64, Bool, Bool) in
            state.nextSeq += 1
            guard !state.closed, !state.failed else { return (state.nextSeq, false, false) }
            guard state.jobs.count < Self.maxQueuedJobs else {
                state.failed = true
                return (state.nextSeq, false, true)
            }
            state.jobs.append((state.nextSeq, job))
            state.stats.queued += 1
            let start = !state.draining
            state.draining = true
            return (state.nextSeq, start, false)
        }
        if overflow {
            report(.failed(.storage("disk writer queue over \(Self.maxQueuedJobs) jobs: the disk has stalled")))
        }
        if startDrain { queue.async { self.drain() } }
        return seq
    }

    package var stats: Stats { state.withLock { $0.stats } }

    /// Drops queued jobs and waits for the group being written (if any) and a spare segment being
    /// made (if any) to finish; nothing more is reported after it. The files stay open until the
    /// writer is released.
    package func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                state.closed = true
                state.stats.queued -= state.jobs.count
                state.jobs.removeAll()
                if state.draining {
                    state.whenIdle.append(continuation)
                    return false
                }
                return true
            }
            if idle { continuation.resume() }
        }
        // A segment being preallocated or a discarded one being removed in the background is
        // finished too, so nothing touches the directory once this returns.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.files.withLock { $0.wal.waitForBackgroundWork() }
                continuation.resume()
            }
        }
    }

    // MARK: - The writer's queue

    private func drain() {
        while true {
            let group = state.withLock { state -> [(seq: UInt64, job: Job)]? in
                if state.jobs.isEmpty || state.failed || state.closed {
                    state.draining = false
                    return nil
                }
                defer { state.jobs.removeAll(keepingCapacity: true) }
                return state.jobs
            }
            guard let group, let last = group.last else { break }
            let outcome = files.withLock { files in write(group.map(\.job), to: &files) }
            switch outcome {
            case .success(let written):
                state.withLock { state in
                    state.stats.syncs += written.syncs
                    state.stats.jobs += group.count
                    state.stats.entries += written.entries
                    state.stats.queued -= group.count
                    state.stats.largestGroup = max(state.stats.largestGroup, group.count)
                }
                report(.durable(last.seq))
            case .failure(let error):
                state.withLock { $0.failed = true }
                report(.failed(error))
            }
        }
        let waiting = state.withLock { state in
            defer { state.whenIdle.removeAll() }
            return state.whenIdle
        }
        for continuation in waiting { continuation.resume() }
    }

    private func write(_ jobs: [Job], to files: inout Files) -> Result<(syncs: Int, entries: Int), RaftNodeError> {
        var unsynced = false
        var syncs = 0
        var entries = 0
        do throws(WALError) {
            for job in jobs {
                switch job {
                case .persist(var work, let rewrite):
                    if let snapshot = work.snapshot {
                        try files.snapshots.save(snapshot)
                        work.snapshot = Snapshot(metadata: snapshot.metadata, data: [])
                    }
                    if let hardState = work.hardState {
                        // Log writes of earlier jobs become durable before the new term or vote,
                        // so what a crash keeps is always a prefix of the jobs, as the simulator's
                        // disk assumes. Terms and votes change rarely: this costs almost nothing.
                        if unsynced {
                            beforeSync?()
                            try files.wal.sync()
                            syncs += 1
                            unsynced = false
                        }
                        try files.stable.save(hardState)
                        work.hardState = nil
                    }
                    switch rewrite {
                    case .checkpoint(let state):
                        // The checkpoint holds the log with this job's work in it.
                        try files.wal.checkpoint(state)
                        unsynced = false
                    case .compaction(let metadata):
                        if !work.isEmpty { try files.wal.append(work) }
                        try files.wal.compact(to: metadata)
                        unsynced = false
                    case nil:
                        if !work.isEmpty {
                            try files.wal.append(work)
                            unsynced = true
                        }
                    }
                    entries += work.entries.count
                }
            }
            if unsynced {
                beforeSync?()
                try files.wal.sync()
                syncs += 1
            }
        } catch {
            return .failure(.storage(error.description))
        }
        return .success((syncs, entries))
    }
}
