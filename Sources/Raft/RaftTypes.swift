import ConsulCore

/// A Raft term. Terms only grow; every message carries its sender's term.
package typealias Term = UInt64

/// A position in the replicated log, starting at 1 (0 means "before the first entry").
package typealias LogIndex = UInt64

/// A server's stable identity (Consul uses the node ID, a UUID string). Compared as strings so every
/// ordering the core produces (broadcast order, tie-breaks) is the same on every run and platform.
package struct ServerID: Hashable, Comparable, Sendable, CustomStringConvertible {
    package var rawValue: String

    package init(_ rawValue: String) {
        self.rawValue = rawValue
    }

    package static func < (lhs: ServerID, rhs: ServerID) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    package var description: String { rawValue }
}

/// Whether a server's vote counts. Non-voters receive the log (to catch up before promotion, or to
/// serve stale reads) but never campaign and never count towards a quorum.
package enum Suffrage: Hashable, Sendable {
    case voter
    case nonvoter
}

/// One member of a cluster configuration.
package struct ServerEntry: Hashable, Sendable {
    package var id: ServerID
    package var suffrage: Suffrage
    /// Where peers reach this server ("host:port", Consul's server RPC address); empty when unknown
    /// (then the transport's address book must learn it elsewhere).
    package var address: String

    package init(id: ServerID, suffrage: Suffrage, address: String = "") {
        self.id = id
        self.suffrage = suffrage
        self.address = address
    }
}

/// The set of servers in the cluster. Kept sorted by id so iteration order is deterministic.
package struct ClusterConfiguration: Hashable, Sendable, CustomStringConvertible {
    package private(set) var servers: [ServerEntry]

    package init(servers: [ServerEntry] = []) {
        var unique: [ServerID: ServerEntry] = [:]
        for server in servers { unique[server.id] = server }
        self.servers = unique.values.sorted { $0.id < $1.id }
    }

    package init(voters: [ServerID]) {
        self.init(servers: voters.map { ServerEntry(id: $0, suffrage: .voter) })
    }

    /// Voters in id order.
    package var voters: [ServerID] {
        servers.compactMap { $0.suffrage == .voter ? $0.id : nil }
    }

    package func suffrage(of id: ServerID) -> Suffrage? {
        servers.first { $0.id == id }?.suffrage
    }

    package func contains(_ id: ServerID) -> Bool { suffrage(of: id) != nil }

    /// Server id → address, for the servers whose address is known.
    package var addresses: [ServerID: String] {
        var book: [ServerID: String] = [:]
        for server in servers where !server.address.isEmpty { book[server.id] = server.address }
        return book
    }

    package func isVoter(_ id: ServerID) -> Bool { suffrage(of: id) == .voter }

    /// The configuration that results from `change`, or an error when the change makes no sense for
    /// this configuration (adding a present voter, promoting a stranger, removing the last voter).
    package func applying(_ change: MembershipChange) throws(RaftError) -> ClusterConfiguration {
        var entries = servers
        let known = servers.first { $0.id == change.server }?.address ?? ""
        switch change {
        case .addVoter(let id, let address):
            guard suffrage(of: id) != .voter else { throw .invalidMembershipChange }
            entries.removeAll { $0.id == id }
            entries.append(ServerEntry(id: id, suffrage: .voter, address: address.isEmpty ? known : address))
        case .addNonVoter(let id, let address):
            guard !contains(id) else { throw .invalidMembershipChange }
            entries.append(ServerEntry(id: id, suffrage: .nonvoter, address: address))
        case .promote(let id):
            guard suffrage(of: id) == .nonvoter else { throw .invalidMembershipChange }
            entries.removeAll { $0.id == id }
            entries.append(ServerEntry(id: id, suffrage: .voter, address: known))
        case .remove(let id):
            guard contains(id) else { throw .invalidMembershipChange }
            entries.removeAll { $0.id == id }
        }
        let result = ClusterConfiguration(servers: entries)
        guard !result.voters.isEmpty else { throw .invalidMembershipChange }
        return result
    }

    package var description: String {
        "[" + servers.map { $0.suffrage == .voter ? $0.id.rawValue : "\($0.id.rawValue)(nv)" }.joined(separator: ",") + "]"
    }
}

