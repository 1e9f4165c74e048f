import ConsulCore

// Gossip rounds, push/pull anti-entropy, join, leave and incoming streams
// (memberlist state.go gossip/pushPull, net.go handleConn, memberlist.go Join/Leave/UpdateNode).
extension SWIMCore {
    /// Sends queued broadcasts to `gossipNodes` random members that are alive, suspect, or dead
    /// recently enough to still refute. Nothing is sent when nothing is queued.
    mutating func gossip(now: Timestamp) {
        let me = localName
        let deadGrace = config.gossipToTheDeadTime
        let targets = randomMembers(config.gossipNodes) { node in
            guard node.name != me else { return false }
            switch node.state {
            case .alive, .suspect: return true
            case .dead: return now.duration(since: node.stateChange) <= deadGrace
            default: return false
            }
        }
        let available = config.udpBufferSize - Compound.headerOverhead - config.encryptionOverhead
        for target in targets {
            let messages = takeBroadcasts(overhead: Compound.perPartOverhead, limit: available)
            if messages.isEmpty { return }
            emit(.sendPacket(to: target.address, messages: messages, checksum: target.versions.protocolMax >= 5))
        }
    }

    /// Full state exchange with one random alive member.
    mutating func periodicPushPull(now: Timestamp) {
        let me = localName
        guard let target = randomMembers(1, where: { $0.name != me && $0.state == .alive }).first else { return }
        startPushPull(to: target.address, name: target.name, join: nil, now: now)
    }

    private mutating func startPushPull(to address: GossipAddress, name: String, join: JoinID?, now: Timestamp) {
        let id = newStreamID()
        streams[id] = .pushPull(join: join, target: name)
        emit(.openStream(id, to: address, message: .pushPull(localPushPull(join: join != nil)), expectsReply: true,
                         deadline: now + config.tcpTimeout))
    }

    /// Our side of a push/pull: every member we know plus the delegate's state.
    func localPushPull(join: Bool) -> PushPullMessage {
        PushPullMessage(join: join, nodes: members.map(\.pushState), userState: delegate.localState(join: join))
    }

    /// memberlist `mergeRemoteState`; returns why the remote state was refused, if it was.
    private mutating func mergeRemote(_ remote: PushPullMessage, now: Timestamp) -> String? {
        if let error = verifyProtocol(remote.nodes) { return error }
        mergeState(remote.nodes, now: now)
        if !remote.userState.isEmpty { delegate.mergeRemoteState(remote.userState, join: remote.join, now: now) }
        return nil
    }

    /// memberlist `Join`: a push/pull (with `Join` set) with every address; `joinFinished` reports
    /// how many answered and why the others did not.
    mutating func join(_ id: JoinID, addresses: [GossipAddress], now: Timestamp) {
        guard !addresses.isEmpty else {
            emit(.joinFinished(id, joined: 0, errors: []))
            return
        }
        joins[id] = PendingJoin(outstanding: addresses.count)
        for address in addresses { startPushPull(to: address, name: address.description, join: id, now: now) }
    }

    /// memberlist `Leave`: gossip `dead(self, from: self)`, which others record as "left". It is
    /// also sent straight to every live member: gossip alone sends it only `retransmitLimit` times
    /// (twice in the local profile), possibly to members that are gone, and a member that misses it
    /// sees us only as failed, once its own probes and suspicion time out.
    mutating func leave(now: Timestamp) {
        guard !hasLeft, let me = nodes[localName] else { return }
        hasLeft = true
        let token = newToken()
        leaveToken = token
        let dead = DeadMessage(incarnation: me.incarnation, node: localName, from: localName)
        deadNode(dead, token: token, now: now)
        for node in members where node.name != localName && !node.isDeadOrLeft {
            emit(.sendPacket(to: node.address, messages: [MemberlistMessage.dead(dead).encoded], checksum: node.versions.protocolMax >= 5))
        }
        let anyoneAlive = probeOrder.contains { $0 != localName && nodes[$0]?.isDeadOrLeft == false }
        if !anyoneAlive && leaveToken != nil {
            leaveToken = nil
            emit(.leaveBroadcastFinished)
        }
    }

    /// memberlist `UpdateNode`: new meta under a new incarnation.
    mutating func updateMeta(_ meta: [UInt8], now: Timestamp) {
        guard !hasLeft, let me = nodes[localName] else { return }
        incarnation &+= 1
        let alive = AliveMessage(
            incarnation: incarnation, node: localName, addr: me.address.ip, port: me.address.port, meta: meta, vsn: config.versions.vsn)
        aliveNode(alive, bootstrap: true, now: now)
    }

    /// A peer opened a stream: answer a push/pull with ours (before merging theirs, as memberlist
    /// does), a TCP ping with an ack, and hand user messages to the delegate.
    mutating func receiveStream(_ id: InboundStreamID, from: GossipAddress, message: StreamMessage, now: Timestamp) {
        switch message {
        case .pushPull(let remote):
            emit(.replyStream(id, .pushPull(localPushPull(join: remote.join))))
            if let error = mergeRemote(remote, now: now) {
                log(.error, "Failed push/pull merge: \(error) from=\(from)")
            }
        case .ping(let ping):
            guard ping.node.isEmpty || ping.node == localName else {
                log(.warn, "Got ping for unexpected node \(ping.node) from=\(from)")
                emit(.replyStream(id, nil))
                return
            }
            emit(.replyStream(id, .ack(AckMessage(seqNo: ping.seqNo))))
        case .user(let payload):
            emit(.replyStream(id, nil))
            delegate.notifyMessage(payload, now: now)
        case .ack, .error:
            log(.error, "Received invalid msgType (\(message.type.rawValue)) from=\(from)")
            emit(.replyStream(id, nil))
        }
    }

    /// A stream we opened ended.
    mutating func streamFinished(_ id: OutboundStreamID, outcome: StreamOutcome, now: Timestamp) {
        guard let purpose = streams.removeValue(forKey: id) else { return }
        switch purpose {
        case .fallbackPing(let sequence):
            fallbackPingFinished(sequence: sequence, outcome: outcome)
        case .pushPull(let join, let target):
            var failure: String?
            switch outcome {
            case .reply(.pushPull(let remote)):
                failure = mergeRemote(remote, now: now)
            case .reply(.error(let error)):
                failure = "remote error: \(error.error)"
            case .reply(let other):
                failure = "received invalid msgType (\(other.type.rawValue)), expected pushPullMsg (6)"
            case .sent:
                failure = "stream closed without an answer"
            case .failed(let error):
                failure = error.message
            }
            if let join {
                let host = target.split(separator: ":").first.map(String.init) ?? target
                updateJoin(join, error: failure.map { "Failed to join \(host): \($0)" })
                if let failure { log(.debug, "Failed to join \(host): \(failure)") }
            } else if let failure {
                log(.error, "Push/Pull with \(target) failed: \(failure)")
            }
        }
    }
}
