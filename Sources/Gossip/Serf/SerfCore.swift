import ConsulCore
import ConsulCrypto

/// Serf on top of SWIM, pure: tags as node meta, member status with Lamport-ordered intents, user
/// events, queries, key management over internal queries, reconnects and reaping, Vivaldi
/// coordinates. `handle(input, now)` and the command methods return effects; shells call
/// `handle(.tick, now)` at `nextWakeup`.
package struct SerfCore: Sendable {
    package private(set) var swim: SWIMCore<SerfState>
    private var nextReap: Timestamp
    private var nextReconnect: Timestamp
    private var nextQueueCheck: Timestamp
    /// A member stuck `leaving` is looked for about once a second (on ticks that happen anyway).
    private var nextStaleLeaveCheck: Timestamp
    private var leave: LeavePhase?
    /// Joins the application asked for: a successful one is followed by our join intent.
    private var userJoins: Set<JoinID> = []
    private var ignoreOldJoins: Set<JoinID> = []
    /// Reconnect attempts use join ids from the top half of the range.
    private var nextInternalJoin: UInt64 = 1 << 63
    private var leaveIntentToken: BroadcastToken?
    /// Force-leaves whose intent is still being gossiped, with their deadlines.
    private var forceLeaves: [(id: ForceLeaveID, token: BroadcastToken, until: Timestamp)] = []

    private enum LeavePhase {
        /// Waiting for our leave intent to be gossiped (or for the broadcast timeout).
        case intent(until: Timestamp)
        /// Waiting for memberlist's dead-self message to be gossiped.
        case memberlist(until: Timestamp)
        /// Letting the news spread before reporting the leave done (`LeavePropagateDelay`).
        case propagating(until: Timestamp)
        case done
    }

    /// A node named `name` listening on `address`; `keyring` nil means no encryption (key queries
    /// are then answered with serf's "encryption not enabled").
    package init(
        name: String, address: GossipAddress, config: SerfConfig, keyring: Keyring?, random: SeededRandom, now: Timestamp
    ) throws(SerfError) {
        let meta: [UInt8]
        do {
            meta = try SerfTags.encode(config.tags)
        } catch {
            throw .tagsTooLarge(limit: GossipLimits.default.maxMetaBytes)
        }
        var random = random
        let state = SerfState(name: name, address: address, config: config, keyring: keyring, random: random.split())
        swim = SWIMCore(name: name, address: address, meta: meta, config: config.swim, delegate: state, random: random.split(), now: now)
        nextReap = now + config.reapInterval
        nextReconnect = now + config.reconnectInterval
        nextQueueCheck = now + config.queueCheckInterval
        nextStaleLeaveCheck = now
    }

    package var config: SerfConfig { swim.delegate.config }
    package var localName: String { swim.localName }
    package var lifecycle: SerfState.Lifecycle { swim.delegate.lifecycle }
    package var keyring: Keyring? { swim.delegate.keyring }
    /// Members as serf reports them, sorted by name.
    package var members: [SerfMemberInfo] { swim.delegate.memberList }
    package func member(_ name: String) -> SerfMemberInfo? { swim.delegate.member(name) }
    package var coordinate: VivaldiCoordinate? { swim.delegate.coordinates?.coordinate }
    package func coordinate(of node: String) -> VivaldiCoordinate? { swim.delegate.coordinateCache[node] }
    package var clocks: (member: LamportTime, event: LamportTime, query: LamportTime) {
        (swim.delegate.clock.time, swim.delegate.eventClock.time, swim.delegate.queryClock.time)
    }

    /// Clocks from the snapshot of the last run (serf `Create`): each clock moves past its value,
    /// and user events and queries at or before the recorded ones are not delivered again.
    package mutating func restoreClocks(member: LamportTime, event: LamportTime, query: LamportTime) {
        swim.delegate.clock.witness(member)
        swim.delegate.eventClock.witness(event)
        swim.delegate.queryClock.witness(query)
        swim.delegate.eventMinTime = max(swim.delegate.eventMinTime, event &+ 1)
        swim.delegate.queryMinTime = max(swim.delegate.queryMinTime, query &+ 1)
    }

    /// Effects the initial setup produced (our own member-join event).
    package mutating func startupEffects() -> [SerfEffect] { collect([]) }

    package var nextWakeup: Timestamp {
        var wake = min(swim.nextWakeup, nextReap, nextReconnect, nextQueueCheck)
        if let deadline = swim.delegate.queryDeadline { wake = min(wake, deadline) }
        if let deadline = swim.delegate.coalesceDeadline { wake = min(wake, deadline) }
        for pending in forceLeaves { wake = min(wake, pending.until) }
        switch leave {
        case .intent(let until)?, .memberlist(let until)?, .propagating(let until)?: wake = min(wake, until)
        case .done?, nil: break
        }
        return wake
    }

    // MARK: - Inputs

    package mutating func handle(_ input: SerfInput, now: Timestamp) -> [SerfEffect] {
        swim.delegate.swimMemberCount = swim.liveMemberCount
        var swimEffects: [SWIMEffect] = []
        switch input {
        case .tick:
            swimEffects = swim.handle(.tick, now: now)
            runTimers(now: now, swimEffects: &swimEffects)
        case .packet(let from, let messages):
            swimEffects = swim.handle(.packet(from: from, messages: messages), now: now)
        case .inboundStream(let id, let from, let message):
            swimEffects = swim.handle(.inboundStream(id, from: from, message: message), now: now)
        case .streamResult(let id, let outcome):
            swimEffects = swim.handle(.streamResult(id, outcome), now: now)
        case .join(let id, let addresses, let ignoreOld):
            guard swim.delegate.lifecycle == .alive else {
                swim.delegate.effects.append(.joinFinished(id, joined: 0, errors: ["Serf can't Join after Leave or Shutdown"]))
                break
            }
            userJoins.insert(id)
            if ignoreOld {
                ignoreOldJoins.insert(id)
                swim.delegate.ignoringOldEvents = true
            }
            swimEffects = swim.handle(.join(id, addresses), now: now)
        case .leave:
            swimEffects = startLeave(now: now)
        case .respond(let query, let payload):
            do throws(SerfError) {
                try swim.delegate.respond(to: query, payload: payload, now: now)
            } catch {
                swim.delegate.log(.error, "Failed to respond to query \(query.name): \(error)")
            }
        }
        return collect(swimEffects, now: now)
    }

    /// Sends a user event to the pool (serf `UserEvent`).
    package mutating func userEvent(name: String, payload: [UInt8], coalesce: Bool, now: Timestamp) throws(SerfError) -> [SerfEffect] {
        try swim.delegate.userEvent(name: name, payload: payload, coalesce: coalesce, now: now)
        return collect([], now: now)
    }

    /// Sends a query (serf `Query`); answers arrive as `queryAck`/`queryResponse`, then `queryFinished`.
    package mutating func query(
        name: String, payload: [UInt8], parameters: SerfQueryParameters = SerfQueryParameters(), now: Timestamp
    ) throws(SerfError) -> (SerfQueryID, [SerfEffect]) {
        swim.delegate.swimMemberCount = swim.liveMemberCount
        let id = try swim.delegate.query(name: name, payload: payload, parameters: parameters, now: now)
        return (id, collect([], now: now))
    }

    /// Installs, uses, removes (key given) or lists (key nil) gossip keys across the pool.
    package mutating func keyOperation(_ operation: SerfKeyOperation, key: String?, now: Timestamp) throws(SerfError) -> (SerfQueryID, [SerfEffect]) {
        swim.delegate.swimMemberCount = swim.liveMemberCount
        let id = try swim.delegate.keyOperation(operation, key: operation == .list ? nil : key, now: now)
        return (id, collect([], now: now))
    }

    /// serf `RemoveFailedNode` / `RemoveFailedNodePrune` (Consul `force-leave [-prune]`): a leave
    /// intent on behalf of `name`, so every member moves it from failed to left (and stops trying
    /// to reconnect to it); with `prune` every member also forgets it at once instead of keeping
    /// the tombstone for `tombstoneTimeout`. An alive member hearing this about itself refutes it
    /// with a newer join intent, as in serf. Only names serf knows are accepted (Consul checks
    /// membership first). `forceLeaveFinished(id)` follows once the intent has been gossiped out,
    /// or after `broadcastTimeout` with `timedOut`.
    package mutating func forceLeave(_ name: String, prune: Bool, id: ForceLeaveID, now: Timestamp) throws(SerfError) -> [SerfEffect] {
        guard swim.delegate.members[name] != nil else { throw .unknownMember(name) }
        swim.delegate.swimMemberCount = swim.liveMemberCount
        swim.delegate.log(.info, "Force leaving node: \(name)\(prune ? " (prune)" : "")")
        let message = SerfLeaveMessage(lamportTime: swim.delegate.clock.time, node: name, prune: prune)
        swim.delegate.clock.increment()
        _ = swim.delegate.handleLeaveIntent(message, now: now)
        guard swim.delegate.hasAliveMembers else {
            swim.delegate.effects.append(.forceLeaveFinished(id, timedOut: false))
            return collect([], now: now)
        }
        let token = swim.delegate.newToken()
        swim.delegate.queueIntent(SerfMessage.leave(message).encoded, token: token)
        // Straight to every live member as well: gossip alone reaches everyone too, but a member
        // told directly moves the node to left at once and does not depend on a lucky pick.
        for member in swim.delegate.memberList where member.name != localName && member.status == .alive {
            swim.delegate.send(.leave(message), to: member.address)
        }
        forceLeaves.append((id, token, now + config.broadcastTimeout))
        return collect([], now: now)
    }

    /// New tags for this node (serf `SetTags`).
    package mutating func setTags(_ tags: [String: String], now: Timestamp) throws(SerfError) -> [SerfEffect] {
        let meta: [UInt8]
        do {
            meta = try SerfTags.encode(tags)
        } catch {
            throw .tagsTooLarge(limit: GossipLimits.default.maxMetaBytes)
        }
        swim.delegate.tags = tags
        return collect(swim.handle(.updateMeta(meta), now: now), now: now)
    }

    // MARK: - Timers and leave

    private mutating func runTimers(now: Timestamp, swimEffects: inout [SWIMEffect]) {
        swim.delegate.expireQueries(now: now)
        if now >= nextStaleLeaveCheck {
            nextStaleLeaveCheck = now + .seconds(1)
            if swim.delegate.takeStaleLeave(now: now) { swim.requestSync(at: now) }
        }
        if let deadline = swim.delegate.coalesceDeadline, now >= deadline { swim.delegate.flushCoalesced() }
        if now >= nextReap {
            nextReap = now + config.reapInterval
            swim.delegate.reap(now: now)
        }
        if now >= nextReconnect {
            nextReconnect = now + config.reconnectInterval
            swimEffects += reconnect(now: now)
        }
        if now >= nextQueueCheck {
            nextQueueCheck = now + config.queueCheckInterval
            checkQueues()
        }
        swimEffects += advanceLeave(now: now)
        for pending in forceLeaves where now >= pending.until {
            swim.delegate.log(.warn, "timed out broadcasting node removal")
            swim.delegate.effects.append(.forceLeaveFinished(pending.id, timedOut: true))
        }
        forceLeaves.removeAll { now >= $0.until }
    }

    /// serf `reconnect`: with probability failed/alive, try to rejoin one random failed member.
    private mutating func reconnect(now: Timestamp) -> [SWIMEffect] {
        let state = swim.delegate
        guard state.lifecycle == .alive, !state.failedMembers.isEmpty else { return [] }
        let failed = Double(state.failedMembers.count)
        let alive = max(1, Double(state.members.count - state.failedMembers.count - state.leftMembers.count))
        guard swim.delegate.random.unitInterval() <= failed / alive else {
            swim.delegate.log(.debug, "forgoing reconnect for random throttling")
            return []
        }
        let name = state.failedMembers[Int(swim.delegate.random.next() % UInt64(state.failedMembers.count))]
        guard let member = state.members[name]?.info else { return [] }
        swim.delegate.log(.info, "attempting reconnect to \(name) \(member.address)")
        nextInternalJoin += 1
        return swim.handle(.join(JoinID(nextInternalJoin), [member.address]), now: now)
    }

    private mutating func checkQueues() {
        let limit = config.maxQueueDepth
        for (name, count) in [("Intent", swim.delegate.intentQueue.count), ("Event", swim.delegate.eventQueue.count),
                              ("Query", swim.delegate.queryQueue.count)] where count > limit {
            swim.delegate.log(.warn, "\(name) queue depth (\(count)) exceeds limit (\(limit)), dropping messages!")
        }
        swim.delegate.intentQueue.prune(maxRetain: limit, finished: &swim.delegate.finishedTokens)
        swim.delegate.eventQueue.prune(maxRetain: limit, finished: &swim.delegate.finishedTokens)
        swim.delegate.queryQueue.prune(maxRetain: limit, finished: &swim.delegate.finishedTokens)
    }

    /// serf `Leave`, as a state machine with deadlines instead of blocking waits.
    private mutating func startLeave(now: Timestamp) -> [SWIMEffect] {
        guard swim.delegate.lifecycle == .alive else { return [] }
        swim.delegate.lifecycle = .leaving
        let message = SerfLeaveMessage(lamportTime: swim.delegate.clock.time, node: localName)
        swim.delegate.clock.increment()
        _ = swim.delegate.handleLeaveIntent(message, now: now)
        if swim.delegate.hasAliveMembers {
            let token = swim.delegate.newToken()
            leaveIntentToken = token
            swim.delegate.queueIntent(SerfMessage.leave(message).encoded, token: token)
            // Straight to every live member too, so each has the intent before memberlist's leave
            // arrives (serf alone gossips it a few times; a member that gets memberlist's leave
            // first reports us "failed").
            for member in swim.delegate.memberList where member.name != localName && member.status == .alive {
                swim.delegate.send(.leave(message), to: member.address)
            }
            leave = .intent(until: now + config.broadcastTimeout)
            return []
        }
        return leaveMemberlist(now: now)
    }

    private mutating func leaveMemberlist(now: Timestamp) -> [SWIMEffect] {
        leave = .memberlist(until: now + config.broadcastTimeout)
        return swim.handle(.leave, now: now)
    }

    private mutating func advanceLeave(now: Timestamp) -> [SWIMEffect] {
        switch leave {
        case .intent(let until)?:
            let sent = leaveIntentToken.map { swim.delegate.finishedTokens.contains($0) } ?? true
            if sent || now >= until {
                if !sent { swim.delegate.log(.warn, "timeout while waiting for graceful leave") }
                leaveIntentToken = nil
                return leaveMemberlist(now: now)
            }
        case .memberlist(let until)?:
            if now >= until {
                swim.delegate.log(.warn, "timeout waiting for leave broadcast")
                leave = .propagating(until: now + config.leavePropagateDelay)
            }
        case .propagating(let until)?:
            if now >= until {
                leave = .done
                swim.delegate.lifecycle = .left
                swim.delegate.effects.append(.leaveFinished)
            }
        case .done?, nil:
            break
        }
        return []
    }

    /// Merges SWIM's effects with serf's, intercepting what serf itself reacts to.
    private mutating func collect(_ swimEffects: [SWIMEffect], now: Timestamp? = nil) -> [SerfEffect] {
        var output: [SerfEffect] = []
        var more = swimEffects
        var rounds = 0
        while !more.isEmpty && rounds < 4 {
            rounds += 1
            let current = more
            more = []
            for effect in current {
                switch effect {
                case .joinFinished(let id, let joined, let errors):
                    guard userJoins.remove(id) != nil else { continue }  // reconnects are silent
                    if ignoreOldJoins.remove(id) != nil && ignoreOldJoins.isEmpty { swim.delegate.ignoringOldEvents = false }
                    if joined > 0, let now {
                        swim.delegate.broadcastJoin(swim.delegate.clock.time, now: now)
                        // Members joining at the same moment as us are caught by one more sync.
                        swim.requestSync(at: now + config.swim.triggeredSyncInterval)
                    }
                    output.append(.joinFinished(id, joined: joined, errors: errors))
                case .leaveBroadcastFinished:
                    if case .memberlist? = leave, let now {
                        leave = .propagating(until: now + config.leavePropagateDelay)
                    }
                default:
                    output.append(.swim(effect))
                }
            }
            more += swim.takeEffects()
        }
        // A leave intent finished during this input moves the leave along without waiting for a tick.
        if let now, case .intent? = leave, let token = leaveIntentToken, swim.delegate.finishedTokens.contains(token) {
            output += leaveMemberlistAndCollect(now: now)
        }
        if !forceLeaves.isEmpty && !swim.delegate.finishedTokens.isEmpty {
            let finished = Set(swim.delegate.finishedTokens)
            for pending in forceLeaves where finished.contains(pending.token) {
                output.append(.forceLeaveFinished(pending.id, timedOut: false))
            }
            forceLeaves.removeAll { finished.contains($0.token) }
        }
        swim.delegate.finishedTokens.removeAll { $0 != leaveIntentToken }
        if swim.delegate.viewLags {
            swim.delegate.viewLags = false
            if let now { swim.requestSync(at: now) }
        }
        output += swim.delegate.effects
        swim.delegate.effects.removeAll(keepingCapacity: true)
        return output
    }

    private mutating func leaveMemberlistAndCollect(now: Timestamp) -> [SerfEffect] {
        leaveIntentToken = nil
        let effects = leaveMemberlist(now: now)
        var output: [SerfEffect] = []
        for effect in effects {
            if case .leaveBroadcastFinished = effect {
                leave = .propagating(until: now + config.leavePropagateDelay)
            } else {
                output.append(.swim(effect))
            }
        }
        return output
    }
}
