import ConsulCore
import Testing
@testable import Gossip

/// serf `RemoveFailedNode[Prune]` / Consul `force-leave [-prune]` in the pure core.
@Suite struct SerfForceLeaveTests {
    /// A network of `count` joined nodes whose last node crashed and is failed everywhere.
    private func networkWithFailedLast(_ count: Int, config: SerfConfig = SerfConfig(swim: .lan)) -> SerfTestNetwork {
        var network = SerfTestNetwork(count: count, config: config)
        network.joinAll()
        network.crashed = [count - 1]
        network.run(for: .seconds(40))
        return network
    }

    private func forceLeave(
        _ network: inout SerfTestNetwork, from index: Int, _ name: String, prune: Bool, id: UInt64
    ) throws {
        let effects = try network.cores[index].forceLeave(name, prune: prune, id: ForceLeaveID(id), now: network.now)
        network.perform(effects, from: index)
    }

    @Test func failedMemberBecomesLeftEverywhereAndIsNoLongerReconnected() throws {
        var config = SerfConfig(swim: .lan)
        config.reconnectInterval = .seconds(5)
        var network = networkWithFailedLast(4, config: config)
        for observer in 0..<3 { #expect(network.status(of: 3, seenBy: observer) == .failed) }

        try forceLeave(&network, from: 0, "n3", prune: false, id: 1)
        network.run(for: .seconds(3))
        #expect(network.forceLeaves[ForceLeaveID(1)] == false)
        for observer in 0..<3 {
            #expect(network.status(of: 3, seenBy: observer) == .left)
            #expect(network.memberEvents[observer].contains { $0.kind == .leave && $0.member.name == "n3" })
        }
        #expect(network.logs.contains { $0.0 == 1 && $0.1.contains("EventMemberLeave (forced): n3") })

        // Left members are not reconnected (the failed list no longer holds it).
        let attempts = network.logs.count { $0.1.contains("attempting reconnect to n3") }
        network.run(for: .seconds(60))
        #expect(network.logs.count { $0.1.contains("attempting reconnect to n3") } == attempts)
        for observer in 0..<3 { #expect(network.status(of: 3, seenBy: observer) == .left) }
    }

    @Test func pruneForgetsFailedAndLeftMembersAtOnce() throws {
        var network = networkWithFailedLast(5)
        // n3 leaves gracefully and shuts down; n4 has crashed.
        network.input(3, .leave)
        network.run(for: .seconds(8))
        network.crashed.insert(3)
        for observer in 0..<3 {
            #expect(network.status(of: 3, seenBy: observer) == .left)
            #expect(network.status(of: 4, seenBy: observer) == .failed)
        }

        try forceLeave(&network, from: 1, "n4", prune: true, id: 1)
        try forceLeave(&network, from: 2, "n3", prune: true, id: 2)
        network.run(for: .seconds(3))
        #expect(network.forceLeaves == [ForceLeaveID(1): false, ForceLeaveID(2): false])
        for observer in 0..<3 {
            #expect(network.cores[observer].members.map(\.name) == ["n0", "n1", "n2"])
            #expect(network.memberEvents[observer].contains { $0.kind == .reap && $0.member.name == "n3" })
            #expect(network.memberEvents[observer].contains { $0.kind == .reap && $0.member.name == "n4" })
        }
        // Periodic push/pulls do not bring them back.
        network.run(for: .seconds(70))
        for observer in 0..<3 { #expect(network.cores[observer].members.map(\.name) == ["n0", "n1", "n2"]) }
    }

    /// A push/pull gives a left member the made-up intent time "status time + 1" (serf does the
    /// same), which may equal the time of a real prune that arrives afterwards.
    @Test func pruneOfALeftMemberAppliesEvenAtAnOlderTime() throws {
        var network = SerfTestNetwork(count: 3)
        network.joinAll()
        network.input(2, .leave)
        network.run(for: .seconds(8))
        network.crashed.insert(2)
        #expect(network.status(of: 2, seenBy: 0) == .left)
        let stale = SerfMessage.leave(SerfLeaveMessage(lamportTime: 1, node: "n2", prune: true))
        network.input(0, .packet(from: SerfTestNetwork.address(1), messages: [stale.memberlistMessage]))
        #expect(network.cores[0].member("n2") == nil)
        // A prune of an alive member at an old time stays ignored.
        network.input(1, .packet(from: SerfTestNetwork.address(0), messages: [
            SerfMessage.leave(SerfLeaveMessage(lamportTime: 0, node: "n0", prune: true)).memberlistMessage,
        ]))
        #expect(network.status(of: 0, seenBy: 1) == .alive)
    }

    @Test func unknownNameIsAnErrorNamingIt() throws {
        var network = SerfTestNetwork(count: 2)
        network.joinAll()
        #expect(throws: SerfError.unknownMember("ghost")) {
            _ = try network.cores[0].forceLeave("ghost", prune: false, id: ForceLeaveID(1), now: network.now)
        }
        #expect(SerfError.unknownMember("ghost").description == "agent: No node found with name 'ghost'")
        #expect(network.forceLeaves.isEmpty)
    }

    @Test func aliveMemberRefutesAForceLeave() throws {
        var network = SerfTestNetwork(count: 3)
        network.joinAll()
        try forceLeave(&network, from: 0, "n1", prune: false, id: 1)
        network.run(for: .seconds(5))
        #expect(network.logs.contains { $0.0 == 1 && $0.1.contains("Refuting an older leave intent") })
        for observer in 0..<3 { #expect(network.status(of: 1, seenBy: observer) == .alive) }
    }

    @Test func withNobodyAliveToTellItFinishesAtOnce() throws {
        var network = networkWithFailedLast(2)
        #expect(network.status(of: 1, seenBy: 0) == .failed)
        let effects = try network.cores[0].forceLeave("n1", prune: false, id: ForceLeaveID(7), now: network.now)
        #expect(effects.contains(.forceLeaveFinished(ForceLeaveID(7), timedOut: false)))
        #expect(network.status(of: 1, seenBy: 0) == .left)
    }

    @Test func intentNotGossipedInTimeIsReportedAsTimedOut() throws {
        var config = SerfConfig(swim: .lan)
        config.broadcastTimeout = .milliseconds(1)
        var network = networkWithFailedLast(3, config: config)
        try forceLeave(&network, from: 0, "n2", prune: false, id: 1)
        // Well before the next gossip round could send the intent out.
        network.run(for: .milliseconds(3))
        #expect(network.forceLeaves[ForceLeaveID(1)] == true)
        #expect(network.logs.contains { $0.0 == 0 && $0.1.contains("timed out broadcasting node removal") })
        // The intent still spreads: n1 heard it directly.
        network.run(for: .seconds(2))
        #expect(network.status(of: 2, seenBy: 1) == .left)
    }
}
