import ConsulCore
import Dispatch
import NIOCore
import NIOPosix
import Synchronization

/// Carries messages to peers. `send` must not block or suspend: it hands the message to the
/// network layer and returns, so a node's output batch is carried out without interleaving.
package protocol RaftTransport: Sendable {
    func send(_ message: Message)
    /// Puts what `send` queued so far on the wire now rather than once the caller's current work
    /// is done, where the transport can (the caller runs on the thread that writes); else nothing.
    func flush()
    /// The node's configuration changed (or is first known): servers' addresses may be in it.
    func configurationChanged(_ configuration: ClusterConfiguration)
}

extension RaftTransport {
    package func flush() {}
    package func configurationChanged(_ configuration: ClusterConfiguration) {}
}

/// The replicated state machine a node applies committed commands to.
package protocol RaftStateMachine: Sendable {
    /// Applies a committed command and returns the answer for the client that proposed it.
    mutating func apply(_ command: [UInt8], at index: LogIndex) -> [UInt8]
    /// Writes the whole state into `sink`, a piece (one record of the machine's own) at a time; the
    /// node streams it into the snapshot file as it goes. Called on a copy of the machine, on a
    /// thread of its own, while the node goes on applying to the original: copying a machine must
    /// freeze what its snapshot will hold (a value type, as the protocol's other requirements assume).
    func snapshot(into sink: SnapshotSink)
    /// Replaces the whole state with a snapshot's, read back a piece at a time. A damaged snapshot
    /// is an error (`.badSnapshot`), never a trap.
    mutating func restore(from source: inout SnapshotSource) throws(RaftNodeError)
}

extension RaftStateMachine {
    /// The snapshot's data as one array (for tests and tools; the node streams it to a file).
    package func snapshotData() -> [UInt8] {
        var data: [UInt8] = []
        let sink = SnapshotSink { chunk throws(WALError) in data += chunk }
        snapshot(into: sink)
        try? sink.finish()
        return data
    }

    /// Restores from a whole snapshot's data, which the machine must read to its last piece.
    package mutating func restore(snapshotData data: [UInt8]) throws(RaftNodeError) {
        var source = SnapshotSource(data)
        try restore(from: &source)
        guard source.isAtEnd else { throw .badSnapshot("the state machine left pieces of the snapshot unread") }
    }
}

package enum RaftNodeError: Error, Hashable, Sendable {
    /// The core refused the request (not leader, limits, bad membership change, ...).
    case rejected(RaftError)
    /// The entry's log slot was taken by another leader's entry: the request did not happen.
    case lost
    /// The node stopped before the request finished; it may or may not have happened.
    case stopped
    /// The node jumped past the request's entry by installing a snapshot: it may or may not have
    /// happened (ask again).
    case outcomeUnknown
    /// This node stopped being the leader before the request's entry committed: a later leader
    /// may still commit it, or not (hashicorp/raft's ErrLeadershipLost).
    case leadershipLost
    case storage(String)
    case badSnapshot(String)
    /// `raft/peers.json` is malformed, or there is no state for it to recover.
    case peersFile(PeersFile.ParseError)
}

