import ConsulCore

// Member state transitions (memberlist state.go aliveNode/suspectNode/deadNode/refute/mergeState).
extension SWIMCore {
    /// Dispatches one datagram message.
    mutating func receive(_ message: MemberlistMessage, from: GossipAddress, now: Timestamp) {
        switch message {
        case .ping(let ping): receivePing(ping, from: from)
        case .indirectPing(let request): receiveIndirectPing(request, from: from, now: now)
        case .ack(let ack): receiveAck(ack, now: now)
        case .nack(let nack): receiveNack(nack)
        case .suspect(let suspect): suspectNode(suspect, now: now)
        case .alive(var alive):
            if alive.port == 0 { alive.port = localAddress.port }
            aliveNode(alive, bootstrap: false, now: now)
        case .dead(let dead): deadNode(dead, now: now)
        case .user(let payload): delegate.notifyMessage(payload, now: now)
        case .error(let error): log(.error, "Unexpected error message in a packet: \(error.error) from=\(from)")
        }
    }

    /// Gossips that we are alive with an incarnation above `accused`, and counts the accusation
    /// against our own health (being accused often is a sign that we are the slow one).
    mutating func refute(accused: UInt32) {
        var next = incarnation &+ 1
        if accused >= next { next = accused &+ 1 }
        incarnation = next
        applyAwareness(1)
        guard var me = nodes[localName] else { return }
        me.incarnation = next
        nodes[localName] = me
        let alive = AliveMessage(
            incarnation: next, node: localName, addr: me.address.ip, port: me.address.port, meta: me.meta, vsn: me.versions.vsn)
        queueBroadcast(about: localName, .alive(alive))
    }

    /// Someone accuses us at an incarnation we have already refuted: it missed our refutation
    /// (memberlist ignores this, and the accuser's suspicion can then run out on a healthy
    /// member, e.g. when a healed minority's push/pull revives old news). Tell the accuser our
    /// current alive message directly; it is ordinary wire traffic for any memberlist peer.
    private mutating func answerStaleAccusation(from accuser: String) {
        guard accuser != localName, let target = nodes[accuser], !target.isDeadOrLeft, let me = nodes[localName] else { return }
        let alive = AliveMessage(
            incarnation: me.incarnation, node: localName, addr: me.address.ip, port: me.address.port, meta: me.meta, vsn: me.versions.vsn)
        emit(.sendPacket(to: target.address, messages: [MemberlistMessage.alive(alive).encoded], checksum: target.versions.protocolMax >= 5))
    }

