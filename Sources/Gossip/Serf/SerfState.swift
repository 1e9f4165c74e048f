import ConsulCore
import ConsulCrypto

/// Serf's state, and SWIM's delegate: member statuses with Lamport-ordered join/leave intents,
/// the user-event and query machinery, key management and network coordinates (serf 0.9.4
/// serf.go, delegate.go, query.go, internal_query.go, ping_delegate.go). A plain value owned by
/// the SWIM core; `SerfCore` drives both.
package struct SerfState: SWIMDelegate, Sendable {
    /// Where serf is in its life (serf `SerfState`; shutdown is the shell's business).
    package enum Lifecycle: String, Sendable {
        case alive, leaving, left
    }

    struct MemberRecord {
        var info: SerfMemberInfo
        /// Lamport time of the last intent applied to this member.
        var statusLTime: LamportTime = 0
        /// When the member failed or left (for reaping).
        var leaveTime: Timestamp?
        /// When a leave intent made it `leaving` (a leave that never completes asks for a sync).
        var leavingSince: Timestamp?
    }

    /// A join or leave intent about a member we have not met yet.
    struct Intent {
        var type: SerfMessageType
        var wallTime: Timestamp
        var lamportTime: LamportTime
    }

    /// One of our own queries waiting for answers.
    struct PendingQuery {
        var id: SerfQueryID
        var deadline: Timestamp
        var acks: Set<String> = []
        var responses: Set<String> = []
        var keyOperation: SerfKeyOperation?
        var keyResult = SerfKeyOperationResult()
        /// Set for our `_serf_conflict` query: the votes about who holds our name.
        var conflict: SerfNameConflict?
    }

    package let config: SerfConfig
    package let localName: String
    package internal(set) var localAddress: GossipAddress
    package internal(set) var tags: [String: String]
    package internal(set) var lifecycle = Lifecycle.alive
    package internal(set) var keyring: Keyring?

    package internal(set) var clock = LamportClock()
    package internal(set) var eventClock = LamportClock()
    package internal(set) var queryClock = LamportClock()

    var members: [String: MemberRecord] = [:]
    /// Failed and left members in the order they got there (serf's `failedMembers`/`leftMembers`).
    var failedMembers: [String] = []
    var leftMembers: [String] = []
    var recentIntents: [String: Intent] = [:]

    var intentQueue: BroadcastQueue
    var eventQueue: BroadcastQueue
    var queryQueue: BroadcastQueue
    /// Tokens of serf broadcasts that have been sent out in full.
    var finishedTokens: [BroadcastToken] = []
    var nextToken: UInt64 = 0

    var eventRing: [SerfUserEvents?]
    var eventMinTime: LamportTime = 0
    var queryRing: [(time: LamportTime, ids: [UInt32])?]
    var queryMinTime: LamportTime = 0
    var pendingQueries: [LamportTime: PendingQuery] = [:]
    /// Skip replayed user events older than an `ignoreOld` join's view.
    var ignoringOldEvents = false

    var coordinates: VivaldiClient?
    package internal(set) var coordinateCache: [String: VivaldiCoordinate] = [:]

    var coalesced: [String: (time: LamportTime, events: [SerfUserEventDelivery])] = [:]
    var coalesceQuantum: Timestamp?
    var coalesceQuiescent: Timestamp?

    var random: SeededRandom
    /// Alive members as memberlist counts them, kept current by `SerfCore` (query timeouts and key
    /// operations size themselves by it).
    var swimMemberCount = 1
    /// Set when something shows our view lags (an intent about a member we never met): `SerfCore`
    /// then asks SWIM for an early push/pull.
    var viewLags = false
    var effects: [SerfEffect] = []

    init(name: String, address: GossipAddress, config: SerfConfig, keyring: Keyring?, random: SeededRandom) {
        self.config = config
        self.localName = name
        self.localAddress = address
        self.tags = config.tags
        self.keyring = keyring
        var random = random
        self.coordinates = config.disableCoordinates ? nil : VivaldiClient(config: config.vivaldi, random: random.split())
        self.random = random
        intentQueue = BroadcastQueue(retransmitMult: config.swim.retransmitMult, maxDepth: config.maxQueueDepth)
        eventQueue = BroadcastQueue(retransmitMult: config.swim.retransmitMult, maxDepth: config.maxQueueDepth)
        queryQueue = BroadcastQueue(retransmitMult: config.swim.retransmitMult, maxDepth: config.maxQueueDepth)
        eventRing = Array(repeating: nil, count: max(1, config.eventBuffer))
        queryRing = Array(repeating: nil, count: max(1, config.queryBuffer))
        // Serf starts every clock at 1.
        clock.increment()
        eventClock.increment()
        queryClock.increment()
        if let coordinates { coordinateCache[name] = coordinates.coordinate }
    }

    // MARK: - Helpers

    mutating func log(_ level: GossipLogLevel, _ text: String) {
        effects.append(.swim(.log(level, "serf: " + text)))
    }

    /// A user message straight to an address (memberlist `SendToAddress`: no piggy-back, no CRC).
    mutating func send(_ message: SerfMessage, to address: GossipAddress) {
        sendRaw(message.encoded, to: address)
    }

    mutating func sendRaw(_ serfBytes: [UInt8], to address: GossipAddress) {
        effects.append(.swim(.sendPacket(to: address, messages: [[MemberlistMessageType.user.rawValue] + serfBytes], checksum: false)))
    }

    mutating func newToken() -> BroadcastToken {
        nextToken += 1
        return BroadcastToken(nextToken)
    }

    mutating func queueIntent(_ bytes: [UInt8], token: BroadcastToken? = nil) {
        intentQueue.queue(bytes, token: token, finished: &finishedTokens)
    }

    var memberCount: Int { members.count }

    package var memberList: [SerfMemberInfo] { members.keys.sorted().map { members[$0]!.info } }

    func member(_ name: String) -> SerfMemberInfo? { members[name]?.info }

    var hasAliveMembers: Bool { members.contains { $0.key != localName && $0.value.info.status == .alive } }

    func decodeTags(_ meta: [UInt8]) -> [String: String] {
        (try? SerfTags.decode(meta, limits: GossipLimits.defaultMessagePack)) ?? [:]
    }

    // MARK: - SWIMDelegate

    package func ackPayload() -> [UInt8] {
        guard let coordinates else { return [] }
        return coordinates.coordinate.payload.ackPayload
    }

    package var hasBroadcasts: Bool { !intentQueue.isEmpty || !queryQueue.isEmpty || !eventQueue.isEmpty }

    package mutating func broadcasts(overhead: Int, limit: Int) -> [[UInt8]] {
        let nodes = memberCount
        var messages = intentQueue.take(overhead: overhead, limit: limit, nodes: nodes, finished: &finishedTokens)
        var used = messages.reduce(0) { $0 + $1.count + overhead }
        let queries = queryQueue.take(overhead: overhead, limit: limit - used, nodes: nodes, finished: &finishedTokens)
        used += queries.reduce(0) { $0 + $1.count + overhead }
        messages += queries
        messages += eventQueue.take(overhead: overhead, limit: limit - used, nodes: nodes, finished: &finishedTokens)
        return messages
    }

    package func localState(join: Bool) -> [UInt8] {
        var statusTimes: [String: LamportTime] = [:]
        for (name, record) in members { statusTimes[name] = record.statusLTime }
        let state = SerfPushPullMessage(
            lamportTime: clock.time, statusLamportTimes: statusTimes, leftMembers: leftMembers,
            eventLamportTime: eventClock.time, events: eventRing, queryLamportTime: queryClock.time)
        return SerfMessage.pushPull(state).encoded
    }

    package mutating func mergeRemoteState(_ state: [UInt8], join: Bool, now: Timestamp) {
        let remote: SerfPushPullMessage
        do {
            guard case .pushPull(let decoded) = try SerfMessage.decode(state) else {
                log(.error, "Remote state has bad type prefix: \(state.first ?? 0)")
                return
            }
            remote = decoded
        } catch {
            log(.error, "Failed to decode remote state: \(error)")
            return
        }
        if remote.lamportTime > 0 { clock.witness(remote.lamportTime - 1) }
        if remote.eventLamportTime > 0 { eventClock.witness(remote.eventLamportTime - 1) }
        if remote.queryLamportTime > 0 { queryClock.witness(remote.queryLamportTime - 1) }
        let left = Set(remote.leftMembers)
        for name in remote.leftMembers {
            let time = (remote.statusLamportTimes[name] ?? 0) &+ 1
            _ = handleLeaveIntent(SerfLeaveMessage(lamportTime: time, node: name), now: now)
        }
        for name in remote.statusLamportTimes.keys.sorted() where !left.contains(name) {
            _ = handleJoinIntent(SerfJoinMessage(lamportTime: remote.statusLamportTimes[name]!, node: name), now: now)
        }
        if join && ignoringOldEvents { eventMinTime = max(eventMinTime, remote.eventLamportTime) }
        for slot in remote.events {
            guard let slot else { continue }
            for event in slot.events {
                _ = handleUserEvent(
                    SerfUserEventMessage(lamportTime: slot.lamportTime, name: event.name, payload: event.payload, canCoalesce: false),
                    now: now)
            }
        }
    }

    package mutating func notifyMessage(_ payload: [UInt8], now: Timestamp) {
        guard !payload.isEmpty else { return }
        let message: SerfMessage
        do {
            message = try SerfMessage.decode(payload)
        } catch {
            log(.error, "Error decoding message: \(error)")
            return
        }
        switch message {
        case .leave(let leave):
            if handleLeaveIntent(leave, now: now) { queueIntent(payload) }
        case .join(let join):
            // Someone joined whom memberlist has not told us about: an alive broadcast was missed.
            if members[join.node] == nil && join.node != localName { viewLags = true }
            if handleJoinIntent(join, now: now) { queueIntent(payload) }
        case .userEvent(let event):
            if handleUserEvent(event, now: now) { eventQueue.queue(payload, finished: &finishedTokens) }
        case .query(let query):
            if handleQuery(query, now: now) { queryQueue.queue(payload, finished: &finishedTokens) }
        case .queryResponse(let response):
            handleQueryResponse(response, now: now)
        case .relay(let header, let inner):
            guard header.destinationIP.count == 4 || header.destinationIP.count == 16,
                  let port = UInt16(exactly: header.destinationPort), port != 0
            else {
                log(.error, "Error decoding relay header: bad destination")
                return
            }
            sendRaw(inner, to: GossipAddress(ip: header.destinationIP, port: port))
        case .pushPull, .conflictResponse, .keyRequest, .keyResponse:
            log(.warn, "Received message of unknown type: \(message.type.rawValue)")
        }
    }

    package mutating func notifyJoin(_ node: SWIMNode, now: Timestamp) {
        var oldStatus = SerfMemberStatus.none
        var record: MemberRecord
        if let existing = members[node.name] {
            record = existing
            oldStatus = existing.info.status
            record.info.status = .alive
            record.leaveTime = nil
            record.info.address = node.address
            record.info.tags = decodeTags(node.meta)
        } else {
            record = MemberRecord(info: SerfMemberInfo(
                name: node.name, address: node.address, tags: decodeTags(node.meta), status: .alive, versions: node.versions))
            if let intent = recentIntents[node.name] {
                record.statusLTime = intent.lamportTime
                if intent.type == .leave { record.info.status = .leaving }
            }
        }
        record.info.versions = node.versions
        members[node.name] = record
        if oldStatus == .failed || oldStatus == .left {
            failedMembers.removeAll { $0 == node.name }
            leftMembers.removeAll { $0 == node.name }
        }
        log(.info, "EventMemberJoin: \(node.name) \(node.address.host)")
        effects.append(.member(SerfMemberEvent(kind: .join, member: record.info)))
    }

    package mutating func notifyLeave(_ node: SWIMNode, now: Timestamp) {
        guard var record = members[node.name] else { return }
        let kind: SerfMemberEventKind
        switch record.info.status {
        case .leaving:
            record.info.status = .left
            leftMembers.append(node.name)
            kind = .leave
        case .alive where node.state == .left:
            // memberlist says the member left on purpose (it declared itself dead); only its serf
            // intent was missed. Serf would call this "failed"; it is a leave.
            record.info.status = .left
            leftMembers.append(node.name)
            kind = .leave
        case .alive:
            record.info.status = .failed
            failedMembers.append(node.name)
            kind = .failed
        default:
            log(.warn, "Bad state when leave: \(record.info.status)")
            return
        }
        record.leaveTime = now
        record.leavingSince = nil
        members[node.name] = record
        log(.info, "\(kind == .leave ? "EventMemberLeave" : "EventMemberFailed"): \(node.name) \(node.address.host)")
        effects.append(.member(SerfMemberEvent(kind: kind, member: record.info)))
    }

    package mutating func notifyUpdate(_ node: SWIMNode, now: Timestamp) {
        guard var record = members[node.name] else { return }
        record.info.address = node.address
        record.info.tags = decodeTags(node.meta)
        record.info.versions = node.versions
        members[node.name] = record
        log(.info, "EventMemberUpdate: \(node.name)")
        effects.append(.member(SerfMemberEvent(kind: .update, member: record.info)))
    }

    package mutating func notifyPingComplete(_ node: SWIMNode, rtt: Duration, payload: [UInt8], now: Timestamp) {
        guard coordinates != nil, !payload.isEmpty else { return }
        let other: SerfPingPayload
        do {
            other = try SerfPingPayload.decodeAckPayload(payload)
        } catch {
            log(.error, "Failed to decode coordinate from ping: \(error)")
            return
        }
        let coordinate = VivaldiCoordinate(other)
        guard coordinates!.update(node: node.name, other: coordinate, rtt: rtt) else { return }
        coordinateCache[node.name] = coordinate
        coordinateCache[localName] = coordinates!.coordinate
    }

    package mutating func notifyConflict(existing: SWIMNode, other: SWIMNode, now: Timestamp) {
        if existing.name != localName {
            log(.warn, "Name conflict for '\(existing.name)' both \(existing.address) and \(other.address) are claiming")
        } else {
            log(.error, "Node name conflicts with another node at \(other.address). Names must be unique! (Resolution enabled: \(config.enableNameConflictResolution))")
            if config.enableNameConflictResolution { resolveNameConflict(with: other.address, now: now) }
        }
    }

    // MARK: - Intents

    /// serf `handleNodeLeaveIntent`: true when the intent was news (and should be re-gossiped).
    mutating func handleLeaveIntent(_ leave: SerfLeaveMessage, now: Timestamp) -> Bool {
        clock.witness(leave.lamportTime)
        guard var record = members[leave.node] else {
            return upsertIntent(leave.node, type: .leave, time: leave.lamportTime, now: now)
        }
        if leave.lamportTime <= record.statusLTime {
            // A push/pull carries left members with a made-up intent time (their status time + 1,
            // as serf does), which can equal or pass a real force-leave's time: a prune of a member
            // that has left anyway is applied whatever its time.
            guard leave.prune, record.info.status == .left else { return false }
            prune(leave.node)
            return true
        }
        if leave.node == localName && lifecycle == .alive {
            // Someone replays an old leave of ours while we are alive: refute with a newer join.
            log(.debug, "Refuting an older leave intent")
            broadcastJoin(clock.time, now: now)
            return false
        }
        record.statusLTime = leave.lamportTime
        switch record.info.status {
        case .alive:
            record.info.status = .leaving
            record.leavingSince = now
            members[leave.node] = record
            if leave.prune { prune(leave.node) }
            return true
        case .failed:
            record.info.status = .left
            members[leave.node] = record
            failedMembers.removeAll { $0 == leave.node }
            leftMembers.append(leave.node)
            log(.info, "EventMemberLeave (forced): \(leave.node) \(record.info.address.host)")
            effects.append(.member(SerfMemberEvent(kind: .leave, member: record.info)))
            if leave.prune { prune(leave.node) }
            return true
        case .leaving, .left:
            members[leave.node] = record
            if leave.prune { prune(leave.node) }
            return true
        case .none:
            return false
        }
    }

    /// serf `handleNodeJoinIntent`.
    mutating func handleJoinIntent(_ join: SerfJoinMessage, now: Timestamp) -> Bool {
        clock.witness(join.lamportTime)
        guard var record = members[join.node] else {
            return upsertIntent(join.node, type: .join, time: join.lamportTime, now: now)
        }
        if join.lamportTime <= record.statusLTime { return false }
        record.statusLTime = join.lamportTime
        if record.info.status == .leaving {
            record.info.status = .alive
            record.leavingSince = nil
        }
        members[join.node] = record
        return true
    }

    mutating func broadcastJoin(_ time: LamportTime, now: Timestamp) {
        let join = SerfJoinMessage(lamportTime: time, node: localName)
        clock.witness(time)
        _ = handleJoinIntent(join, now: now)
        queueIntent(SerfMessage.join(join).encoded)
    }

    private mutating func upsertIntent(_ node: String, type: SerfMessageType, time: LamportTime, now: Timestamp) -> Bool {
        if let existing = recentIntents[node] {
            guard time > existing.lamportTime else { return false }
        } else if recentIntents.count >= config.maxRecentIntents {
            return false
        }
        recentIntents[node] = Intent(type: type, wallTime: now, lamportTime: time)
        return true
    }

    /// Forgets a left member at once (force-leave with prune).
    private mutating func prune(_ name: String) {
        log(.info, "EventMemberReap (forced): \(name)")
        leftMembers.removeAll { $0 == name }
        failedMembers.removeAll { $0 == name }
        erase(name)
    }

    mutating func erase(_ name: String) {
        guard let record = members.removeValue(forKey: name) else { return }
        coordinates?.forget(name)
        coordinateCache[name] = nil
        effects.append(.member(SerfMemberEvent(kind: .reap, member: record.info)))
    }

    /// True (once per member) when a member has been `leaving` for longer than a whole leave
    /// takes (intent, memberlist leave, propagation delay, with a margin): we missed its
    /// memberlist leave, which a push/pull with anyone who saw it fixes.
    mutating func takeStaleLeave(now: Timestamp) -> Bool {
        let patience = config.broadcastTimeout * 2 + config.leavePropagateDelay + .seconds(2)
        var stale: [String] = []
        for (name, record) in members where record.info.status == .leaving {
            if let since = record.leavingSince, now.duration(since: since) > patience { stale.append(name) }
        }
        for name in stale { members[name]?.leavingSince = nil }
        return !stale.isEmpty
    }

    /// Drops failed and left members past their timeouts, and stale intents.
    mutating func reap(now: Timestamp) {
        func expired(_ names: [String], after timeout: Duration) -> [String] {
            names.filter { name in
                guard let left = members[name]?.leaveTime else { return true }
                return now.duration(since: left) > timeout
            }
        }
        for name in expired(failedMembers, after: config.reconnectTimeout) {
            failedMembers.removeAll { $0 == name }
            log(.info, "EventMemberReap: \(name)")
            erase(name)
        }
        for name in expired(leftMembers, after: config.tombstoneTimeout) {
            leftMembers.removeAll { $0 == name }
            log(.info, "EventMemberReap: \(name)")
            erase(name)
        }
        recentIntents = recentIntents.filter { now.duration(since: $0.value.wallTime) <= config.recentIntentTimeout }
    }
}
