import ConsulCore
import ConsulCrypto

/// Serf settings (serf `DefaultConfig`, with the SWIM profile underneath).
package struct SerfConfig: Sendable {
    package var swim: SWIMConfig
    package var tags: [String: String]
    /// Recent user events kept for dedup and push/pull (`EventBuffer`).
    package var eventBuffer = 512
    /// Recent query ids kept for dedup (`QueryBuffer`).
    package var queryBuffer = 512
    package var broadcastTimeout: Duration = .seconds(5)
    package var leavePropagateDelay: Duration = .seconds(1)
    package var reapInterval: Duration = .seconds(15)
    package var reconnectInterval: Duration = .seconds(30)
    package var reconnectTimeout: Duration = .seconds(24 * 3600)
    package var tombstoneTimeout: Duration = .seconds(24 * 3600)
    package var recentIntentTimeout: Duration = .seconds(300)
    package var queueCheckInterval: Duration = .seconds(30)
    /// Each serf broadcast queue is pruned to this many messages (`MaxQueueDepth`).
    package var maxQueueDepth = 4096
    /// Intents about members we have not met yet, kept until they join (bounded against floods).
    package var maxRecentIntents = 10_000
    /// Our own queries waiting for answers.
    package var maxPendingQueries = 1024
    package var queryTimeoutMult = 16
    package var userEventSizeLimit = 512
    package var querySizeLimit = 1024
    package var queryResponseSizeLimit = 1024
    /// User events marked coalescable are held this long at most (`UserCoalescePeriod`; zero: off)...
    package var userCoalescePeriod: Duration = .zero
    /// ...or until none arrived for this long (`UserQuiescentPeriod`).
    package var userQuiescentPeriod: Duration = .zero
    package var disableCoordinates = false
    package var vivaldi = VivaldiConfig()
    /// When another address claims our name, ask the pool who holds it and quit in the minority
    /// (serf `EnableNameConflictResolution`, on by default and in Consul).
    package var enableNameConflictResolution = true

    package init(swim: SWIMConfig = .lan, tags: [String: String] = [:]) {
        self.swim = swim
        self.tags = tags
    }
}

/// A member's status as serf reports it (`MemberStatus`; the numbers are serf's).
package enum SerfMemberStatus: Int, Sendable, Hashable, CustomStringConvertible {
    case none = 0, alive, leaving, left, failed

    package var description: String {
        switch self {
        case .none: "none"
        case .alive: "alive"
        case .leaving: "leaving"
        case .left: "left"
        case .failed: "failed"
        }
    }
}

/// One member as serf reports it (serf `Member`).
package struct SerfMemberInfo: Hashable, Sendable {
    package var name: String
    package var address: GossipAddress
    package var tags: [String: String]
    package var status: SerfMemberStatus
    package var versions: ProtocolVersions

    package var wire: SerfMember {
        SerfMember(name: name, addr: address.ip, port: address.port, tags: tags, status: status.rawValue, versions: versions)
    }
}

package enum SerfMemberEventKind: String, Sendable, Hashable {
    case join = "member-join"
    case leave = "member-leave"
    case failed = "member-failed"
    case update = "member-update"
    case reap = "member-reap"
}

package struct SerfMemberEvent: Hashable, Sendable {
    package var kind: SerfMemberEventKind
    package var member: SerfMemberInfo
}

/// A user event as delivered to the application.
package struct SerfUserEventDelivery: Hashable, Sendable {
    package var lamportTime: LamportTime
    package var name: String
    package var payload: [UInt8]
    package var coalesce: Bool
}

/// Names one query: its Lamport time and random id, as the responses carry them.
package struct SerfQueryID: Hashable, Sendable, CustomStringConvertible {
    package var lamportTime: LamportTime
    package var id: UInt32
    package var description: String { "query(\(lamportTime)/\(id))" }
}

/// A query from some member for the application to answer with `SerfInput.respond`.
package struct SerfIncomingQuery: Hashable, Sendable {
    package var query: SerfQueryID
    package var name: String
    package var payload: [UInt8]
    package var source: GossipAddress
    package var sourceNode: String
    package var relayFactor: UInt8
    package var deadline: Timestamp
}

/// Options of a query we send (serf `QueryParam`).
package struct SerfQueryParameters: Sendable, Hashable {
    package var filterNodes: [String] = []
    /// Members whose tag matches the regular expression (all must match).
    package var filterTags: [String: String] = [:]
    package var requestAck = false
    package var relayFactor: UInt8 = 0
    /// Zero picks serf's default (`gossipInterval × queryTimeoutMult × ceil(log10(N+1))`).
    package var timeout: Duration = .zero

    package init(filterNodes: [String] = [], filterTags: [String: String] = [:], requestAck: Bool = false, relayFactor: UInt8 = 0, timeout: Duration = .zero) {
        self.filterNodes = filterNodes
        self.filterTags = filterTags
        self.requestAck = requestAck
        self.relayFactor = relayFactor
        self.timeout = timeout
    }
}

