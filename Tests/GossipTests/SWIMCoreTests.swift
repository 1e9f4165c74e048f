import ConsulCore
import Testing
@testable import Gossip

@Suite struct SWIMMathTests {
    /// The numbers memberlist's util.go computes (util_test.go's table).
    @Test func formulasMatchMemberlist() {
        let second = Duration.seconds(1)
        #expect(SWIMMath.suspicionTimeout(mult: 3, nodes: 1, interval: second) == .seconds(3))
        #expect(SWIMMath.suspicionTimeout(mult: 3, nodes: 10, interval: second) == .seconds(3))
        #expect(SWIMMath.suspicionTimeout(mult: 3, nodes: 50, interval: second) == .milliseconds(5094))
        #expect(SWIMMath.suspicionTimeout(mult: 3, nodes: 100, interval: second) == .seconds(6))
        #expect(SWIMMath.suspicionTimeout(mult: 3, nodes: 1000, interval: second) == .seconds(9))
        #expect(SWIMMath.retransmitLimit(mult: 3, nodes: 0) == 0)
        #expect(SWIMMath.retransmitLimit(mult: 3, nodes: 1) == 3)
        #expect(SWIMMath.retransmitLimit(mult: 3, nodes: 99) == 6)
        #expect(SWIMMath.pushPullScale(interval: second, nodes: 32) == second)
        #expect(SWIMMath.pushPullScale(interval: second, nodes: 33) == .seconds(2))
        #expect(SWIMMath.pushPullScale(interval: second, nodes: 65) == .seconds(3))
        #expect(SWIMMath.pushPullScale(interval: second, nodes: 1024) == .seconds(6))
    }

    /// memberlist suspicion_test.go: k=3, min 2 s, max 30 s.
    @Test func suspicionShrinksWithConfirmations() {
        let expected: [Duration] = [.seconds(30), .seconds(16), .milliseconds(7810), .seconds(2)]
        for (confirmations, timeout) in expected.enumerated() {
            #expect(SWIMMath.suspicionTimeout(confirmations: confirmations, expected: 3, min: .seconds(2), max: .seconds(30)) == timeout)
        }
        #expect(SWIMMath.suspicionTimeout(confirmations: 9, expected: 3, min: .seconds(2), max: .seconds(30)) == .seconds(2))
    }
}

@Suite struct BroadcastQueueTests {
    @Test func leastSentThenLongestThenNewest() {
        var queue = BroadcastQueue(retransmitMult: 1, maxDepth: 100)
        var finished: [BroadcastToken] = []
        queue.queue([1], name: "a", finished: &finished)
        queue.queue([2, 2], name: "b", finished: &finished)
        queue.queue([3], name: "c", finished: &finished)
        // Longest first, then newest: b, c, a.
        #expect(queue.take(overhead: 0, limit: 100, nodes: 100, finished: &finished) == [[2, 2], [3], [1]])
        queue.queue([4], name: "d", finished: &finished)
        // d has never been sent, so it goes first even though the others are longer or older.
        #expect(queue.take(overhead: 0, limit: 1, nodes: 100, finished: &finished) == [[4]])
        #expect(finished.isEmpty)
    }

    @Test func retransmitLimitScalesWithLogN() {
        var queue = BroadcastQueue(retransmitMult: 2, maxDepth: 100)
        var finished: [BroadcastToken] = []
        queue.queue([9], name: nil, token: BroadcastToken(7), finished: &finished)
        // 9 members: 2 × ceil(log10 10) = 2 transmissions; 10 members would allow 4.
        #expect(queue.take(overhead: 2, limit: 100, nodes: 9, finished: &finished) == [[9]])
        #expect(finished.isEmpty)
        #expect(queue.take(overhead: 2, limit: 100, nodes: 9, finished: &finished) == [[9]])
        #expect(finished == [BroadcastToken(7)])
        #expect(queue.isEmpty)
        #expect(queue.take(overhead: 2, limit: 100, nodes: 9, finished: &finished).isEmpty)
    }

    @Test func namedBroadcastReplacesAndBudgetIsRespected() {
        var queue = BroadcastQueue(retransmitMult: 4, maxDepth: 2)
        var finished: [BroadcastToken] = []
        queue.queue([1, 1, 1], name: "x", token: BroadcastToken(1), finished: &finished)
        queue.queue([2], name: "x", finished: &finished)
        #expect(finished == [BroadcastToken(1)])
        #expect(queue.count == 1)
        queue.queue([3, 3, 3, 3], name: nil, finished: &finished)
        queue.queue([5], name: nil, token: BroadcastToken(5), finished: &finished)
        #expect(queue.count == 2)  // pruned to maxDepth
        // Only 3 bytes of budget: the 4-byte message waits.
        let taken = queue.take(overhead: 1, limit: 4, nodes: 10, finished: &finished)
        #expect(taken.allSatisfy { $0.count <= 3 })
    }
}

