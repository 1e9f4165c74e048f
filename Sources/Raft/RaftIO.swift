import ConsulCore

/// Tunables and limits of one RaftCore. Every queue the core keeps has its limit here.
package struct RaftOptions: Hashable, Sendable {
    /// A follower that hears nothing from a leader for a random time in [electionTimeout, 2×) campaigns.
    package var electionTimeout: Duration = .milliseconds(1000)
    /// How often a leader sends heartbeats (and so how fast commit indices and ReadIndex rounds move).
    package var heartbeatInterval: Duration = .milliseconds(100)
    /// An in-flight AppendEntries not acknowledged within this span is presumed lost; the follower
    /// falls back to probing from its last known match.
    package var retransmitTimeout: Duration = .milliseconds(300)
    /// Batching: at most this many entries in one AppendEntries.
    package var maxEntriesPerAppend: Int = 64
    /// Pipelining: at most this many unacknowledged AppendEntries per follower.
    package var maxInflightAppends: Int = 8
    /// Back-pressure: proposals are refused while this many entries are appended but uncommitted.
    package var maxUncommittedEntries: Int = 4096
    /// Linearizable reads waiting for their ReadIndex round.
    package var maxPendingReads: Int = 4096
    /// Snapshot bytes per InstallSnapshot message.
    package var snapshotChunkBytes: Int = 64 * 1024
    /// A follower refuses to buffer an incoming snapshot larger than this.
    package var maxSnapshotBytes: UInt64 = 512 * 1024 * 1024
    /// Entries kept below a new snapshot, so slightly lagging followers catch up from the log.
    package var trailingEntries: UInt64 = 64

    package init() {}
}

/// Opaque ids chosen by the shell to match outcomes to requests.
package typealias RequestID = UInt64

/// A command waiting to be proposed.
package struct Proposal: Hashable, Sendable {
    package var id: RequestID
    package var command: [UInt8]

    package init(id: RequestID, command: [UInt8]) {
        self.id = id
        self.command = command
    }
}

/// Everything that can happen to a server. `now` comes with every input (see `RaftCore.handle`).
package enum RaftInput: Sendable {
    /// Time passed; the shell calls this at (or after) the output's `wakeAt`.
    case tick
    case message(Message)
    /// A state-machine command; the outcome is a position that the shell watches being applied.
    case propose(RequestID, [UInt8])
    /// Several commands at once (what arrived while the shell was busy): the same outcomes as
    /// proposing them one by one, but they go out to followers together.
    case proposeBatch([Proposal])
    /// A no-op entry: once applied, everything before it is applied too (hashicorp/raft's Barrier).
    case barrier(RequestID)
    case changeMembership(RequestID, MembershipChange)
    /// Hand leadership to `target` (or the most up-to-date voter when nil).
    case transferLeadership(RequestID, target: ServerID?)
    /// A linearizable read: answered with a read index once a quorum confirmed this leader.
    case read(RequestID)
    /// Every persist work up to and including the one holding this entry is on disk (fsynced).
    case persisted(LogPosition)
    /// The state machine wrote a snapshot covering everything up to `index` (which it has applied);
    /// the core may compact its log and will send this snapshot to followers that fell behind.
    case snapshotTaken(index: LogIndex, data: [UInt8])
    /// The shell keeps the snapshot covering everything up to `index` in a store of its own, with
    /// `size` bytes of data: one the state machine wrote (the core compacts its log, as for
    /// `snapshotTaken`), or the one the core just installed from a leader (the core drops its copy).
    /// The core then holds no snapshot data: it asks the shell for the chunks it sends
    /// (`RaftOutput.snapshotChunks`).
    case snapshotStored(index: LogIndex, size: UInt64)
    /// hashicorp/raft's BootstrapCluster on a running server (Consul's `-bootstrap-expect`, once the
    /// expected servers are seen): the first log entry becomes this configuration. Ignored by a
    /// server that already has a log or snapshot, so a cluster that exists is never re-bootstrapped.
    case bootstrap(ClusterConfiguration)
}

/// What must reach the disk before the batch's messages leave and its entries are applied.
package struct PersistWork: Hashable, Sendable {
    /// Write first when set: a snapshot received from the leader. Entries up to its index are then
    /// obsolete; if the stored log has no entry `snapshot.index@snapshot.term`, drop the whole log.
    package var snapshot: Snapshot?
    package var hardState: HardState?
    /// Append these; any stored entry at or after `entries.first.index` is replaced (a conflicting
    /// suffix from an old term is cut off this way).
    package var entries: [LogEntry] = []
    /// Stored entries up to here are covered by a snapshot and may be deleted.
    package var compactThrough: LogIndex?

    package init(snapshot: Snapshot? = nil, hardState: HardState? = nil, entries: [LogEntry] = [], compactThrough: LogIndex? = nil) {
        self.snapshot = snapshot
        self.hardState = hardState
        self.entries = entries
        self.compactThrough = compactThrough
    }

    package var isEmpty: Bool {
        snapshot == nil && hardState == nil && entries.isEmpty && compactThrough == nil
    }
}

/// The outcome of a proposal, barrier, membership change or transfer request.
package struct RequestOutcome: Hashable, Sendable {
    package var id: RequestID
    /// Accepted: the request's entry sits at this position. It succeeded once the entry at that index
    /// is applied with that term; an entry with another term at that index means it was lost.
    package var result: Result<LogPosition, RaftError>
}

/// A linearizable read's answer: serve it from the state machine once it has applied `index`.
package struct ReadState: Hashable, Sendable {
    package var id: RequestID
    package var result: Result<LogIndex, RaftError>
}

/// An InstallSnapshot message whose `chunk` the shell reads from its snapshot store: `length`
/// bytes of the snapshot's data from the message's `offset`.
package struct SnapshotChunk: Hashable, Sendable {
    package var message: Message
    package var length: Int

    /// The message with its chunk filled in.
    package func filled(with chunk: [UInt8]) -> Message {
        var message = message
        if case .installSnapshot(var install) = message.payload {
            install.chunk = chunk
            message.payload = .installSnapshot(install)
        }
        return message
    }
}

/// Which server leads in which term, as this server last saw it.
package struct LeaderInfo: Hashable, Sendable {
    package var term: Term
    package var leader: ServerID?
}

/// One batch of effects. The shell carries them out in this order:
/// 1. make `persist` durable (fsync), then
/// 2. send `messages` (they may acknowledge what step 1 wrote), then
/// 3. restore `snapshotToRestore` into the state machine, apply `committed` in order, serve
///    `readStates` once applied, report `outcomes` and `leader`, then
/// 4. feed `.persisted` for the entries of step 1 and call `.tick` at `wakeAt`.
/// Batches must be carried out in the order they were produced (group commit may merge steps 1).
/// Only messages whose `payload.mayPrecedeLocalPersistence` holds (a leader's replication traffic)
/// may leave before step 1 of their batch and of earlier batches is durable.
package struct RaftOutput: Sendable {
    package var persist = PersistWork()
    package var messages: [Message] = []
    /// InstallSnapshot messages of a snapshot in the shell's store (`snapshotStored`), sent with
    /// step 2 once the shell has filled in their chunks.
    package var snapshotChunks: [SnapshotChunk] = []
    package var snapshotToRestore: Snapshot?
    package var committed: [LogEntry] = []
    package var readStates: [ReadState] = []
    package var outcomes: [RequestOutcome] = []
    package var leader: LeaderInfo?
    package var wakeAt: Timestamp = .zero
}