/// The shell around `RaftCore`: owns the state machine and the waiting clients, hands durable
/// writes to a `DiskWriter` (its own queue, group commit: never an fsync on an event loop or the
/// cooperative pool), and carries out each output batch in the documented order; turns proposals
/// and reads into async calls (or completion callbacks).
///
/// Executor: the actor runs on one NIO event loop (`eventLoop`). Give the node's transport the
/// same loop and a commit needs no thread hand-off besides the disk writer's: messages read from
/// a peer go straight into the node (`deliver`), messages the node sends are written to their
/// sockets by the same thread (replication and acknowledgements at once, `RaftTransport.flush`;
/// the rest when the step is done), and the writer's reports come back with one `execute`. On a
/// small machine every hand-off between threads is a wake-up that costs more than the work it
/// carries, so this is what a single client's commit latency is made of. What runs on the loop
/// is short and never blocks: core steps, applying commands, answering waiters (snapshots are
/// serialized and saved on a queue of their own).
///
/// Pipeline: every batch is staged behind the writes submitted so far. A batch's messages (but
/// see `MessagePayload.mayPrecedeLocalPersistence`), state-machine work and answers run once its
/// own writes and every earlier one are durable, batches strictly in order; meanwhile the core
/// goes on taking inputs, so proposals arriving during an fsync join the next one.
///
/// Timers: `tick()` is driven by `start()` (a task sleeping until the core's next deadline) or by a
/// test directly with a `ManualClock`.
package actor RaftNode<Machine: RaftStateMachine> {
    package nonisolated let id: ServerID
    /// The event loop the actor runs on.
    package nonisolated let eventLoop: any EventLoop
    package nonisolated var unownedExecutor: UnownedSerialExecutor { eventLoop.executor.asUnownedSerialExecutor() }
    private(set) var core: RaftCore
    private var machine: Machine
    private let writer: DiskWriter
    private let transport: any RaftTransport
    let clock: any MonotonicClock
    /// When to take a snapshot (nil: never).
    private var snapshotPolicy: SnapshotPolicy?
    /// The policy's next periodic check, and the randomness that spreads the checks.
    private var nextSnapshotCheck: Timestamp
    private var snapshotJitter: SeededRandom
    /// The snapshot being serialized and saved (on a `BackgroundThread`: off the event loop, which
    /// must not stall for a whole state's worth of encoding, off the disk writer's queue, whose log
    /// writes must not wait behind a whole state's worth of file, and behind both for the CPU).
    private let snapshotWork = DispatchGroup()
    /// Where chunks of the stored snapshot are read for followers that need it (not behind a
    /// snapshot being written).
    private let snapshotReadQueue: DispatchQueue
    private let snapshotStore: SnapshotStore
    /// A snapshot is being taken (one at a time).
    private var snapshotting = false
    private(set) var applied: LogIndex
    private var lastSnapshot: LogIndex
    /// The bytes of the commands applied since `lastSnapshot`, and how many of them force a
    /// snapshot past the policy's limit (drawn after each snapshot from its size).
    private var appliedBytesSinceSnapshot: UInt64 = 0
    private var snapshotForcingBytes: UInt64 = 0
    private var nextRequest: RequestID = 1
    /// Requests waiting for the core's acceptance: either just the position (transfers), or the
    /// applied answer, in which case acceptance turns them into an applied-waiter right away (so a
    /// single-server cluster, which commits within the next step, cannot apply before we wait).
    private enum Waiting {
        case position(CheckedContinuation<LogPosition, any Error>)
        case applied(Completion)
    }
    /// Called with a proposal's outcome, on the node's event loop. It must not call into the node
    /// synchronously (the node is in the middle of carrying out a batch).
    package typealias Completion = @Sendable (Result<[UInt8], RaftNodeError>) -> Void
    private var proposals: [RequestID: Waiting] = [:]
    private var appliedWaiters: [LogIndex: (term: Term, completion: Completion)] = [:]
    private var reads: [RequestID: CheckedContinuation<LogIndex, any Error>] = [:]
    private var readWaiters: [(index: LogIndex, continuation: CheckedContinuation<Void, any Error>)] = []
    private var wakeAt: Timestamp = .zero
    private var timer: Task<Void, Never>?
    private var stopped = false
    /// Follow-up inputs left over when one call hit `maxFollowUpsPerCall`.
    private var deferred: [RaftInput] = []
    /// Batches (and inputs) waiting for the writes they depend on, oldest first from `stagedHead`.
    private var staged: [Staged] = []
    private var stagedHead = 0
    /// The writer's sequence number of the newest job submitted, and of the newest durable one.
    private var submittedSeq: UInt64 = 0
    private var durableSeq: UInt64 = 0
    /// The term of the newest hard state known to be on disk (early sends never outrun it).
    private var durableTerm: Term
    /// The configuration the transport was last told about.
    private var announcedConfiguration: ClusterConfiguration
    static var maxFollowUpsPerCall: Int { 64 }
    /// Proposals waiting for `flushProposals`, and how many of them one core step takes.
    private var queuedProposals: [Proposal] = []
    static var maxProposalsPerStep: Int { 1024 }
    /// Why the node stopped itself, if a write failed.
    package private(set) var storageFailure: RaftNodeError?
    /// Every change of leader or term the core reports, newest kept when nobody reads (bounded).
    package nonisolated let leaderChanges: AsyncStream<LeaderInfo>
    private let leaderChangeSink: AsyncStream<LeaderInfo>.Continuation
    /// What opening the log had to repair (torn tails cut back), one line each, for the owner to log.
    package nonisolated let recoveryNotes: [String]

    /// What waits in the pipeline: a batch's remaining effects, or an input to feed.
    private enum StagedWork {
        case effects(RaftOutput)
        case feed(RaftInput)
    }

    private struct Staged {
        /// Runs once the writer reports this sequence number durable.
        var seq: UInt64
        var work: StagedWork
    }

    /// Opens (or creates) the node's data in `directory` (`wal/`, `snapshots/` and `stable-state`
    /// for the term and vote; Consul's `data-dir/raft`). A new server of a new cluster passes `bootstrap`; it is written only when
    /// the log is empty. A `peers.json` in `directory` replaces the cluster configuration first
    /// (outage recovery, see `recoverCluster`) and is then deleted.
    /// The node runs on `eventLoop` (see the type's doc: pass the loop its transport uses).
    /// `beforeSync` is test instrumentation, run on the writer's queue before each log sync.
    package init(
        id: ServerID, directory: String, machine: Machine, transport: any RaftTransport, clock: any MonotonicClock,
        random: SeededRandom, options: RaftOptions = RaftOptions(), bootstrap: ClusterConfiguration? = nil,
        snapshots snapshotPolicy: SnapshotPolicy? = .every(1024), wal walOptions: WALOptions = WALOptions(),
        eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(), beforeSync: (@Sendable () -> Void)? = nil
    ) throws(RaftNodeError) {
        let relay = DiskEventRelay()
        do {
            let (wal, walState) = try SegmentedWAL.open(
                directory: directory + "/wal", maxSegmentBytes: walOptions.segmentBytes, preallocate: walOptions.preallocate)
            self.recoveryNotes = wal.repairs
            let snapshots = try SnapshotStore(directory: directory + "/snapshots")
            let stable = StableStore(directory: directory)
            var recovered = walState
            if let saved = try stable.load() {
                recovered.hardState = saved
            } else if recovered.hardState != HardState() {
                // A log from before the stable store, with the term and vote in its records: move
                // them over now, since compaction deletes the segments that hold them.
                try stable.save(recovered.hardState)
            }
            if recovered == RecoveredState(), let bootstrap {
                recovered = RecoveredState.bootstrap(bootstrap)
                try stable.save(recovered.hardState)
                try wal.append(PersistWork(entries: recovered.entries))
                try wal.sync()
            }
            var machine = machine
            if let stored = try snapshots.latest() {
                if stored.metadata.index < recovered.snapshot?.metadata.index ?? 0 {
                    throw RaftNodeError.badSnapshot("the log refers to snapshot \(recovered.snapshot!.metadata.index), newest stored is \(stored.metadata.index)")
                }
                recovered.snapshot = stored
                try machine.restore(snapshotData: stored.data)
            } else if let expected = recovered.snapshot {
                throw RaftNodeError.badSnapshot("the log refers to snapshot \(expected.metadata.index), none is stored")
            }
            let peersPath = directory + "/" + PeersFile.fileName
            if let bytes = try readFileIfPresent(peersPath, limit: UInt64(PeersFile.maxBytes)) {
                let configuration: ClusterConfiguration
                do { configuration = try PeersFile.parse(bytes, path: peersPath) } catch { throw RaftNodeError.peersFile(error) }
                try Self.recoverCluster(
                    configuration, peersPath: peersPath, recovered: &recovered, machine: &machine, wal: wal, snapshots: snapshots,
                    view: RaftCore(id: id, options: options, random: random, recovered: recovered, now: clock.now()))
            }
            var core = try RaftCore(id: id, options: options, random: random, recovered: recovered, now: clock.now())
            // The snapshot restored above is in the store: the core needs none of its data in memory.
            if let snapshot = recovered.snapshot { core.snapshotIsStored(size: UInt64(snapshot.data.count)) }
            self.core = core
            self.durableTerm = recovered.hardState.term
            self.snapshotStore = snapshots
            self.writer = DiskWriter(
                wal: wal, snapshots: snapshots, stable: stable, label: "raft.disk.\(id)", report: { relay.forward($0) }, beforeSync: beforeSync)
            self.machine = machine
        } catch let error as RaftNodeError {
            throw error
        } catch let error as RaftError {
            throw .rejected(error)
        } catch {
            throw .storage("\(error)")
        }
        self.id = id
        (self.leaderChanges, self.leaderChangeSink) = AsyncStream.makeStream(of: LeaderInfo.self, bufferingPolicy: .bufferingNewest(16))
        self.eventLoop = eventLoop
        self.transport = transport
        self.clock = clock
        self.snapshotPolicy = snapshotPolicy
        var jitter = random.stream("snapshot-checks")
        self.nextSnapshotCheck = clock.now() + (snapshotPolicy?.nextCheckDelay(using: &jitter) ?? .zero)
        self.snapshotForcingBytes = snapshotPolicy?.forcingBytes(lastSnapshotBytes: core.storedSnapshotSize ?? 0, using: &jitter) ?? 0
        self.snapshotJitter = jitter
        self.snapshotReadQueue = DispatchQueue(label: "raft.snapshot-read.\(id)")
        self.applied = core.appliedIndex
        self.lastSnapshot = core.log.snapshotIndex
        self.announcedConfiguration = core.configuration
        transport.configurationChanged(core.configuration)
        connect(relay)
    }

    /// The writer's reports come back on the node's loop, in order (`execute` is FIFO).
    private nonisolated func connect(_ relay: DiskEventRelay) {
        relay.connect { [weak self, eventLoop] event in
            guard let node = self else { return }
            eventLoop.execute { node.assumeIsolated { $0.diskEvent(event) } }
        }
    }

    // MARK: - Driving

    /// Starts the timer task. Call `stop()` to end it.
    package func start() {
        guard timer == nil else { return }
        timer = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                let delay = await self.delayUntilWake()
                try? await Task.sleep(for: delay)
                await self.tick()
            }
        }
    }

    /// Stops the node: fails every waiting request with `.stopped`, drops writes not yet started
    /// and returns once the write in progress (if any) is finished, so the directory can be reopened.
    package func stop() async {
        halt()
        await writer.close()
        // A snapshot being taken is finished too, so nothing writes into the directory afterwards.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            snapshotWork.notify(queue: .global()) { continuation.resume() }
        }
    }

    /// The synchronous part of `stop()`.
    private func halt() {
        leaderChangeSink.finish()
        stopped = true
        timer?.cancel()
        timer = nil
        for waiting in proposals.values {
            switch waiting {
            case .position(let continuation): continuation.resume(throwing: RaftNodeError.stopped)
            case .applied(let completion): completion(.failure(.stopped))
            }
        }
        for waiter in appliedWaiters.values { waiter.completion(.failure(.stopped)) }
        for continuation in reads.values { continuation.resume(throwing: RaftNodeError.stopped) }
        for waiter in readWaiters { waiter.continuation.resume(throwing: RaftNodeError.stopped) }
        proposals.removeAll()
        appliedWaiters.removeAll()
        reads.removeAll()
        readWaiters.removeAll()
        staged.removeAll()
        stagedHead = 0
        queuedProposals.removeAll()
    }

    private func delayUntilWake() -> Duration {
        let span = wakeAt.duration(since: clock.now())
        return min(max(span, .milliseconds(1)), .seconds(1))
    }

    /// A new snapshot policy and trailing-entry count (Consul reloads `raft_snapshot_threshold`,
    /// `raft_snapshot_interval` and `raft_trailing_logs`): the next periodic check is drawn anew.
    package func reconfigureSnapshots(_ policy: SnapshotPolicy?, trailingEntries: UInt64) {
        snapshotPolicy = policy
        core.setTrailingEntries(trailingEntries)
        nextSnapshotCheck = clock.now() + (policy?.nextCheckDelay(using: &snapshotJitter) ?? .zero)
        drawSnapshotForcingBytes(lastSnapshotBytes: core.storedSnapshotSize ?? 0)
        snapshotIfWanted(checkDue: false)
    }

    package func tick() {
        step(.tick)
        guard let policy = snapshotPolicy, policy.interval > .zero else { return }
        let now = clock.now()
        guard now >= nextSnapshotCheck else { return }
        nextSnapshotCheck = now + policy.nextCheckDelay(using: &snapshotJitter)
        snapshotIfWanted(checkDue: true)
    }

    /// A message from a peer (the transport's receive side calls this).
    package func receive(_ message: Message) { step(.message(message)) }

    /// Messages from peers, in arrival order (one read burst of a connection).
    package func receive(_ messages: [Message]) { process(messages.map { .message($0) }) }

    /// Messages from peers, from any thread: straight into the node when called on its event
    /// loop (a connection on the node's loop), else handed over to the loop; in order either way.
    package nonisolated func deliver(_ messages: [Message]) {
        if eventLoop.inEventLoop {
            assumeIsolated { $0.receive(messages) }
        } else {
            eventLoop.execute { self.assumeIsolated { $0.receive(messages) } }
        }
    }

    // MARK: - Requests

    /// Proposes a command; returns the state machine's answer once it is committed and applied here.
    /// Proposals that arrive while others wait to be taken go to the core as one batch (one WAL
    /// record, one AppendEntries per follower).
    package func propose(_ command: [UInt8]) async throws(RaftNodeError) -> [UInt8] {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<[UInt8], RaftNodeError>, Never>) in
            propose(command) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// `propose` with a callback instead of a suspension: `completion` runs on the node's event
    /// loop right when the command is applied (or refused), so a caller on that loop (a client
    /// connection handler) answers without any thread hand-off.
    package func propose(_ command: [UInt8], completion: @escaping Completion) {
        guard !stopped else { return completion(.failure(.stopped)) }
        let requestID = nextRequest
        nextRequest += 1
        proposals[requestID] = .applied(completion)
        queuedProposals.append(Proposal(id: requestID, command: command))
        if queuedProposals.count == 1 {
            // Runs after what the loop already has queued (I/O of this round included), which may
            // add more proposals.
            eventLoop.execute { self.assumeIsolated { $0.flushProposals() } }
        }
    }

    private func flushProposals() {
        while !queuedProposals.isEmpty {
            let batch = Array(queuedProposals.prefix(Self.maxProposalsPerStep))
            queuedProposals.removeFirst(batch.count)
            step(.proposeBatch(batch))
        }
    }

    /// Blocks until everything committed before the call is applied here (hashicorp/raft's Barrier).
    package func barrier() async throws(RaftNodeError) {
        _ = try await submitAndApply { .barrier($0) }
    }

    package func changeMembership(_ change: MembershipChange) async throws(RaftNodeError) {
        _ = try await submitAndApply { .changeMembership($0, change) }
    }

    /// Writes `configuration` as the first log entry of a server that has none yet; false when
    /// this server already has a log (a cluster exists: it waits to be added instead).
    package func bootstrap(_ configuration: ClusterConfiguration) -> Bool {
        guard !stopped, core.log.lastIndex == 0, core.log.snapshotIndex == 0 else { return false }
        step(.bootstrap(configuration))
        return core.log.lastIndex > 0
    }

    /// hashicorp/raft's names for the membership changes (each one entry, committed before it returns).
    package func addVoter(_ id: ServerID, address: String = "") async throws(RaftNodeError) {
        try await changeMembership(.addVoter(id, address: address))
    }

    package func addNonvoter(_ id: ServerID, address: String = "") async throws(RaftNodeError) {
        try await changeMembership(.addNonVoter(id, address: address))
    }

    package func removeServer(_ id: ServerID) async throws(RaftNodeError) {
        try await changeMembership(.remove(id))
    }

    /// Confirms with a quorum that this server still leads (a ReadIndex round, which also waits
    /// until everything committed before the call is applied here).
    package func verifyLeader() async throws(RaftNodeError) {
        try await linearizableRead()
    }

    package func transferLeadership(to target: ServerID?) async throws(RaftNodeError) {
        _ = try await submit { .transferLeadership($0, target: target) }
    }

    /// A linearizable read point: returns once this node's state machine reflects every write that
    /// completed before the call; then read `machine` (through `withMachine`).
    package func linearizableRead() async throws(RaftNodeError) {
        guard !stopped else { throw .stopped }
        let requestID = nextRequest
        nextRequest += 1
        let index: LogIndex
        do {
            index = try await withCheckedThrowingContinuation { continuation in
                reads[requestID] = continuation
                step(.read(requestID))
            }
            if index > applied {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    readWaiters.append((index, continuation))
                }
            }
        } catch {
            throw Self.typed(error)
        }
    }

    /// Reads the state machine inside the node's isolation.
    package func withMachine<T: Sendable>(_ body: (Machine) -> T) -> T { body(machine) }

    package struct Status: Sendable, Hashable {
        package var term: Term
        package var role: String
        package var leader: ServerID?
        package var commitIndex: LogIndex
        package var appliedIndex: LogIndex
        package var lastIndex: LogIndex
        package var snapshotIndex: LogIndex
        package var configuration: ClusterConfiguration
    }

    /// The disk writer's counters (group commit: `syncs` well below `jobs` under load).
    package func diskStats() -> DiskWriter.Stats { writer.stats }

    package func status() -> Status {
        Status(
            term: core.term, role: core.role.name, leader: core.leader, commitIndex: core.commitIndex, appliedIndex: applied,
            lastIndex: core.log.lastIndex, snapshotIndex: core.log.snapshotIndex, configuration: core.configuration)
    }

    private func submit(_ input: (RequestID) -> RaftInput) async throws(RaftNodeError) -> LogPosition {
        guard !stopped else { throw .stopped }
        let requestID = nextRequest
        nextRequest += 1
        let request = input(requestID)
        do {
            return try await withCheckedThrowingContinuation { continuation in
                proposals[requestID] = .position(continuation)
                step(request)
            }
        } catch {
            throw Self.typed(error)
        }
    }

    private func submitAndApply(_ input: (RequestID) -> RaftInput) async throws(RaftNodeError) -> [UInt8] {
        guard !stopped else { throw .stopped }
        let requestID = nextRequest
        nextRequest += 1
        let request = input(requestID)
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<[UInt8], RaftNodeError>, Never>) in
            proposals[requestID] = .applied { continuation.resume(returning: $0) }
            step(request)
        }
        return try result.get()
    }

    private static func typed(_ error: any Error) -> RaftNodeError {
        (error as? RaftNodeError) ?? .storage("\(error)")
    }

    // MARK: - Carrying out output

    private func diskEvent(_ event: DiskWriter.Event) {
        switch event {
        case .durable(let seq):
            durableSeq = max(durableSeq, seq)
            process([])
        case .failed(let error):
            fail(error)
        }
    }

    /// A node that cannot write its log must not go on acknowledging anything.
    private func fail(_ error: RaftNodeError) {
        guard !stopped else { return }
        storageFailure = error
        halt()
        Task { await writer.close() }
    }

    private func step(_ input: RaftInput) { process([input]) }

    /// Feeds inputs to the core, stages their outputs, and carries out every staged item whose
    /// writes are durable; the follow-up inputs that produces are fed in turn.
    private func process(_ inputs: [RaftInput]) {
        guard !stopped else { return }
        var pending = deferred + inputs
        deferred.removeAll()
        // The inputs given are all taken; the limit is on what they set off.
        var rounds = -pending.count
        // Each batch may ask for follow-up inputs (persisted, snapshotTaken). The chain is short
        // (a follow-up's own output holds no new entries, and the `.persisted` of batches released
        // together collapse into one), but never let one call run away: past the limit, what is
        // left waits for the next call.
        while true {
            while let next = pending.first {
                guard rounds < Self.maxFollowUpsPerCall else {
                    deferred = pending
                    return
                }
                pending.removeFirst()
                rounds += 1
                stage(core.handle(next, now: clock.now()))
                if core.configuration != announcedConfiguration {
                    announcedConfiguration = core.configuration
                    transport.configurationChanged(announcedConfiguration)
                }
            }
            var released = false
            while stagedHead < staged.count, staged[stagedHead].seq <= durableSeq, !stopped {
                released = true
                let head = staged[stagedHead]
                stagedHead += 1
                if stagedHead == staged.count || stagedHead >= 1024 {
                    staged.removeFirst(stagedHead)
                    stagedHead = 0
                }
                let followUps: [RaftInput]
                switch head.work {
                case .effects(let output):
                    do {
                        followUps = try carryOut(output)
                    } catch {
                        fail(error)
                        return
                    }
                case .feed(let input):
                    followUps = [input]
                }
                for input in followUps {
                    // `.persisted(p)` covers every write before p's: only the newest one matters
                    // (and after a truncation it is the only one that names the current log).
                    if case .persisted = input, let last = pending.last, case .persisted = last {
                        pending[pending.count - 1] = input
                    } else {
                        pending.append(input)
                    }
                }
            }
            if !released && pending.isEmpty { break }
        }
    }

    /// Step 1: sends what may go before the batch's writes are durable, hands its persist work to
    /// the writer, and queues the rest behind it.
    private func stage(_ output: RaftOutput) {
        var output = output
        wakeAt = output.wakeAt
        // What may go before the writes are durable goes first, before the writer is handed its
        // job: waking the writer's thread can take this thread's CPU for a while, and the
        // followers' writes are what a commit waits for.
        if !output.persist.isEmpty || submittedSeq > durableSeq {
            let before = output.messages.count
            output.messages.removeAll { message in
                guard message.payload.mayPrecedeLocalPersistence, message.term <= durableTerm else { return false }
                transport.send(message)
                return true
            }
            if output.messages.count < before { transport.flush() }
        }
        if !output.persist.isEmpty {
            var rewrite: DiskWriter.LogRewrite?
            if output.persist.snapshot != nil {
                // A snapshot from the leader may replace the whole log: the log as the core holds
                // it now (what the writer's queue holds once this job is written) becomes one
                // record and the older segments go. Rare, and the log after such a snapshot is
                // short. The entries the snapshot covers are left out: a restarted server starts
                // from the snapshot.
                let snapshotIndex = core.log.snapshotIndex
                rewrite = .checkpoint(RecoveredState(
                    hardState: core.hardState, snapshot: core.log.snapshot.map { Snapshot(metadata: $0.metadata, data: []) },
                    entries: core.log.entries.filter { $0.index > snapshotIndex }))
            } else if output.persist.compactThrough != nil, let metadata = core.log.snapshot?.metadata {
                // Our own snapshot: a small record, however many entries followed it (the commits
                // queued behind this job wait for nothing more).
                rewrite = .compaction(metadata)
            }
            submittedSeq = writer.submit(.persist(output.persist, then: rewrite))
        }
        staged.append(Staged(seq: submittedSeq, work: .effects(output)))
    }

    /// Steps 2 to 4 of a batch whose writes are durable.
    private func carryOut(_ output: RaftOutput) throws(RaftNodeError) -> [RaftInput] {
        var followUps: [RaftInput] = []
        if let hardState = output.persist.hardState { durableTerm = max(durableTerm, hardState.term) }
        // 2. Send. Answers (a follower's acknowledgement above all) are what a peer waits for: they
        // go on the wire at once. The rest (a leader's new commit index) is written once this
        // step is done, after the clients' answers below.
        for message in output.messages { transport.send(message) }
        if output.messages.contains(where: { $0.payload.isResponse }) { transport.flush() }
        for chunk in output.snapshotChunks { send(chunk) }
        if let leader = output.leader { leaderChangeSink.yield(leader) }
        // 3. Apply (acceptances first, so their waiters see their entries applied).
        for outcome in output.outcomes {
            guard let waiting = proposals.removeValue(forKey: outcome.id) else { continue }
            switch (waiting, outcome.result) {
            case (.position(let continuation), .success(let position)):
                continuation.resume(returning: position)
            case (.applied(let completion), .success(let position)):
                appliedWaiters[position.index] = (position.term, completion)
            case (.position(let continuation), .failure(let error)):
                continuation.resume(throwing: RaftNodeError.rejected(error))
            case (.applied(let completion), .failure(let error)):
                completion(.failure(.rejected(error)))
            }
        }
        if let snapshot = output.snapshotToRestore {
            try machine.restore(snapshotData: snapshot.data)
            applied = snapshot.metadata.index
            lastSnapshot = snapshot.metadata.index
            appliedBytesSinceSnapshot = 0
            drawSnapshotForcingBytes(lastSnapshotBytes: UInt64(snapshot.data.count))
            // Saved in step 1: the core can let go of its copy.
            followUps.append(.snapshotStored(index: snapshot.metadata.index, size: UInt64(snapshot.data.count)))
            for index in appliedWaiters.keys.sorted() where index <= applied {
                appliedWaiters.removeValue(forKey: index)?.completion(.failure(.outcomeUnknown))
            }
        }
        for entry in output.committed {
            var answer: [UInt8] = []
            if case .command(let command) = entry.payload {
                answer = machine.apply(command, at: entry.index)
                appliedBytesSinceSnapshot += UInt64(command.count)
            }
            applied = entry.index
            if let waiter = appliedWaiters.removeValue(forKey: entry.index) {
                waiter.completion(waiter.term == entry.term ? .success(answer) : .failure(.lost))
            }
        }
        // A leader that stepped down cannot know whether its uncommitted entries will commit: say
        // so to their callers now. Waiting would be forever when no leader can be elected (a
        // datacenter that lost its quorum), and the caller would never get an answer.
        if let change = output.leader, change.leader != id, !appliedWaiters.isEmpty {
            let abandoned = appliedWaiters.values
            appliedWaiters.removeAll()
            for waiter in abandoned { waiter.completion(.failure(.leadershipLost)) }
        }
        for read in output.readStates {
            guard let continuation = reads.removeValue(forKey: read.id) else { continue }
            switch read.result {
            case .success(let index): continuation.resume(returning: index)
            case .failure(let error): continuation.resume(throwing: RaftNodeError.rejected(error))
            }
        }
        var waiting: [(index: LogIndex, continuation: CheckedContinuation<Void, any Error>)] = []
        for waiter in readWaiters {
            if waiter.index <= applied { waiter.continuation.resume() } else { waiting.append(waiter) }
        }
        readWaiters = waiting
        // 4. Advance.
        if let last = output.persist.entries.last {
            followUps.append(.persisted(LogPosition(index: last.index, term: last.term)))
        }
        snapshotIfWanted(checkDue: false)
        return followUps
    }

    /// Starts a snapshot off the loop when the policy asks for one (`checkDue`: at its periodic check).
    private func snapshotIfWanted(checkDue: Bool) {
        // A snapshot is worth taking only past the core's newest one (an installed snapshot may
        // already be ahead of what this node has applied so far).
        guard let policy = snapshotPolicy, !snapshotting, !stopped, applied > lastSnapshot, applied > core.log.snapshotIndex,
              policy.wantsSnapshot(
                  pending: applied - lastSnapshot, pendingBytes: appliedBytesSinceSnapshot, forcingBytes: snapshotForcingBytes, checkDue: checkDue),
              let term = core.log.term(at: applied) else { return }
        let metadata = SnapshotMetadata(index: applied, term: term, configuration: core.configuration(at: applied))
        // A value copy: what the machine holds now, whatever is applied to it meanwhile.
        let frozen = machine
        lastSnapshot = applied
        appliedBytesSinceSnapshot = 0
        snapshotting = true
        snapshotWork.enter()
        BackgroundThread.run { [eventLoop, snapshotStore, snapshotWork] in
            defer { snapshotWork.leave() }
            // The machine streams its state into the file as it encodes it.
            var size: UInt64 = 0
            var failure: WALError?
            do throws(WALError) { size = try snapshotStore.store(metadata) { frozen.snapshot(into: $0) } } catch { failure = error }
            eventLoop.execute { [size, failure] in self.assumeIsolated { $0.snapshotStored(metadata, size: size, failure: failure) } }
        }
    }

    /// Sends an InstallSnapshot chunk once it is read from the snapshot store (off the loop). A
    /// chunk that cannot be read is not sent: the core sends it again after its retransmit timeout,
    /// or starts over with a newer snapshot that replaced the file.
    private func send(_ chunk: SnapshotChunk) {
        guard case .installSnapshot(let install) = chunk.message.payload else { return }
        snapshotReadQueue.async { [eventLoop, snapshotStore] in
            guard let bytes = try? snapshotStore.readData(of: install.metadata, offset: install.offset, length: chunk.length),
                  bytes.count == chunk.length else { return }
            eventLoop.execute {
                self.assumeIsolated { node in
                    guard !node.stopped else { return }
                    node.transport.send(chunk.filled(with: bytes))
                    node.transport.flush()
                }
            }
        }
    }

    /// A snapshot taken off the loop is durable in the snapshot store: the core may compact its
    /// log (its entries up to there are applied, so their writes are durable already).
    private func snapshotStored(_ metadata: SnapshotMetadata, size: UInt64, failure: WALError?) {
        snapshotting = false
        guard !stopped else { return }
        if let failure { return fail(.storage(failure.description)) }
        drawSnapshotForcingBytes(lastSnapshotBytes: size)
        // The core now compacts its log: freeing the hundreds of thousands of entries a snapshot
        // covers under load would hold this loop (every request on it) for 5-30 ms (measured).
        // This reference keeps them alive through the compaction, which therefore copies only the
        // entries it keeps, and they are freed on another thread.
        let compacted = core.log.entries
        process([.snapshotStored(index: metadata.index, size: size)])
        DispatchQueue.global(qos: .background).async { withExtendedLifetime(compacted) {} }
    }

    private func drawSnapshotForcingBytes(lastSnapshotBytes: UInt64) {
        snapshotForcingBytes = snapshotPolicy?.forcingBytes(lastSnapshotBytes: lastSnapshotBytes, using: &snapshotJitter) ?? 0
    }
}

/// Hands the disk writer's reports to the node once it exists (the writer is made before it).
private final class DiskEventRelay: Sendable {
    private let target = Mutex<Callback<DiskWriter.Event>?>(nil)

    func connect(_ body: @escaping @Sendable (DiskWriter.Event) -> Void) {
        target.withLock { $0 = Callback(body) }
    }

    func forward(_ event: DiskWriter.Event) {
        target.withLock { $0 }?.call(event)
    }
}

/// A closure kept behind a lock. The class matters: a closure stored in a `Mutex` directly is
/// re-wrapped in a reabstraction thunk on every `withLock` (the value goes through an `inout` of
/// generic type), so each call gets slower than the last; a class reference is copied as it is.
package final class Callback<Argument>: Sendable {
    package let call: @Sendable (Argument) -> Void

    package init(_ call: @escaping @Sendable (Argument) -> Void) {
        self.call = call
    }
}
