import ConsulCore

/// The Raft consensus algorithm as a pure state machine: `handle(input, now:)` returns the effects
/// (`RaftOutput`) for the shell to carry out, in the documented order persist → send → apply → advance.
///
/// It reads no clock (time arrives with each input), touches no file or socket, draws randomness only
/// from the injected `SeededRandom`, and orders every output deterministically (servers by id), so a
/// simulation replays exactly from its seed.
///
/// Implemented: pre-vote and randomized election timeouts, leader stickiness and check-quorum, a
/// no-op entry per term, pipelined and batched replication with fast conflict backtracking, commit by
/// counting only for current-term entries (§5.4.2), single-server membership changes, leadership
/// transfer, snapshots with chunked InstallSnapshot and log compaction, and ReadIndex reads confirmed
/// in batched heartbeat rounds.
package struct RaftCore: Sendable {
    package let id: ServerID
    package private(set) var options: RaftOptions
    var random: SeededRandom

    // Persistent state (mirrored on disk by the shell through `PersistWork`).
    package internal(set) var term: Term
    package internal(set) var votedFor: ServerID?
    package internal(set) var log: RaftLog

    // Volatile state.
    package internal(set) var role: Role = .follower
    /// Present exactly while `role == .leader`.
    package internal(set) var leadership: LeaderState?
    package internal(set) var leader: ServerID?
    package internal(set) var commitIndex: LogIndex
    /// Highest index handed to the shell to apply.
    package internal(set) var appliedIndex: LogIndex
    /// Highest index known to be on this server's disk (counts for the leader's own vote on commit).
    package internal(set) var stableIndex: LogIndex
    /// The latest configuration in the log (in force from the moment it is appended) and its index.
    package internal(set) var configuration: ClusterConfiguration
    package internal(set) var configurationIndex: LogIndex

    var now: Timestamp
    var electionDeadline: Timestamp
    /// When this server last heard from a leader of its current term: votes are refused until an
    /// election timeout has passed since, so a server that was cut off cannot depose a live leader.
    var lastLeaderContact: Timestamp?
    var inboundSnapshot: InboundSnapshot?
    /// Set while the newest snapshot's data is in the shell's store rather than in `log.snapshot`
    /// (`snapshotStored`): its size.
    var storedSnapshotSize: UInt64?
    var output = RaftOutput()
    var lastReportedLeader: LeaderInfo?
    var lastPersistedHardState: HardState

    package enum Role: Sendable {
        case follower
        case preCandidate(votes: Set<ServerID>)
        case candidate(votes: Set<ServerID>)
        case leader

        package var name: String {
            switch self {
            case .follower: "follower"
            case .preCandidate: "pre-candidate"
            case .candidate: "candidate"
            case .leader: "leader"
            }
        }
    }

    /// A snapshot arriving in chunks from the leader.
    struct InboundSnapshot: Sendable {
        var metadata: SnapshotMetadata
        var totalSize: UInt64
        var data: [UInt8]
    }

    /// Starts (or restarts) a server from what the shell recovered from disk.
    package init(
        id: ServerID, options: RaftOptions = RaftOptions(), random: SeededRandom, recovered: RecoveredState, now: Timestamp
    ) throws(RaftError) {
        var previous: LogIndex?
        for entry in recovered.entries {
            if let previous, entry.index != previous + 1 { throw .corruptRecoveredState("log entries not contiguous at \(entry.index)") }
            previous = entry.index
        }
        var entries = recovered.entries
        if let snapshot = recovered.snapshot {
            let meta = snapshot.metadata
            if let first = entries.first, first.index > meta.index + 1 {
                throw .corruptRecoveredState("gap between snapshot \(meta.index) and first entry \(first.index)")
            }
            // Entries that disagree with the snapshot are leftovers of an older log: drop them all.
            if let last = entries.last, last.index >= meta.index, let first = entries.first, first.index <= meta.index,
               entries[Int(meta.index - first.index)].term != meta.term {
                entries.removeAll()
            } else if let last = entries.last, last.index < meta.index {
                entries.removeAll()
            }
        } else if let first = entries.first, first.index != 1 {
            throw .corruptRecoveredState("log starts at \(first.index) without a snapshot")
        }
        for pair in zip(entries, entries.dropFirst()) where pair.1.term < pair.0.term {
            throw .corruptRecoveredState("terms decrease at \(pair.1.index)")
        }
        if let lastTerm = entries.last?.term, lastTerm > recovered.hardState.term {
            throw .corruptRecoveredState("entry term \(lastTerm) beyond current term \(recovered.hardState.term)")
        }
        self.id = id
        self.options = options
        self.random = random
        self.term = recovered.hardState.term
        self.votedFor = recovered.hardState.votedFor
        self.lastPersistedHardState = recovered.hardState
        self.log = RaftLog(snapshot: recovered.snapshot, entries: entries)
        self.commitIndex = log.snapshotIndex
        self.appliedIndex = log.snapshotIndex
        self.stableIndex = log.lastIndex
        self.configuration = recovered.snapshot?.metadata.configuration ?? ClusterConfiguration()
        self.configurationIndex = log.snapshotIndex
        self.now = now
        self.electionDeadline = now
        self.recomputeConfiguration()
        self.resetElectionTimer()
    }

    /// Feeds one input and returns the effects it caused. Timers are checked on every input, so a
    /// shell that is late with `.tick` loses nothing.
    package mutating func handle(_ input: RaftInput, now: Timestamp) -> RaftOutput {
        if now > self.now { self.now = now }
        switch input {
        case .tick:
            break
        case .message(let message):
            receive(message)
        case .propose(let requestID, let command):
            propose(requestID, payload: .command(command))
        case .proposeBatch(let proposals):
            for proposal in proposals { propose(proposal.id, payload: .command(proposal.command), replicate: false) }
            if isLeader {
                leaderMaybeCommit()
                broadcastAppend()
            }
        case .barrier(let requestID):
            propose(requestID, payload: .noop)
        case .changeMembership(let requestID, let change):
            changeMembership(requestID, change)
        case .transferLeadership(let requestID, let target):
            transferLeadership(requestID, target: target)
        case .read(let requestID):
            read(requestID)
        case .persisted(let position):
            persisted(position)
        case .snapshotTaken(let index, let data):
            snapshotTaken(index: index, data: data)
        case .snapshotStored(let index, let size):
            snapshotStored(index: index, size: size)
        case .bootstrap(let configuration):
            bootstrap(configuration)
        }
        checkTimers()
        if isLeader { flushReads() }
        return finishStep()
    }

    // MARK: - Queries (for shells, tests and the simulator's checkers)

    package var isLeader: Bool {
        if case .leader = role { return true }
        return false
    }

    package var hardState: HardState { HardState(term: term, votedFor: votedFor) }

    // MARK: - Step plumbing

    mutating func finishStep() -> RaftOutput {
        if hardState != lastPersistedHardState {
            output.persist.hardState = hardState
            lastPersistedHardState = hardState
        }
        if commitIndex > appliedIndex {
            let upTo = min(commitIndex, log.lastIndex)
            if upTo > appliedIndex {
                output.committed.append(contentsOf: log.entries(in: (appliedIndex + 1)...upTo))
                appliedIndex = upTo
            }
        }
        let info = LeaderInfo(term: term, leader: leader)
        if info != lastReportedLeader {
            output.leader = info
            lastReportedLeader = info
        }
        output.wakeAt = nextWakeup()
        let result = output
        output = RaftOutput()
        return result
    }

    func nextWakeup() -> Timestamp {
        if let state = leadership {
            var wake = min(state.heartbeatDeadline, state.checkQuorumDeadline)
            if let transfer = state.transfer { wake = min(wake, transfer.deadline) }
            return wake
        }
        return electionDeadline
    }

    mutating func checkTimers() {
        if isLeader {
            leaderTimers()
        } else if now >= electionDeadline {
            electionTimeoutElapsed()
        }
    }

    mutating func send(_ to: ServerID, _ payload: MessagePayload, term overrideTerm: Term? = nil) {
        output.messages.append(Message(from: id, to: to, term: overrideTerm ?? term, payload: payload))
    }

    mutating func resetElectionTimer() {
        let base = options.electionTimeout.totalNanoseconds
        let jitter = base > 0 ? Int64(random.next() % UInt64(base)) : 0
        electionDeadline = now + .nanoseconds(base + jitter)
    }

    /// Quorum size among `voters` (a majority).
    static func quorum(_ voterCount: Int) -> Int { voterCount / 2 + 1 }

    /// Appends entries to the in-memory log and to this step's persist work.
    mutating func appendToLog(_ entries: [LogEntry]) {
        for entry in entries {
            log.append(entry)
            if case .configuration(let configuration) = entry.payload {
                setConfiguration(configuration, index: entry.index)
            }
        }
        output.persist.entries.append(contentsOf: entries)
    }

    /// Cuts off a conflicting suffix, in memory and in this step's persist work.
    mutating func truncateLog(from index: LogIndex) {
        log.truncate(from: index)
        output.persist.entries.removeAll { $0.index >= index }
        stableIndex = min(stableIndex, index - 1)
        if configurationIndex >= index { recomputeConfiguration() }
    }

    /// The configuration of the latest configuration entry in the log, else the snapshot's.
    mutating func recomputeConfiguration() {
        for entry in log.entries.reversed() {
            if entry.index <= log.snapshotIndex { break }
            if case .configuration(let configuration) = entry.payload {
                setConfiguration(configuration, index: entry.index)
                return
            }
        }
        // Without a snapshot, the configuration before the log starts is empty (a new server).
        setConfiguration(log.snapshot?.metadata.configuration ?? ClusterConfiguration(), index: log.snapshotIndex)
    }

    /// The configuration in force at `index` (scanning the log, falling back to the snapshot's).
    package func configuration(at index: LogIndex) -> ClusterConfiguration {
        // The newest configuration entry is at `configurationIndex`: from there on it is in force,
        // with no need to scan the entries after it (hundreds of thousands at a snapshot under load).
        if index >= configurationIndex { return configuration }
        var cursor = min(index, log.lastIndex)
        while cursor > log.snapshotIndex, let entry = log.entry(at: cursor) {
            if case .configuration(let configuration) = entry.payload { return configuration }
            cursor -= 1
        }
        return log.snapshot?.metadata.configuration ?? ClusterConfiguration()
    }

    mutating func setConfiguration(_ configuration: ClusterConfiguration, index: LogIndex) {
        self.configuration = configuration
        self.configurationIndex = index
        leadership?.syncProgress(with: configuration, leader: id, lastIndex: log.lastIndex)
    }

    // MARK: - Persistence and snapshots reported by the shell

    mutating func persisted(_ position: LogPosition) {
        guard position.index > stableIndex, log.term(at: position.index) == position.term else { return }
        stableIndex = min(position.index, log.lastIndex)
        if isLeader { leaderMaybeCommit() }
    }

    /// Every server bootstrapping the same configuration writes the same entry (index 1, term 1,
    /// as `RecoveredState.bootstrap`), so their logs agree whoever is elected first.
    mutating func bootstrap(_ configuration: ClusterConfiguration) {
        guard log.lastIndex == 0, log.snapshotIndex == 0, !configuration.servers.isEmpty else { return }
        if term < 1 {
            term = 1
            votedFor = nil
        }
        appendToLog([LogEntry(index: 1, term: 1, payload: .configuration(configuration))])
        resetElectionTimer()
    }

    mutating func snapshotTaken(index: LogIndex, data: [UInt8], storedSize: UInt64? = nil) {
        // Only what was applied can be in the state machine's snapshot; older snapshots are useless.
        guard index <= appliedIndex, index > log.snapshotIndex, let term = log.term(at: index) else { return }
        let metadata = SnapshotMetadata(index: index, term: term, configuration: configuration(at: index))
        storedSnapshotSize = storedSize
        if let dropped = log.compact(to: Snapshot(metadata: metadata, data: data), trailing: options.trailingEntries) {
            output.persist.compactThrough = dropped
        }
    }

    /// The shell holds the snapshot at `index`: the newest one the core has (installed from a
    /// leader, now saved), whose copy it drops, or a new one it took, as `snapshotTaken`.
    mutating func snapshotStored(index: LogIndex, size: UInt64) {
        guard index == log.snapshotIndex, log.snapshot != nil else { return snapshotTaken(index: index, data: [], storedSize: size) }
        snapshotIsStored(size: size)
    }

    /// Entries kept below the next snapshot (Consul reloads `raft_trailing_logs`).
    package mutating func setTrailingEntries(_ count: UInt64) {
        options.trailingEntries = count
    }

    /// A snapshot recovered from the shell's store at start-up, whose data the shell keeps there:
    /// the core drops its copy and asks the shell for chunks (as after `snapshotStored`).
    package mutating func snapshotIsStored(size: UInt64) {
        guard log.snapshot != nil else { return }
        storedSnapshotSize = size
        log.dropSnapshotData()
    }
}
