/// A message between two servers. `term` is the sender's term, except for pre-votes, where it is the
/// term the sender would campaign in (pre-votes never change anybody's term).
package struct Message: Hashable, Sendable {
    package var from: ServerID
    package var to: ServerID
    package var term: Term
    package var payload: MessagePayload

    package init(from: ServerID, to: ServerID, term: Term, payload: MessagePayload) {
        self.from = from
        self.to = to
        self.term = term
        self.payload = payload
    }
}

package enum MessagePayload: Hashable, Sendable {
    /// "Would you vote for me?" (Raft dissertation §9.6): lets a server that was partitioned away find
    /// out it cannot win before it bumps its term and disrupts a working leader.
    case preVote(lastLog: LogPosition)
    case preVoteResponse(granted: Bool)
    /// `transfer` is set when campaigning because the leader asked (TimeoutNow); it bypasses the
    /// leader-stickiness check that otherwise protects a live leader.
    case requestVote(lastLog: LogPosition, transfer: Bool)
    case voteResponse(granted: Bool)
    case appendEntries(AppendEntries)
    case appendResponse(AppendResponse)
    /// Carries the leader's commit (capped at what the follower is known to have) and the ReadIndex
    /// round number; no log check, so a lagging follower never rejects it.
    case heartbeat(commit: LogIndex, readRound: UInt64)
    case heartbeatResponse(readRound: UInt64)
    case installSnapshot(InstallSnapshot)
    case installSnapshotResponse(InstallSnapshotResponse)
    /// Sent by a leader handing over leadership to a caught-up voter: start an election now.
    case timeoutNow

    /// The largest index or term-like counter the payload carries (for plausibility checks).
    var largestIndex: UInt64 {
        switch self {
        case .preVote(let last), .requestVote(let last, _): max(last.index, last.term)
        case .appendEntries(let append):
            max(append.prevIndex, append.prevTerm, append.commit,
                append.entries.map { max($0.index, $0.term) }.max() ?? 0)
        case .appendResponse(let response):
            max(response.matchIndex, response.rejectedIndex, response.conflictIndex, response.conflictTerm ?? 0)
        case .heartbeat(let commit, _): commit
        case .installSnapshot(let install):
            max(install.metadata.index, install.metadata.term, install.offset, install.totalSize)
        case .installSnapshotResponse(let response): max(response.snapshotIndex, response.snapshotTerm, response.nextOffset)
        case .preVoteResponse, .voteResponse, .heartbeatResponse, .timeoutNow: 0
        }
    }

    /// Whether a shell may send this before its batch's persist work (and earlier batches') is
    /// durable. Votes and responses promise what the sender stored, so they wait. A leader's
    /// replication traffic promises nothing about the leader's own disk: the leader counts itself
    /// towards a commit only once `.persisted` says its copy is durable, so it may write its log in
    /// parallel with its followers (dissertation §10.2.1). Only leaders send these, and a leader's
    /// term is always durable (it was persisted before the votes that made it leader were asked for).
    package var mayPrecedeLocalPersistence: Bool {
        switch self {
        case .appendEntries, .heartbeat, .installSnapshot: true
        case .preVote, .preVoteResponse, .requestVote, .voteResponse, .appendResponse, .heartbeatResponse,
             .installSnapshotResponse, .timeoutNow: false
        }
    }

    /// An answer to another server's request.
    package var isResponse: Bool {
        switch self {
        case .preVoteResponse, .voteResponse, .appendResponse, .heartbeatResponse, .installSnapshotResponse: true
        case .preVote, .requestVote, .appendEntries, .heartbeat, .installSnapshot, .timeoutNow: false
        }
    }

    /// A short name for traces.
    package var kind: String {
        switch self {
        case .preVote: "PreVote"
        case .preVoteResponse: "PreVoteResp"
        case .requestVote: "RequestVote"
        case .voteResponse: "VoteResp"
        case .appendEntries: "Append"
        case .appendResponse: "AppendResp"
        case .heartbeat: "Heartbeat"
        case .heartbeatResponse: "HeartbeatResp"
        case .installSnapshot: "InstallSnapshot"
        case .installSnapshotResponse: "InstallSnapshotResp"
        case .timeoutNow: "TimeoutNow"
        }
    }
}

package struct AppendEntries: Hashable, Sendable {
    package var prevIndex: LogIndex
    package var prevTerm: Term
    package var entries: [LogEntry]
    package var commit: LogIndex
    package var readRound: UInt64

    package init(prevIndex: LogIndex, prevTerm: Term, entries: [LogEntry], commit: LogIndex, readRound: UInt64) {
        self.prevIndex = prevIndex
        self.prevTerm = prevTerm
        self.entries = entries
        self.commit = commit
        self.readRound = readRound
    }
}

package struct AppendResponse: Hashable, Sendable {
    package var success: Bool
    /// On success: the follower's log matches the leader's up to here.
    package var matchIndex: LogIndex
    /// On rejection: the `prevIndex` that did not match (lets the leader drop stale rejections).
    package var rejectedIndex: LogIndex
    /// On rejection, the fast-backtracking hint (§5.3): the follower's term at `rejectedIndex` (nil when
    /// its log is shorter) and the first index it holds of that term (or its last index + 1).
    package var conflictTerm: Term?
    package var conflictIndex: LogIndex
    package var readRound: UInt64

    package init(
        success: Bool, matchIndex: LogIndex, rejectedIndex: LogIndex = 0, conflictTerm: Term? = nil,
        conflictIndex: LogIndex = 0, readRound: UInt64
    ) {
        self.success = success
        self.matchIndex = matchIndex
        self.rejectedIndex = rejectedIndex
        self.conflictTerm = conflictTerm
        self.conflictIndex = conflictIndex
        self.readRound = readRound
    }
}

/// One chunk of a snapshot. Chunks are sent one at a time and acknowledged with the next offset
/// wanted, so a lost or duplicated chunk costs one retransmission, never a corrupt snapshot.
package struct InstallSnapshot: Hashable, Sendable {
    package var metadata: SnapshotMetadata
    package var totalSize: UInt64
    package var offset: UInt64
    package var chunk: [UInt8]

    package init(metadata: SnapshotMetadata, totalSize: UInt64, offset: UInt64, chunk: [UInt8]) {
        self.metadata = metadata
        self.totalSize = totalSize
        self.offset = offset
        self.chunk = chunk
    }
}

package struct InstallSnapshotResponse: Hashable, Sendable {
    /// Which snapshot this answers (the leader may have taken a newer one meanwhile).
    package var snapshotIndex: LogIndex
    package var snapshotTerm: Term
    /// The next byte the follower wants; equals the total size once installed.
    package var nextOffset: UInt64
    /// The whole snapshot is installed (or the follower already had everything it covers).
    package var done: Bool

    package init(snapshotIndex: LogIndex, snapshotTerm: Term, nextOffset: UInt64, done: Bool) {
        self.snapshotIndex = snapshotIndex
        self.snapshotTerm = snapshotTerm
        self.nextOffset = nextOffset
        self.done = done
    }
}