/// A single-server membership change (Raft dissertation §4.1): any two consecutive configurations
/// then have overlapping majorities, so no joint consensus is needed.
package enum MembershipChange: Hashable, Sendable {
    /// Adds a voter (or promotes a non-voter); an empty address keeps the one already known.
    case addVoter(ServerID, address: String = "")
    case addNonVoter(ServerID, address: String = "")
    case promote(ServerID)
    case remove(ServerID)

    /// The server the change is about.
    package var server: ServerID {
        switch self {
        case .addVoter(let id, _), .addNonVoter(let id, _), .promote(let id), .remove(let id): id
        }
    }
}

/// What a log entry carries.
package enum EntryPayload: Hashable, Sendable {
    /// Appended by every new leader (so it can commit entries of earlier terms, §5.4.2) and by barriers.
    case noop
    /// Opaque bytes for the state machine.
    case command([UInt8])
    /// A new cluster configuration; takes effect as soon as it is in a server's log, not on commit.
    case configuration(ClusterConfiguration)
}

package struct LogEntry: Hashable, Sendable {
    package var index: LogIndex
    package var term: Term
    package var payload: EntryPayload

    package init(index: LogIndex, term: Term, payload: EntryPayload) {
        self.index = index
        self.term = term
        self.payload = payload
    }
}

/// An entry's identity: by log matching, (index, term) names one entry on every server.
package struct LogPosition: Hashable, Sendable, CustomStringConvertible {
    package var index: LogIndex
    package var term: Term

    package init(index: LogIndex, term: Term) {
        self.index = index
        self.term = term
    }

    package var description: String { "\(index)@\(term)" }
}

/// The state that must be on disk before any message depending on it leaves the server.
package struct HardState: Hashable, Sendable {
    package var term: Term
    package var votedFor: ServerID?

    package init(term: Term = 0, votedFor: ServerID? = nil) {
        self.term = term
        self.votedFor = votedFor
    }
}

/// Where a snapshot ends and the configuration in force at that point.
package struct SnapshotMetadata: Hashable, Sendable {
    package var index: LogIndex
    package var term: Term
    package var configuration: ClusterConfiguration

    package init(index: LogIndex, term: Term, configuration: ClusterConfiguration) {
        self.index = index
        self.term = term
        self.configuration = configuration
    }
}

/// A state-machine snapshot. The core keeps the latest one so it can stream it to lagging followers.
package struct Snapshot: Hashable, Sendable {
    package var metadata: SnapshotMetadata
    package var data: [UInt8]

    package init(metadata: SnapshotMetadata, data: [UInt8]) {
        self.metadata = metadata
        self.data = data
    }
}

/// What a shell loads from disk to (re)start a server.
package struct RecoveredState: Hashable, Sendable {
    package var hardState: HardState
    package var snapshot: Snapshot?
    /// Contiguous entries; they may start at or before `snapshot.index + 1` (trailing entries kept after
    /// compaction) but must not leave a gap after the snapshot.
    package var entries: [LogEntry]

    package init(hardState: HardState = HardState(), snapshot: Snapshot? = nil, entries: [LogEntry] = []) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
    }

    /// The state a brand-new cluster's founding servers persist before their first start: one
    /// configuration entry at index 1, term 1 (as hashicorp/raft's BootstrapCluster does), so every
    /// founder starts from the same log.
    package static func bootstrap(_ configuration: ClusterConfiguration) -> RecoveredState {
        RecoveredState(
            hardState: HardState(term: 1, votedFor: nil),
            entries: [LogEntry(index: 1, term: 1, payload: .configuration(configuration))]
        )
    }
}

/// Errors the core reports for requests it cannot take. Peers' bad messages are not errors: they are
/// dropped, because nothing a peer sends may stop a server.
package enum RaftError: Error, Hashable, Sendable {
    /// Only the leader takes proposals and linearizable reads; the hint is who we believe leads.
    case notLeader(leaderHint: ServerID?)
    /// A leadership transfer is in progress; proposals would only be lost with the old term.
    case leadershipTransferInProgress
    /// The limit on entries appended but not yet committed was reached (back-pressure).
    case tooManyUncommittedEntries
    /// A previous membership change is not committed yet, or this term has committed nothing yet.
    case configurationChangeInProgress
    /// The change does not fit the current configuration.
    case invalidMembershipChange
    /// The limit on pending linearizable reads was reached.
    case tooManyPendingReads
    /// Leadership was lost before the read could be confirmed.
    case leadershipLost
    /// A transfer target that is not a voter (or is this server).
    case invalidTransferTarget
    /// The recovered state is inconsistent (gap after the snapshot, entries out of order).
    case corruptRecoveredState(String)
}