    mutating func aliveNode(_ alive: AliveMessage, bootstrap: Bool, token: BroadcastToken? = nil, now: Timestamp) {
        if hasLeft && alive.node == localName { return }
        if alive.vsn.count >= 3 {
            let (pmin, pmax) = (alive.vsn[0], alive.vsn[1])
            if pmin == 0 || pmax == 0 || pmin > pmax {
                log(.warn, "Ignoring an alive message for '\(alive.node)' because protocol version(s) are wrong: \(pmin) <= \(alive.vsn[2]) <= \(pmax) should be >0")
                return
            }
        }
        guard alive.addr.count == 4 || alive.addr.count == 16 else {
            log(.warn, "Ignoring an alive message for '\(alive.node)' with a \(alive.addr.count)-byte address")
            return
        }
        guard !alive.node.isEmpty else { return }
        let address = GossipAddress(ip: alive.addr, port: alive.port)
        let isLocal = alive.node == localName
        var updatesNode = false
        var node: SWIMNode
        if let existing = nodes[alive.node] {
            node = existing
            if existing.address != address {
                let canReclaim = config.deadNodeReclaimTime > .zero
                    && now.duration(since: existing.stateChange) > config.deadNodeReclaimTime
                if existing.state == .left || (existing.state == .dead && canReclaim) {
                    log(.info, "Updating address for left or failed node \(existing.name) from \(existing.address) to \(address)")
                    updatesNode = true
                } else {
                    log(.error, "Conflicting address for \(existing.name). Mine: \(existing.address) Theirs: \(address) Old state: \(existing.state)")
                    var other = existing
                    other.address = address
                    other.meta = alive.meta
                    delegate.notifyConflict(existing: existing, other: other, now: now)
                    return
                }
            }
        } else {
            // A new member starts out dead so the transition below reports it as a join.
            node = SWIMNode(
                name: alive.node, address: address, meta: alive.meta, versions: alive.vsn.count > 5 ? ProtocolVersions(vsn: alive.vsn)! : .unknown,
                state: .dead, incarnation: 0, stateChange: now)
            insertNewNode(node)
        }
        if alive.incarnation <= node.incarnation && !isLocal && !updatesNode { return }
        if alive.incarnation < node.incarnation && isLocal { return }
        suspicions[alive.node] = nil
        let oldState = node.state
        let oldMeta = node.meta
        if !bootstrap && isLocal {
            // Someone gossips about us. The same incarnation with the same data is our own news
            // coming back; anything else (a restart elsewhere with our name, stale meta) is refuted.
            if alive.incarnation == node.incarnation && alive.meta == node.meta && alive.vsn == node.versions.vsn { return }
            refute(accused: alive.incarnation)
            log(.warn, "Refuting an alive message for '\(alive.node)' (\(address))")
            return
        }
        queueBroadcast(about: alive.node, .alive(alive), token: token)
        if alive.vsn.count >= 6, let versions = ProtocolVersions(vsn: alive.vsn) { node.versions = versions }
        node.incarnation = alive.incarnation
        node.meta = alive.meta
        node.address = address
        if node.state != .alive {
            node.state = .alive
            node.stateChange = now
        }
        nodes[alive.node] = node
        if oldState == .dead || oldState == .left {
            delegate.notifyJoin(node, now: now)
        } else if oldMeta != node.meta {
            delegate.notifyUpdate(node, now: now)
        }
    }

    mutating func suspectNode(_ suspect: SuspectMessage, now: Timestamp) {
        guard var node = nodes[suspect.node] else { return }
        if suspect.incarnation < node.incarnation {
            if suspect.node == localName { answerStaleAccusation(from: suspect.from) }
            return
        }
        // Another member's independent accusation shortens a running suspicion (Lifeguard).
        if var running = suspicions[suspect.node] {
            if confirm(&running, from: suspect.from) {
                suspicions[suspect.node] = running
                queueBroadcast(about: suspect.node, .suspect(suspect))
            }
            return
        }
        guard node.state == .alive else { return }
        if suspect.node == localName {
            refute(accused: suspect.incarnation)
            log(.warn, "Refuting a suspect message (from: \(suspect.from))")
            return
        }
        queueBroadcast(about: suspect.node, .suspect(suspect))
        node.incarnation = suspect.incarnation
        node.state = .suspect
        node.stateChange = now
        nodes[suspect.node] = node
        // k confirmations are expected before the nominal timeout; with too few members to give
        // them, the suspicion simply lasts the minimum.
        let members = probeOrder.count
        var expected = config.suspicionMult - 2
        if members - 2 < expected { expected = 0 }
        let minimum = SWIMMath.suspicionTimeout(mult: config.suspicionMult, nodes: members, interval: config.probeInterval)
        let maximum = minimum * config.suspicionMaxTimeoutMult
        suspicions[suspect.node] = Suspicion(
            expected: expected, min: minimum, max: maximum, start: now, confirmations: [suspect.from],
            deadline: now + (expected < 1 ? minimum : maximum))
        // Lifeguard's buddy system: tell the suspect itself at once rather than hoping gossip
        // reaches it before the timer runs out (memberlist only does so with its next probe).
        emit(.sendPacket(to: node.address, messages: [MemberlistMessage.suspect(suspect).encoded], checksum: node.versions.protocolMax >= 5))
    }

    /// memberlist `suspicion.Confirm`: a new, distinct accuser brings the deadline closer.
    private func confirm(_ suspicion: inout Suspicion, from: String) -> Bool {
        guard suspicion.confirmationCount < suspicion.expected, !suspicion.confirmations.contains(from) else { return false }
        suspicion.confirmations.insert(from)
        suspicion.confirmationCount += 1
        let timeout = SWIMMath.suspicionTimeout(
            confirmations: suspicion.confirmationCount, expected: suspicion.expected, min: suspicion.min, max: suspicion.max)
        suspicion.deadline = suspicion.start + timeout
        return true
    }

