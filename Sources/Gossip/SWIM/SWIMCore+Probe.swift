import ConsulCore

// Failure detection: direct probe, indirect probes with nacks, TCP fallback, Lifeguard awareness
// (memberlist state.go probe/probeNode and net.go handlePing/handleIndirectPing/handleAck/handleNack).
extension SWIMCore {
    /// Starts a probe of the next member in round-robin order, reshuffling at each wrap.
    mutating func probeNext(now: Timestamp) {
        var checked = 0
        while checked < probeOrder.count {
            if probeIndex >= probeOrder.count {
                resetProbeOrder(now: now)
                probeIndex = 0
                checked += 1
                continue
            }
            let name = probeOrder[probeIndex]
            probeIndex += 1
            guard name != localName, let node = nodes[name], !node.isDeadOrLeft else {
                checked += 1
                continue
            }
            probeNode(node, now: now)
            return
        }
    }

    private mutating func probeNode(_ node: SWIMNode, now: Timestamp) {
        // Lifeguard: a node that doubts its own health probes less often (and gives indirect
        // probes and the TCP fallback longer), instead of accusing others of its own trouble.
        let interval = config.probeInterval * (healthScore + 1)
        let sequence = nextSequenceNumber()
        let ping = PingMessage(
            seqNo: sequence, node: node.name, sourceAddr: localAddress.ip, sourcePort: localAddress.port, sourceNode: localName)
        if node.state == .alive {
            sendWithPiggyback(.ping(ping), to: node.address)
        } else {
            // A suspect gets the accusation with the ping, so it can refute at once.
            let suspect = SuspectMessage(incarnation: node.incarnation, node: node.name, from: localName)
            emit(.sendPacket(
                to: node.address, messages: [MemberlistMessage.ping(ping).encoded, MemberlistMessage.suspect(suspect).encoded],
                checksum: node.versions.protocolMax >= 5))
        }
        probe = ActiveProbe(
            sequence: sequence, target: node.name, targetIncarnation: node.incarnation, sentAt: now,
            timeoutAt: now + config.probeTimeout, endAt: now + interval)
    }

    /// No direct ack within `probeTimeout`: ask `indirectChecks` alive members to probe, and try TCP.
    mutating func startIndirectProbe(now: Timestamp) {
        guard var current = probe else { return }
        current.indirect = true
        guard let target = nodes[current.target] else {
            probe = current
            return
        }
        log(.debug, "Failed ping: \(target.name) (timeout reached)")
        let me = localName
        let peers = randomMembers(config.indirectChecks) { $0.name != me && $0.name != target.name && $0.state == .alive }
        for peer in peers {
            // Only members speaking protocol 4+ send nacks.
            let wantsNack = peer.versions.protocolMax >= 4
            if wantsNack { current.expectedNacks += 1 }
            let request = IndirectPingMessage(
                seqNo: current.sequence, target: target.address.ip, port: target.address.port, node: target.name, nack: wantsNack,
                sourceAddr: localAddress.ip, sourcePort: localAddress.port, sourceNode: localName)
            sendWithPiggyback(.indirectPing(request), to: peer.address)
        }
        // The TCP fallback catches a member whose UDP is blocked but which is otherwise fine.
        if !config.disableTCPPings && target.versions.protocolMax >= 3 {
            let id = newStreamID()
            let ping = PingMessage(
                seqNo: current.sequence, node: target.name, sourceAddr: localAddress.ip, sourcePort: localAddress.port,
                sourceNode: localName)
            streams[id] = .fallbackPing(sequence: current.sequence)
            current.fallbackStream = id
            emit(.openStream(id, to: target.address, message: .ping(ping), expectsReply: true, deadline: current.endAt))
        }
        probe = current
    }

    /// The probe interval ended without an ack: unless TCP got through, suspect the target and
    /// let missed nacks count against our own health.
    mutating func finishFailedProbe(_ current: ActiveProbe, now: Timestamp) {
        probeEnded(now: now)
        if current.fallbackSucceeded {
            log(.warn, "Was able to connect to \(current.target) but other probes failed, network may be misconfigured")
            applyAwareness(-1)
            return
        }
        if current.expectedNacks > 0 {
            applyAwareness(current.expectedNacks - min(current.nacks, current.expectedNacks))
        } else {
            applyAwareness(1)
        }
        guard nodes[current.target] != nil else { return }
        log(.info, "Suspect \(current.target) has failed, no acks received")
        suspectNode(SuspectMessage(incarnation: current.targetIncarnation, node: current.target, from: localName), now: now)
    }

