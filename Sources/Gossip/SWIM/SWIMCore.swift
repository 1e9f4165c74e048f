import ConsulCore

/// The SWIM failure detector and membership protocol with memberlist's Lifeguard extensions, as a
/// pure value: `handle(input, now)` changes state and returns effects; nothing here reads a clock,
/// touches a socket or draws unseeded randomness. The shell (or the simulator) carries out the
/// effects and calls `handle(.tick, now)` at `nextWakeup`.
///
/// Behaviour follows memberlist 0.2.2 (`state.go`, `net.go`, `suspicion.go`, `awareness.go`) so a
/// pool mixing our nodes and HashiCorp's converges and detects failures the same way:
/// - probing: round-robin over a list reshuffled at each wrap, ping → (after `probeTimeout`)
///   indirect pings through `indirectChecks` members plus a TCP fallback ping → suspect at the end
///   of the (awareness-scaled) probe interval;
/// - Lifeguard: missed nacks raise a local health score that stretches the probe interval; a
///   suspicion starts long and shrinks as independent members confirm it;
/// - incarnation numbers: alive beats suspect/dead only when newer; a member accused of being
///   suspect or dead refutes with a higher incarnation;
/// - gossip: per-member messages are piggy-backed on probes and sent every `gossipInterval` to
///   `gossipNodes` members, each at most `retransmitMult × ceil(log10(N+1))` times;
/// - push/pull: full state exchange over TCP with one member every `pushPullInterval`, and with
///   every address given to `join`.
package struct SWIMCore<Delegate: SWIMDelegate>: Sendable where Delegate: Sendable {
    package let config: SWIMConfig
    package let localName: String
    package internal(set) var localAddress: GossipAddress
    /// Everything above SWIM (serf); owned here so the core can consult it while handling an input.
    package var delegate: Delegate

    /// Every member we know, ourselves included, by name.
    package internal(set) var nodes: [String: SWIMNode] = [:]
    /// The same members in probe order (memberlist's `nodes` slice); reshuffled at each wrap.
    package internal(set) var probeOrder: [String] = []
    var probeIndex = 0
    var random: SeededRandom
    var sequenceNumber: UInt32 = 0
    package internal(set) var incarnation: UInt32 = 0
    /// Lifeguard local health: 0 is healthy, `awarenessMaxMultiplier - 1` the worst.
    package internal(set) var healthScore = 0
    var broadcasts: BroadcastQueue
    var nextToken: UInt64 = 0
    var leaveToken: BroadcastToken?
    package internal(set) var hasLeft = false

    var probe: ActiveProbe?
    var relays: [RelayedProbe] = []
    var suspicions: [String: Suspicion] = [:]
    var streams: [OutboundStreamID: StreamPurpose] = [:]
    var nextStreamID: UInt64 = 0
    var joins: [JoinID: PendingJoin] = [:]

    var nextProbe: Timestamp
    /// The probe ticker fired while a (slow, awareness-scaled) probe was still running; like Go's
    /// ticker channel, remember one such tick and probe again as soon as the current probe ends.
    var probeTickPending = false
    var nextGossip: Timestamp
    var nextPushPull: Timestamp
    /// A push/pull asked for by `requestSync`, and when the last such one ran.
    var triggeredSync: Timestamp?
    var lastTriggeredSync: Timestamp?

    /// Effects gathered while one input is handled.
    var effects: [SWIMEffect] = []

    /// Creates the core with ourselves alive at incarnation 1. Timers start at a random offset
    /// within their interval so members started together do not probe in lockstep.
    package init(
        name: String, address: GossipAddress, meta: [UInt8], config: SWIMConfig, delegate: Delegate,
        random: SeededRandom, now: Timestamp
    ) {
        self.config = config
        self.localName = name
        self.localAddress = address
        self.delegate = delegate
        self.random = random
        self.broadcasts = BroadcastQueue(retransmitMult: config.retransmitMult, maxDepth: config.maxQueuedBroadcasts)
        nextProbe = now
        nextGossip = now
        nextPushPull = now
        nextProbe = now + stagger(config.probeInterval)
        nextGossip = now + stagger(config.gossipInterval)
        nextPushPull = now + stagger(config.pushPullInterval)
        incarnation = 1
        let alive = AliveMessage(
            incarnation: incarnation, node: name, addr: address.ip, port: address.port, meta: meta, vsn: config.versions.vsn)
        aliveNode(alive, bootstrap: true, now: now)
        effects.removeAll()
    }

    // MARK: - Inputs

    package mutating func handle(_ input: SWIMInput, now: Timestamp) -> [SWIMEffect] {
        switch input {
        case .tick:
            runTimers(now: now)
        case .packet(let from, let messages):
            for message in messages { receive(message, from: from, now: now) }
        case .inboundStream(let id, let from, let message):
            receiveStream(id, from: from, message: message, now: now)
        case .streamResult(let id, let outcome):
            streamFinished(id, outcome: outcome, now: now)
        case .join(let id, let addresses):
            join(id, addresses: addresses, now: now)
        case .leave:
            leave(now: now)
        case .updateMeta(let meta):
            updateMeta(meta, now: now)
        }
        return takeEffects()
    }

    /// Effects produced outside `handle` (by a layer above calling into the core directly).
    package mutating func takeEffects() -> [SWIMEffect] {
        defer { effects.removeAll(keepingCapacity: true) }
        return effects
    }

    /// The earliest time at which `handle(.tick, ...)` has something to do.
    package var nextWakeup: Timestamp {
        var wake = min(nextProbe, nextPushPull)
        // A gossip round with nothing to send sends nothing: skip its wake-ups while idle. Once
        // something is queued, a gossip time already past means "at once".
        if !broadcasts.isEmpty || delegate.hasBroadcasts { wake = min(wake, nextGossip) }
        if let probe { wake = min(wake, probe.indirect ? probe.endAt : probe.timeoutAt) }
        if let triggeredSync { wake = min(wake, triggeredSync) }
        for relay in relays { wake = min(wake, relay.nextEvent) }
        for suspicion in suspicions.values { wake = min(wake, suspicion.deadline) }
        return wake
    }

    /// Members that are neither dead nor left (memberlist `NumMembers`), ourselves included.
    package var liveMemberCount: Int { nodes.values.reduce(0) { $0 + ($1.isDeadOrLeft ? 0 : 1) } }

    /// Members in probe order: deterministic, unlike iterating `nodes`.
    package var members: [SWIMNode] { probeOrder.compactMap { nodes[$0] } }


    // MARK: - Timers

    private mutating func runTimers(now: Timestamp) {
        expireRelays(now: now)
        if let current = probe {
            if !current.indirect && now >= current.timeoutAt { startIndirectProbe(now: now) }
            if let current = probe, current.indirect && now >= current.endAt { finishFailedProbe(current, now: now) }
        }
        expireSuspicions(now: now)
        if now >= nextProbe {
            nextProbe = advance(nextProbe, by: config.probeInterval, past: now)
            if probe == nil { probeNext(now: now) } else { probeTickPending = true }
        }
        if now >= nextGossip {
            nextGossip = advance(nextGossip, by: config.gossipInterval, past: now)
            gossip(now: now)
        }
        if now >= nextPushPull {
            nextPushPull = now + SWIMMath.pushPullScale(interval: config.pushPullInterval, nodes: probeOrder.count)
            periodicPushPull(now: now)
        }
        if let at = triggeredSync, now >= at {
            triggeredSync = nil
            lastTriggeredSync = now
            periodicPushPull(now: now)
        }
    }

    /// Asks for a push/pull with a random member no earlier than `at`, and no sooner than
    /// `triggeredSyncInterval` after the last one asked for this way (requests in between merge).
    package mutating func requestSync(at: Timestamp) {
        guard config.triggeredSyncInterval > .zero else { return }
        let earliest = lastTriggeredSync.map { max(at, $0 + config.triggeredSyncInterval) } ?? at
        triggeredSync = triggeredSync.map { min($0, earliest) } ?? earliest
    }

    /// A ticker's next firing after `now` (missed firings are skipped, as Go's tickers do).
    private func advance(_ deadline: Timestamp, by interval: Duration, past now: Timestamp) -> Timestamp {
        guard interval > .zero else { return Timestamp(nanoseconds: .max) }
        var next = deadline + interval
        if next <= now {
            let behind = now.duration(since: next).totalNanoseconds
            let steps = behind / interval.totalNanoseconds + 1
            next = next + interval * steps
        }
        return next
    }

    // MARK: - Shared helpers

    private mutating func stagger(_ interval: Duration) -> Duration {
        let nanos = interval.totalNanoseconds
        guard nanos > 0 else { return .zero }
        return .nanoseconds(Int64(random.next() % UInt64(nanos)))
    }

    mutating func nextSequenceNumber() -> UInt32 {
        sequenceNumber &+= 1
        return sequenceNumber
    }

    mutating func randomIndex(_ count: Int) -> Int {
        count <= 1 ? 0 : Int(random.next() % UInt64(count))
    }

    /// Up to `k` distinct members, in random order, that `include` accepts (memberlist
    /// `kRandomNodes`, which samples; this picks uniformly without replacement).
    mutating func randomMembers(_ k: Int, where include: (SWIMNode) -> Bool) -> [SWIMNode] {
        guard k > 0 else { return [] }
        var eligible = probeOrder.compactMap { name -> SWIMNode? in
            guard let node = nodes[name], include(node) else { return nil }
            return node
        }
        let count = min(k, eligible.count)
        for index in 0..<count {
            let pick = index + randomIndex(eligible.count - index)
            eligible.swapAt(index, pick)
        }
        return Array(eligible.prefix(count))
    }

    mutating func log(_ level: GossipLogLevel, _ text: String) {
        effects.append(.log(level, "memberlist: " + text))
    }

    mutating func emit(_ effect: SWIMEffect) {
        effects.append(effect)
    }

    /// Lifeguard: apply a health delta, clamped to `0 ..< awarenessMaxMultiplier`.
    mutating func applyAwareness(_ delta: Int) {
        healthScore = min(max(0, healthScore + delta), max(0, config.awarenessMaxMultiplier - 1))
    }

    /// Queues a per-member broadcast (it replaces any queued one about the same member).
    mutating func queueBroadcast(about node: String, _ message: MemberlistMessage, token: BroadcastToken? = nil) {
        var finished: [BroadcastToken] = []
        broadcasts.queue(message.encoded, name: node, token: token, finished: &finished)
        noteFinished(finished)
    }

    private mutating func noteFinished(_ tokens: [BroadcastToken]) {
        guard let leaveToken, tokens.contains(leaveToken) else { return }
        self.leaveToken = nil
        emit(.leaveBroadcastFinished)
    }

    /// Queued broadcasts for one datagram: ours first, then the delegate's wrapped as user messages
    /// (memberlist `getBroadcasts`).
    mutating func takeBroadcasts(overhead: Int, limit: Int) -> [[UInt8]] {
        var finished: [BroadcastToken] = []
        var messages = broadcasts.take(overhead: overhead, limit: limit, nodes: probeOrder.count, finished: &finished)
        noteFinished(finished)
        let used = messages.reduce(0) { $0 + $1.count + overhead }
        let available = limit - used
        if available > overhead + 1 {
            for payload in delegate.broadcasts(overhead: overhead + 1, limit: available) {
                messages.append([MemberlistMessageType.user.rawValue] + payload)
            }
        }
        return messages
    }

    /// memberlist `sendMsg`: one message plus whatever broadcasts fit beside it. Sent by address,
    /// so without a CRC (memberlist's node lookup by address never matches here).
    mutating func sendWithPiggyback(_ message: MemberlistMessage, to address: GossipAddress) {
        let encoded = message.encoded
        let available = config.udpBufferSize - encoded.count - Compound.headerOverhead - config.encryptionOverhead
        let extra = takeBroadcasts(overhead: Compound.perPartOverhead, limit: available)
        emit(.sendPacket(to: address, messages: [encoded] + extra, checksum: false))
    }

    mutating func newStreamID() -> OutboundStreamID {
        nextStreamID += 1
        return OutboundStreamID(nextStreamID)
    }

    mutating func newToken() -> BroadcastToken {
        nextToken += 1
        return BroadcastToken(nextToken)
    }

    /// The probe in flight ended at `now`: the next one starts at the next ticker firing, or at
    /// once if one fired meanwhile.
    mutating func probeEnded(now: Timestamp) {
        probe = nil
        nextProbe = probeTickPending ? now : max(nextProbe, now)
        probeTickPending = false
    }

    // MARK: - Probe bookkeeping types

    /// The one probe in flight (memberlist probes one member at a time).
    struct ActiveProbe {
        var sequence: UInt32
        var target: String
        /// Incarnation and state of the target when the probe started: the suspicion raised on
        /// failure is about this incarnation.
        var targetIncarnation: UInt32
        var sentAt: Timestamp
        var timeoutAt: Timestamp
        var endAt: Timestamp
        var indirect = false
        var expectedNacks = 0
        var nacks = 0
        var fallbackStream: OutboundStreamID?
        var fallbackSucceeded = false
    }

    /// An indirect probe we run for another member.
    struct RelayedProbe {
        var localSequence: UInt32
        var requesterSequence: UInt32
        var requester: GossipAddress
        /// When to send the nack, if one was asked for and no ack came (nil once sent or not wanted).
        var nackAt: Timestamp?
        /// An ack arriving until then is still forwarded.
        var deadline: Timestamp

        var nextEvent: Timestamp { nackAt.map { min($0, deadline) } ?? deadline }
    }

    /// A running suspicion timer (memberlist `suspicion`).
    struct Suspicion {
        var expected: Int
        var min: Duration
        var max: Duration
        var start: Timestamp
        var confirmations: Set<String>
        var confirmationCount = 0
        var deadline: Timestamp
    }

    enum StreamPurpose {
        case pushPull(join: JoinID?, target: String)
        case fallbackPing(sequence: UInt32)
    }

    struct PendingJoin {
        var outstanding: Int
        var joined = 0
        var errors: [String] = []
    }

    private mutating func expireRelays(now: Timestamp) {
        guard relays.contains(where: { $0.nextEvent <= now }) else { return }
        for index in relays.indices {
            guard let nackAt = relays[index].nackAt, nackAt <= now else { continue }
            relays[index].nackAt = nil
            sendWithPiggyback(.nack(NackMessage(seqNo: relays[index].requesterSequence)), to: relays[index].requester)
        }
        relays.removeAll { $0.deadline <= now }
    }

    private mutating func expireSuspicions(now: Timestamp) {
        guard suspicions.values.contains(where: { $0.deadline <= now }) else { return }
        let due = suspicions.filter { $0.value.deadline <= now }.map { $0.key }.sorted()
        for name in due {
            guard let suspicion = suspicions.removeValue(forKey: name) else { continue }
            guard let node = nodes[name], node.state == .suspect else { continue }
            log(.info, "Marking \(name) as failed, suspect timeout reached (\(suspicion.confirmationCount) peer confirmations)")
            emit(.suspicionExpired(node: name, confirmations: suspicion.confirmationCount))
            deadNode(DeadMessage(incarnation: node.incarnation, node: name, from: localName), now: now)
        }
    }

    mutating func updateJoin(_ id: JoinID, error: String?) {
        guard var join = joins[id] else { return }
        join.outstanding -= 1
        if let error { join.errors.append(error) } else { join.joined += 1 }
        if join.outstanding <= 0 {
            joins[id] = nil
            emit(.joinFinished(id, joined: join.joined, errors: join.errors))
        } else {
            joins[id] = join
        }
    }

    /// Removes members dead for longer than `gossipToTheDeadTime` (and left ones likewise, so a
    /// long-lived node does not accumulate tombstones) and reshuffles the probe order.
    mutating func resetProbeOrder(now: Timestamp) {
        let expired = probeOrder.filter { name in
            guard let node = nodes[name], node.isDeadOrLeft, name != localName else { return false }
            return now.duration(since: node.stateChange) > config.gossipToTheDeadTime
        }
        if !expired.isEmpty {
            let gone = Set(expired)
            for name in expired {
                nodes[name] = nil
                suspicions[name] = nil
            }
            probeOrder.removeAll { gone.contains($0) }
        }
        for index in probeOrder.indices.dropLast().reversed() {
            probeOrder.swapAt(index + 1, randomIndex(index + 2))
        }
    }

    /// Adds a member we have not heard of at a random position of the probe order, which keeps
    /// the failure-detection bound low on average (memberlist aliveNode).
    mutating func insertNewNode(_ node: SWIMNode) {
        nodes[node.name] = node
        let count = probeOrder.count
        probeOrder.append(node.name)
        probeOrder.swapAt(randomIndex(count), count)
    }
}