/// Keyring operations spread over the pool with internal queries.
package enum SerfKeyOperation: String, Sendable, Hashable {
    case install = "install-key"
    case use = "use-key"
    case remove = "remove-key"
    case list = "list-keys"

    var query: SerfInternalQuery {
        switch self {
        case .install: .installKey
        case .use: .useKey
        case .remove: .removeKey
        case .list: .listKeys
        }
    }
}

/// The pool's answer to a keyring operation (serf `KeyResponse`).
package struct SerfKeyOperationResult: Hashable, Sendable {
    /// Node name → its message (errors and warnings).
    package var messages: [String: String] = [:]
    package var nodes = 0
    package var responses = 0
    package var errors = 0
    /// Base64 key → how many members hold it.
    package var keys: [String: Int] = [:]
    /// Base64 key → how many members use it as primary.
    package var primaryKeys: [String: Int] = [:]

    /// Serf's summary error ("2/3 nodes reported failure"), nil on full success.
    package var failure: String? {
        if errors != 0 { return "\(errors)/\(nodes) nodes reported failure" }
        if responses != nodes { return "\(responses)/\(nodes) nodes reported success" }
        return nil
    }
}

/// One force-leave request, named by the caller so it can match `forceLeaveFinished`.
package struct ForceLeaveID: Hashable, Sendable, CustomStringConvertible {
    package var raw: UInt64
    package init(_ raw: UInt64) { self.raw = raw }
    package var description: String { "force-leave#\(raw)" }
}

package enum SerfError: Error, Equatable, Sendable, CustomStringConvertible {
    case userEventTooLarge(limit: Int)
    case queryTooLarge(limit: Int)
    case responseTooLarge(limit: Int)
    case responsePastDeadline
    case tagsTooLarge(limit: Int)
    case tooManyPendingQueries(limit: Int)
    case badKey(String)
    /// Force-leave of a name serf does not know (Consul's words, which its API and CLI return).
    case unknownMember(String)
    /// A force-leave's intent was not gossiped out within `broadcastTimeout` (serf's words).
    case forceLeaveTimedOut

    package var description: String {
        switch self {
        case .userEventTooLarge(let limit): "user event exceeds configured limit of \(limit) bytes"
        case .queryTooLarge(let limit): "query exceeds limit of \(limit) bytes"
        case .responseTooLarge(let limit): "response exceeds limit of \(limit) bytes"
        case .responsePastDeadline: "response is past the deadline"
        case .tagsTooLarge(let limit): "Encoded length of tags exceeds limit of \(limit) bytes"
        case .tooManyPendingQueries(let limit): "more than \(limit) queries waiting for answers"
        case .badKey(let reason): reason
        case .unknownMember(let name): "agent: No node found with name '\(name)'"
        case .forceLeaveTimedOut: "timed out broadcasting node removal"
        }
    }
}

/// What the serf layer is asked to do.
package enum SerfInput: Sendable {
    case tick
    case packet(from: GossipAddress, messages: [MemberlistMessage])
    case inboundStream(InboundStreamID, from: GossipAddress, message: StreamMessage)
    case streamResult(OutboundStreamID, StreamOutcome)
    /// Join the pool through these addresses; `ignoreOld` skips user events older than the join.
    case join(JoinID, [GossipAddress], ignoreOld: Bool)
    /// Graceful leave: intent, memberlist leave, propagation delay, then `leaveFinished`.
    case leave
    /// Answer a query delivered as `SerfEffect.query`.
    case respond(SerfIncomingQuery, payload: [UInt8])
}

/// What the serf layer asks its shell (and application) to do.
package enum SerfEffect: Equatable, Sendable {
    /// Transport work and logs from SWIM (and serf's own direct datagrams).
    case swim(SWIMEffect)
    case member(SerfMemberEvent)
    case userEvent(SerfUserEventDelivery)
    case query(SerfIncomingQuery)
    case queryAck(SerfQueryID, from: String)
    case queryResponse(SerfQueryID, from: String, payload: [UInt8])
    /// No more answers will be taken for this query.
    case queryFinished(SerfQueryID)
    /// The keyring changed through a key query: the shell switches cipher and saves the keyring file.
    case keyringChanged(Keyring)
    case keyOperationFinished(SerfQueryID, SerfKeyOperation, SerfKeyOperationResult)
    case joinFinished(JoinID, joined: Int, errors: [String])
    /// The graceful leave is done; the shell may shut the node down.
    case leaveFinished
    /// A force-leave's intent has been gossiped out (or, `timedOut`, not within `broadcastTimeout`).
    case forceLeaveFinished(ForceLeaveID, timedOut: Bool)
    /// The pool voted on a name conflict about us. Unless `kept`, serf shuts down: the shell stops
    /// gossiping (without a leave) and reports it.
    case nameConflictResolved(SerfNameConflict)
}