@Suite struct SWIMCoreTests {
    @Test func threeNodesJoinAndSeeEachOtherAlive() {
        var network = SWIMTestNetwork(count: 3)
        network.joinAll()
        for observer in 0..<3 {
            for subject in 0..<3 { #expect(network.state(of: subject, seenBy: observer) == .alive) }
            #expect(network.cores[observer].delegate.joined.sorted() == ["n0", "n1", "n2"])
        }
        #expect(network.joinResults[JoinID(1)]?.0 == 1)
        #expect(network.joinResults[JoinID(2)]?.1 == [])
        // Probes were answered directly and measured.
        #expect(network.cores.allSatisfy { !$0.delegate.pings.isEmpty })
    }

    @Test func joinToNobodyReportsWhy() {
        var network = SWIMTestNetwork(count: 2)
        network.crashed = [0]
        network.input(1, .join(JoinID(9), [SWIMTestNetwork.address(0)]))
        let result = network.joinResults[JoinID(9)]
        #expect(result?.0 == 0)
        #expect(result?.1 == ["Failed to join 127.0.0.1: connection refused"])
    }

    @Test func crashedMemberIsSuspectedThenDeclaredDead() {
        var network = SWIMTestNetwork(count: 5)
        network.joinAll()
        network.crashed = [4]
        let crashAt = network.now
        // Probe of n4 by each member within a probe round (≤ 5 s), then suspicion: at most
        // max = 6 × 4 × 1 s (k = 2 confirmations shrink it), well within 60 s.
        network.run(for: .seconds(29))
        for observer in 0..<4 {
            #expect(network.state(of: 4, seenBy: observer) == .dead)
            #expect(network.cores[observer].delegate.left == ["n4"])
        }
        #expect(network.logs.contains { $0.2.contains("Suspect n4 has failed") })
        // Dead members are forgotten after gossipToTheDeadTime (30 s) at the next probe wrap.
        network.run(for: .seconds(40))
        for observer in 0..<4 { #expect(network.state(of: 4, seenBy: observer) == nil) }
        #expect(network.now > crashAt)
    }

    @Test func suspectedMemberRefutesWithHigherIncarnation() {
        var network = SWIMTestNetwork(count: 3)
        network.joinAll()
        let before = network.cores[2].incarnation
        network.input(2, .packet(from: SWIMTestNetwork.address(0), messages: [
            .suspect(SuspectMessage(incarnation: before, node: "n2", from: "n0")),
        ]))
        #expect(network.cores[2].incarnation == before + 1)
        #expect(network.cores[2].healthScore == 1)
        // A dead accusation at a future incarnation is refuted above it.
        network.input(2, .packet(from: SWIMTestNetwork.address(0), messages: [
            .dead(DeadMessage(incarnation: before + 10, node: "n2", from: "n0")),
        ]))
        #expect(network.cores[2].incarnation == before + 11)
        network.run(for: .seconds(3))
        for observer in 0..<3 {
            #expect(network.state(of: 2, seenBy: observer) == .alive)
            #expect(network.cores[observer].nodes["n2"]?.incarnation == before + 11)
        }
    }

    @Test func staleAccusationsAndStaleAlivesAreIgnored() {
        var network = SWIMTestNetwork(count: 3)
        network.joinAll()
        // Bump n2 so n0 holds incarnation 5 for it.
        network.input(0, .packet(from: SWIMTestNetwork.address(1), messages: [
            .alive(AliveMessage(incarnation: 5, node: "n2", addr: [127, 0, 0, 3], port: 7946, meta: [0xFF, 0x80], vsn: ProtocolVersions.serfDefault.vsn)),
        ]))
        #expect(network.cores[0].nodes["n2"]?.incarnation == 5)
        network.input(0, .packet(from: SWIMTestNetwork.address(1), messages: [
            .suspect(SuspectMessage(incarnation: 4, node: "n2", from: "n1")),
            .dead(DeadMessage(incarnation: 3, node: "n2", from: "n1")),
            .alive(AliveMessage(incarnation: 5, node: "n2", addr: [127, 0, 0, 3], port: 7946, meta: [1], vsn: ProtocolVersions.serfDefault.vsn)),
        ]))
        #expect(network.state(of: 2, seenBy: 0) == .alive)
        #expect(network.cores[0].nodes["n2"]?.meta == [0xFF, 0x80])
    }

    @Test func indirectProbeKeepsMemberAliveWhenDirectPathIsCut() {
        var network = SWIMTestNetwork(count: 4)
        network.joinAll()
        // n0 cannot reach n3 over UDP, nor over TCP; the others can reach both.
        network.cutUDP = [[0, 3], [3, 0]]
        network.cutTCP = [[0, 3]]
        network.run(for: .seconds(30))
        for observer in 0..<4 { #expect(network.state(of: 3, seenBy: observer) == .alive) }
        #expect(network.logs.contains { $0.0 == 0 && $0.2.contains("Failed ping: n3") })
        #expect(!network.logs.contains { $0.2.contains("Suspect n3 has failed") })
    }

    @Test func relayNacksAtEightyPercentOfTheProbeTimeout() throws {
        var network = SWIMTestNetwork(count: 3)
        network.joinAll()
        var core = network.cores[0]
        let start = network.now
        let request = IndirectPingMessage(
            seqNo: 77, target: [127, 0, 0, 3], port: 7946, node: "n2", nack: true, sourceAddr: [127, 0, 0, 2], sourcePort: 7946,
            sourceNode: "n1")
        _ = core.handle(.packet(from: SWIMTestNetwork.address(1), messages: [.indirectPing(request)]), now: start)
        let nack = MemberlistMessage.nack(NackMessage(seqNo: 77)).encoded
        func sentNack(_ effects: [SWIMEffect]) -> Bool {
            effects.contains { if case .sendPacket(let to, let messages, _) = $0 { to == SWIMTestNetwork.address(1) && messages.first == nack } else { false } }
        }
        #expect(!sentNack(core.handle(.tick, now: start + .milliseconds(399))))
        #expect(sentNack(core.handle(.tick, now: start + .milliseconds(400))))
        #expect(!sentNack(core.handle(.tick, now: start + .milliseconds(600))))
    }

    @Test func tcpFallbackKeepsMemberAliveWhenUDPIsBlocked() {
        var network = SWIMTestNetwork(count: 2)
        network.joinAll()
        network.cutUDP = [[0, 1], [1, 0]]
        network.run(for: .seconds(10))
        #expect(network.state(of: 1, seenBy: 0) == .alive)
        #expect(network.logs.contains { $0.0 == 0 && $0.2.contains("Was able to connect to n1 but other probes failed") })
    }

    @Test func isolatedNodeLosesHealthAndProbesLessOften() {
        var network = SWIMTestNetwork(count: 5)
        network.joinAll()
        // n0 can send but hears nothing back: acks and nacks are all lost.
        network.cutUDP = Set((1..<5).map { [$0, 0] })
        network.cutTCP = Set((1..<5).map { [0, $0] })
        network.run(for: .seconds(20))
        #expect(network.cores[0].healthScore > 0)
        #expect(network.cores[1].healthScore == 0)
    }

    @Test func suspicionIsShortenedByIndependentConfirmations() {
        var network = SWIMTestNetwork(count: 6)
        network.joinAll()
        network.crashed = [5]
        // Only n0's view matters here: feed it suspicions directly and watch the deadline.
        var core = network.cores[0]
        _ = core.handle(.packet(from: SWIMTestNetwork.address(1), messages: [
            .suspect(SuspectMessage(incarnation: core.nodes["n5"]!.incarnation, node: "n5", from: "n1")),
        ]), now: network.now)
        let suspicion = core.suspicions["n5"]!
        // 6 members: min = 4 × 1 s, k = 2, starts at max = 24 s.
        #expect(suspicion.deadline == network.now + .seconds(24))
        _ = core.handle(.packet(from: SWIMTestNetwork.address(2), messages: [
            .suspect(SuspectMessage(incarnation: core.nodes["n5"]!.incarnation, node: "n5", from: "n2")),
        ]), now: network.now)
        let once = core.suspicions["n5"]!.deadline
        #expect(once < suspicion.deadline)
        // The same accuser again changes nothing; a second distinct one reaches the minimum.
        _ = core.handle(.packet(from: SWIMTestNetwork.address(2), messages: [
            .suspect(SuspectMessage(incarnation: core.nodes["n5"]!.incarnation, node: "n5", from: "n2")),
        ]), now: network.now)
        #expect(core.suspicions["n5"]!.deadline == once)
        _ = core.handle(.packet(from: SWIMTestNetwork.address(3), messages: [
            .suspect(SuspectMessage(incarnation: core.nodes["n5"]!.incarnation, node: "n5", from: "n3")),
        ]), now: network.now)
        #expect(core.suspicions["n5"]!.deadline == network.now + .seconds(4))
    }

    @Test func gracefulLeaveIsSeenAsLeft() {
        var network = SWIMTestNetwork(count: 4)
        network.joinAll()
        network.input(3, .leave)
        network.run(for: .seconds(2))
        #expect(network.leaveFinished == [3])
        for observer in 0..<3 {
            #expect(network.state(of: 3, seenBy: observer) == .left)
            #expect(network.cores[observer].delegate.left == ["n3"])
        }
        // A node that left ignores news of itself and does not refute.
        let incarnation = network.cores[3].incarnation
        network.input(3, .packet(from: SWIMTestNetwork.address(0), messages: [
            .suspect(SuspectMessage(incarnation: incarnation, node: "n3", from: "n0")),
        ]))
        #expect(network.cores[3].incarnation == incarnation)
    }

    @Test func leavingAloneFinishesAtOnce() {
        var network = SWIMTestNetwork(count: 1)
        network.input(0, .leave)
        #expect(network.leaveFinished == [0])
    }

    @Test func metaUpdateSpreadsAsUpdate() {
        var network = SWIMTestNetwork(count: 3)
        network.joinAll()
        network.input(1, .updateMeta([0xFF, 0x81, 0xA1, 0x61, 0xA1, 0x62]))
        network.run(for: .seconds(2))
        #expect(network.cores[0].nodes["n1"]?.meta == [0xFF, 0x81, 0xA1, 0x61, 0xA1, 0x62])
        #expect(network.cores[0].delegate.updated == ["n1"])
    }

    @Test func conflictingAddressIsReportedNotApplied() {
        var network = SWIMTestNetwork(count: 2)
        network.joinAll()
        network.input(0, .packet(from: SWIMTestNetwork.address(1), messages: [
            .alive(AliveMessage(incarnation: 99, node: "n1", addr: [10, 0, 0, 9], port: 7946, meta: [], vsn: ProtocolVersions.serfDefault.vsn)),
        ]))
        #expect(network.cores[0].nodes["n1"]?.address == SWIMTestNetwork.address(1))
        #expect(network.cores[0].delegate.conflicts == ["n1"])
    }

    @Test func delegateBroadcastsRidePackets() {
        var network = SWIMTestNetwork(count: 3)
        network.joinAll()
        network.cores[0].delegate.pendingBroadcasts = [[3, 0xC0], [3, 0xC2]]
        network.run(for: .seconds(1))
        // The recording delegate hands each message out once: it rides one datagram to one member.
        let received = (1..<3).flatMap { network.cores[$0].delegate.userMessages }
        #expect(received.contains([3, 0xC0]) && received.contains([3, 0xC2]))
    }

    @Test func unknownAndMalformedNewsIsHarmless() {
        var network = SWIMTestNetwork(count: 2)
        network.joinAll()
        network.input(0, .packet(from: SWIMTestNetwork.address(1), messages: [
            .suspect(SuspectMessage(incarnation: 1, node: "nobody", from: "n1")),
            .dead(DeadMessage(incarnation: 1, node: "nobody", from: "n1")),
            .alive(AliveMessage(incarnation: 1, node: "bad", addr: [1, 2, 3], port: 1, meta: [], vsn: [])),
            .alive(AliveMessage(incarnation: 1, node: "badvsn", addr: [1, 2, 3, 4], port: 1, meta: [], vsn: [0, 0, 0])),
            .ack(AckMessage(seqNo: 12345)),
            .nack(NackMessage(seqNo: 12345)),
            .indirectPing(IndirectPingMessage(seqNo: 1, target: [], port: 0, node: "x", nack: true)),
            .ping(PingMessage(seqNo: 1, node: "someone-else")),
        ]))
        #expect(network.cores[0].nodes.keys.sorted() == ["n0", "n1"])
        network.run(for: .seconds(5))
        #expect(network.state(of: 1, seenBy: 0) == .alive)
    }

    @Test func packedDatagramsStayWithinTheBudget() {
        var config = SWIMConfig.lan
        config.encryptionOverhead = 29
        var network = SWIMTestNetwork(count: 40, config: config)
        network.joinAll(settle: .seconds(2))
        // Many alive broadcasts were queued by the joins; every datagram built must fit.
        var core = network.cores[0]
        for _ in 0..<50 {
            for effect in core.handle(.tick, now: network.now) {
                guard case .sendPacket(_, let messages, _) = effect else { continue }
                let size = messages.count == 1 ? messages[0].count : Compound.encodedSize(partSizes: messages.map(\.count))
                #expect(size + 29 <= 1400 + 5)
            }
            network.now = network.now + .milliseconds(200)
        }
    }

    @Test func sameSeedSameBehaviour() {
        func trace(_ seed: UInt64) -> [String] {
            var network = SWIMTestNetwork(count: 6, seed: seed)
            network.joinAll()
            network.crashed = [2]
            network.run(for: .seconds(30))
            return network.logs.map { "\($0.0) \($0.2)" } + ["\(network.packetsSent)"]
        }
        #expect(trace(7) == trace(7))
        #expect(trace(7) != trace(8))
    }
}