    /// An ack for our probe (direct or relayed), or for a probe we relay for someone else.
    mutating func receiveAck(_ ack: AckMessage, now: Timestamp) {
        if let current = probe, current.sequence == ack.seqNo {
            probeEnded(now: now)
            applyAwareness(-1)
            if let fallback = current.fallbackStream { streams[fallback] = nil }
            // Only a direct answer measures the round trip (memberlist reports it only then).
            if !current.indirect, let node = nodes[current.target] {
                let rtt = now.duration(since: current.sentAt)
                emit(.probeCompleted(node: node.name, rtt: rtt))
                delegate.notifyPingComplete(node, rtt: rtt, payload: ack.payload, now: now)
            }
            return
        }
        if let index = relays.firstIndex(where: { $0.localSequence == ack.seqNo }) {
            let relay = relays.remove(at: index)
            sendWithPiggyback(.ack(AckMessage(seqNo: relay.requesterSequence)), to: relay.requester)
        }
    }

    mutating func receiveNack(_ nack: NackMessage) {
        guard var current = probe, current.sequence == nack.seqNo, current.indirect else { return }
        current.nacks += 1
        probe = current
    }

    /// Answers a ping addressed to us (or to no one in particular) with our ack payload.
    mutating func receivePing(_ ping: PingMessage, from: GossipAddress) {
        guard ping.node.isEmpty || ping.node == localName else {
            log(.warn, "Got ping for unexpected node '\(ping.node)' from=\(from)")
            return
        }
        let replyTo = !ping.sourceAddr.isEmpty && ping.sourcePort > 0 ? GossipAddress(ip: ping.sourceAddr, port: ping.sourcePort) : from
        sendWithPiggyback(.ack(AckMessage(seqNo: ping.seqNo, payload: delegate.ackPayload())), to: replyTo)
    }

    /// Probes a member for someone else and relays the ack (or a nack after `probeTimeout`).
    mutating func receiveIndirectPing(_ request: IndirectPingMessage, from: GossipAddress, now: Timestamp) {
        let requester = !request.sourceAddr.isEmpty && request.sourcePort > 0
            ? GossipAddress(ip: request.sourceAddr, port: request.sourcePort) : from
        guard request.target.count == 4 || request.target.count == 16 else {
            log(.error, "Indirect ping with a bad target address from=\(from)")
            return
        }
        guard relays.count < config.maxRelayedProbes else {
            log(.warn, "Too many indirect probes in flight, dropping the request from=\(from)")
            return
        }
        let sequence = nextSequenceNumber()
        // The nack goes out at 80 % of the probe timeout, as the Lifeguard paper has it (memberlist
        // waits the whole timeout, so its nacks race the end of the requester's probe interval and
        // whoever probes a dead member counts the late nacks against its own health).
        relays.append(RelayedProbe(
            localSequence: sequence, requesterSequence: request.seqNo, requester: requester,
            nackAt: request.nack ? now + config.probeTimeout * 4 / 5 : nil, deadline: now + config.probeTimeout))
        let port = request.port == 0 ? localAddress.port : request.port
        let ping = PingMessage(
            seqNo: sequence, node: request.node, sourceAddr: localAddress.ip, sourcePort: localAddress.port, sourceNode: localName)
        sendWithPiggyback(.ping(ping), to: GossipAddress(ip: request.target, port: port))
    }

    /// The TCP fallback ping ended.
    mutating func fallbackPingFinished(sequence: UInt32, outcome: StreamOutcome) {
        guard var current = probe, current.sequence == sequence else { return }
        switch outcome {
        case .reply(.ack(let ack)) where ack.seqNo == sequence:
            current.fallbackSucceeded = true
        case .reply(.ack(let ack)):
            log(.error, "Failed fallback ping: Sequence number from ack (\(ack.seqNo)) doesn't match ping (\(sequence))")
        case .reply(let other):
            log(.error, "Failed fallback ping: Unexpected msgType (\(other.type.rawValue))")
        case .failed(let error):
            log(.debug, "Failed fallback ping: \(error)")
        case .sent:
            break
        }
        probe = current
    }
}