    mutating func deadNode(_ dead: DeadMessage, token: BroadcastToken? = nil, now: Timestamp) {
        guard var node = nodes[dead.node] else { return }
        if dead.incarnation < node.incarnation {
            if dead.node == localName && !hasLeft { answerStaleAccusation(from: dead.from) }
            return
        }
        suspicions[dead.node] = nil
        if node.isDeadOrLeft { return }
        if dead.node == localName && !hasLeft {
            refute(accused: dead.incarnation)
            log(.warn, "Refuting a dead message (from: \(dead.from))")
            return
        }
        queueBroadcast(about: dead.node, .dead(dead), token: token)
        node.incarnation = dead.incarnation
        node.state = dead.isLeave ? .left : .dead
        node.stateChange = now
        nodes[dead.node] = node
        delegate.notifyLeave(node, now: now)
    }

    /// Applies a push/pull's member list: alive as alive, left as left, and dead or suspect only
    /// as suspect — a remote opinion that someone died is checked by our own probes first.
    mutating func mergeState(_ remote: [PushNodeState], now: Timestamp) {
        for state in remote {
            switch state.state {
            case .alive:
                let alive = AliveMessage(
                    incarnation: state.incarnation, node: state.name, addr: state.addr,
                    port: state.port == 0 ? localAddress.port : state.port, meta: state.meta, vsn: state.vsn)
                aliveNode(alive, bootstrap: false, now: now)
            case .left:
                deadNode(DeadMessage(incarnation: state.incarnation, node: state.name, from: state.name), now: now)
            case .dead, .suspect:
                suspectNode(SuspectMessage(incarnation: state.incarnation, node: state.name, from: localName), now: now)
            default:
                continue
            }
        }
    }

    /// memberlist `verifyProtocol`: every alive member's current versions must lie within the range
    /// all of them (remote and local) understand. Unlike memberlist, members that are not alive are
    /// not checked, so one peer gossiping a version-less member cannot break every later sync.
    func verifyProtocol(_ remote: [PushNodeState]) -> String? {
        var maxPMin: UInt8 = 0, minPMax: UInt8 = .max, maxDMin: UInt8 = 0, minDMax: UInt8 = .max
        for state in remote where state.state == .alive {
            guard let versions = state.versions else { continue }
            maxPMin = max(maxPMin, versions.protocolMin)
            minPMax = min(minPMax, versions.protocolMax)
            maxDMin = max(maxDMin, versions.delegateMin)
            minDMax = min(minDMax, versions.delegateMax)
        }
        for name in probeOrder {
            guard let node = nodes[name], node.state == .alive else { continue }
            maxPMin = max(maxPMin, node.versions.protocolMin)
            minPMax = min(minPMax, node.versions.protocolMax)
            maxDMin = max(maxDMin, node.versions.delegateMin)
            minDMax = min(minDMax, node.versions.delegateMax)
        }
        func check(_ name: String, _ pcur: UInt8, _ dcur: UInt8) -> String? {
            if pcur < maxPMin || pcur > minPMax {
                return "Node '\(name)' protocol version (\(pcur)) is incompatible: [\(maxPMin), \(minPMax)]"
            }
            if dcur < maxDMin || dcur > minDMax {
                return "Node '\(name)' delegate protocol version (\(dcur)) is incompatible: [\(maxDMin), \(minDMax)]"
            }
            return nil
        }
        for state in remote where state.state == .alive {
            let versions = state.versions ?? .unknown
            if let error = check(state.name, versions.protocolCurrent, versions.delegateCurrent) { return error }
        }
        for name in probeOrder {
            guard let node = nodes[name], node.state == .alive else { continue }
            if let error = check(name, node.versions.protocolCurrent, node.versions.delegateCurrent) { return error }
        }
        return nil
    }
}
