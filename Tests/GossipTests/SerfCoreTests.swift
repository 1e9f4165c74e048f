import ConsulCore
import ConsulCrypto
import Testing
@testable import Gossip

@Suite struct SerfCoreTests {
    @Test func membersJoinWithTagsAndIntents() {
        var config = SerfConfig(swim: .lan, tags: ["role": "web", "dc": "dc1"])
        config.tags["role"] = "web"
        var network = SerfTestNetwork(count: 3, config: config)
        network.joinAll()
        for observer in 0..<3 {
            #expect(network.cores[observer].members.map(\.name) == ["n0", "n1", "n2"])
            #expect(network.cores[observer].members.allSatisfy { $0.status == .alive && $0.tags == ["role": "web", "dc": "dc1"] })
            #expect(Set(network.memberEvents[observer].filter { $0.kind == .join }.map(\.member.name)) == ["n0", "n1", "n2"])
        }
        #expect(network.joinResults[JoinID(1)]?.0 == 1)
        // Join intents moved the membership clocks forward everywhere.
        #expect(network.cores.allSatisfy { $0.clocks.member > 1 })
    }

    @Test func userEventReachesEveryoneOnce() throws {
        var network = SerfTestNetwork(count: 4)
        network.joinAll()
        let effects = try network.cores[1].userEvent(name: "deploy", payload: Array("v2".utf8), coalesce: false, now: network.now)
        network.perform(effects, from: 1)
        network.run(for: .seconds(3))
        for index in 0..<4 {
            #expect(network.userEvents[index].map(\.name) == ["deploy"])
            #expect(network.userEvents[index].first?.payload == Array("v2".utf8))
        }
        #expect(throws: SerfError.userEventTooLarge(limit: 512)) {
            _ = try network.cores[1].userEvent(name: "big", payload: Array(repeating: 1, count: 600), coalesce: false, now: network.now)
        }
    }

    @Test func coalescedEventsDeliverOnlyTheLatest() throws {
        var config = SerfConfig(swim: .lan)
        config.userCoalescePeriod = .seconds(2)
        config.userQuiescentPeriod = .seconds(1)
        var network = SerfTestNetwork(count: 3, config: config)
        network.joinAll()
        for version in ["a", "b", "c"] {
            network.perform(try network.cores[0].userEvent(name: "deploy", payload: Array(version.utf8), coalesce: true, now: network.now), from: 0)
            network.run(for: .milliseconds(100))
        }
        network.perform(try network.cores[0].userEvent(name: "other", payload: [], coalesce: false, now: network.now), from: 0)
        network.run(for: .seconds(4))
        for index in 0..<3 {
            #expect(network.userEvents[index].filter { $0.name == "deploy" }.map(\.payload) == [Array("c".utf8)])
            #expect(network.userEvents[index].filter { $0.name == "other" }.count == 1)
        }
    }

    @Test func queryCollectsAcksAndResponses() throws {
        var network = SerfTestNetwork(count: 4)
        network.joinAll()
        let (id, effects) = try network.cores[0].query(
            name: "who", payload: [1], parameters: SerfQueryParameters(requestAck: true, relayFactor: 1), now: network.now)
        network.perform(effects, from: 0)
        network.run(for: .seconds(10))
        #expect(network.responses[id]?.keys.sorted() == ["n0", "n1", "n2", "n3"])
        #expect(network.responses[id]?["n2"] == Array("n2".utf8))
        #expect(Set(network.acks[id] ?? []) == ["n0", "n1", "n2", "n3"])
        #expect(network.finishedQueries.contains(id))
        // Each node saw the query exactly once despite rebroadcasts and relays.
        #expect(network.queries.allSatisfy { $0.count == 1 })
    }

    @Test func queryFiltersSelectNodes() throws {
        var network = SerfTestNetwork(count: 3, config: SerfConfig(swim: .lan, tags: ["role": "db-primary"]))
        network.joinAll()
        let (byName, effects) = try network.cores[0].query(
            name: "q", payload: [], parameters: SerfQueryParameters(filterNodes: ["n2"]), now: network.now)
        network.perform(effects, from: 0)
        let (byTag, more) = try network.cores[0].query(
            name: "q", payload: [], parameters: SerfQueryParameters(filterTags: ["role": "^db-"]), now: network.now)
        network.perform(more, from: 0)
        let (noMatch, rest) = try network.cores[0].query(
            name: "q", payload: [], parameters: SerfQueryParameters(filterTags: ["role": "^web$"]), now: network.now)
        network.perform(rest, from: 0)
        network.run(for: .seconds(6))
        #expect(network.responses[byName]?.keys.sorted() == ["n2"])
        #expect(network.responses[byTag]?.keys.sorted() == ["n0", "n1", "n2"])
        #expect(network.responses[noMatch] == nil)
    }

    @Test func tagExpressionsMatchInLinearTimeAndBadOnesAreRefused() {
        #expect(SerfState.matches("^web", "web-1") == true)
        #expect(SerfState.matches("db", "web") == false)
        // A pattern that makes a backtracking engine spin is answered at once (linear matching).
        #expect(SerfState.matches("(a+)+$x", String(repeating: "a", count: 200) + "b") == false)
        #expect(SerfState.matches("(a+)+$", "baaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") == true)
        #expect(SerfState.matches("[", "x") == nil)
        #expect(SerfState.matches(String(repeating: "a", count: 300), "a") == nil)
    }

    @Test func keyManagementSpreadsAcrossThePool() throws {
        let first = GossipKey.generate()
        let second = GossipKey.generate()
        var network = SerfTestNetwork(count: 3, keyring: Keyring(primary: first))
        network.joinAll()
        let (install, effects) = try network.cores[1].keyOperation(.install, key: second.base64, now: network.now)
        network.perform(effects, from: 1)
        network.run(for: .seconds(5))
        #expect(network.keyResults[install]?.failure == nil)
        #expect(network.keyrings.allSatisfy { $0?.keys == [first, second] })
        let (use, more) = try network.cores[1].keyOperation(.use, key: second.base64, now: network.now)
        network.perform(more, from: 1)
        network.run(for: .seconds(5))
        #expect(network.keyResults[use]?.responses == 3)
        #expect(network.keyrings.allSatisfy { $0?.primaryKey == second })
        let (remove, again) = try network.cores[1].keyOperation(.remove, key: first.base64, now: network.now)
        network.perform(again, from: 1)
        network.run(for: .seconds(5))
        let (list, listing) = try network.cores[2].keyOperation(.list, key: nil, now: network.now)
        network.perform(listing, from: 2)
        network.run(for: .seconds(5))
        #expect(network.keyResults[remove]?.failure == nil)
        #expect(network.keyrings.allSatisfy { $0?.keys == [second] })
        #expect(network.keyResults[list]?.keys == [second.base64: 3])
        #expect(network.keyResults[list]?.primaryKeys == [second.base64: 3])
        // Removing the primary is refused by every member, and reported.
        let (refused, last) = try network.cores[0].keyOperation(.remove, key: second.base64, now: network.now)
        network.perform(last, from: 0)
        network.run(for: .seconds(5))
        #expect(network.keyResults[refused]?.failure == "3/3 nodes reported failure")
        #expect(network.keyResults[refused]?.messages["n1"] == "Removing the primary key is not allowed")
    }

    @Test func keyQueriesWithoutEncryptionSayWhy() throws {
        var network = SerfTestNetwork(count: 2)
        network.joinAll()
        let (id, effects) = try network.cores[0].keyOperation(.list, key: nil, now: network.now)
        network.perform(effects, from: 0)
        network.run(for: .seconds(5))
        #expect(network.keyResults[id]?.messages["n1"] == "Keyring is empty (encryption not enabled)")
        #expect(throws: SerfError.self) { _ = try network.cores[0].keyOperation(.install, key: "not base64!", now: network.now) }
    }

    @Test func crashedMemberFailsIsReconnectedAndReaped() {
        var config = SerfConfig(swim: .lan)
        config.reconnectInterval = .seconds(5)
        config.reapInterval = .seconds(5)
        config.reconnectTimeout = .seconds(300)
        var network = SerfTestNetwork(count: 3, config: config)
        network.joinAll()
        network.crashed = [2]
        network.run(for: .seconds(30))
        #expect(network.status(of: 2, seenBy: 0) == .failed)
        #expect(network.memberEvents[0].contains { $0.kind == .failed && $0.member.name == "n2" })
        // It comes back (same address): a reconnect attempt finds it.
        network.crashed = []
        network.run(for: .seconds(60))
        #expect(network.status(of: 2, seenBy: 0) == .alive)
        #expect(network.logs.contains { $0.1.contains("attempting reconnect to n2") })
        // Down for good: reaped after the reconnect timeout.
        network.crashed = [2]
        network.run(for: .seconds(400))
        #expect(network.status(of: 2, seenBy: 0) == nil)
        #expect(network.memberEvents[0].contains { $0.kind == .reap && $0.member.name == "n2" })
    }

    @Test func gracefulLeaveIsLeftEverywhere() {
        var network = SerfTestNetwork(count: 3)
        network.joinAll()
        network.input(2, .leave)
        network.run(for: .seconds(8))
        #expect(network.leaveFinished == [2])
        #expect(network.cores[2].lifecycle == .left)
        for observer in 0..<2 {
            #expect(network.status(of: 2, seenBy: observer) == .left)
            #expect(network.memberEvents[observer].contains { $0.kind == .leave && $0.member.name == "n2" })
        }
        // A late join of the departed node is refused.
        network.input(2, .join(JoinID(50), [SerfTestNetwork.address(0)], ignoreOld: false))
        #expect(network.joinResults[JoinID(50)]?.1 == ["Serf can't Join after Leave or Shutdown"])
    }

    @Test func staleLeaveIntentAboutALiveNodeIsRefuted() {
        var network = SerfTestNetwork(count: 3)
        network.joinAll()
        let old = SerfMessage.leave(SerfLeaveMessage(lamportTime: network.cores[1].clocks.member + 5, node: "n1"))
        network.input(0, .packet(from: SerfTestNetwork.address(2), messages: [old.memberlistMessage]))
        network.run(for: .seconds(3))
        #expect(network.logs.contains { $0.0 == 1 && $0.1.contains("Refuting an older leave intent") })
        for observer in 0..<3 { #expect(network.status(of: 1, seenBy: observer) == .alive) }
    }

    @Test func lateJoinerReplaysEventsUnlessIgnoringOld() throws {
        var network = SerfTestNetwork(count: 4)
        network.input(1, .join(JoinID(1), [SerfTestNetwork.address(0)], ignoreOld: false))
        network.run(for: .seconds(2))
        network.perform(try network.cores[0].userEvent(name: "old", payload: [], coalesce: false, now: network.now), from: 0)
        network.run(for: .seconds(3))
        network.input(2, .join(JoinID(2), [SerfTestNetwork.address(0)], ignoreOld: false))
        network.input(3, .join(JoinID(3), [SerfTestNetwork.address(0)], ignoreOld: true))
        network.run(for: .seconds(3))
        #expect(network.userEvents[2].map(\.name) == ["old"])
        #expect(network.userEvents[3].isEmpty)
    }

    @Test func coordinatesFollowMeasuredRoundTrips() {
        var network = SerfTestNetwork(count: 3)
        network.latency = .milliseconds(10)
        network.joinAll(settle: .seconds(40))
        let mine = network.cores[0].coordinate!
        let theirs = network.cores[0].coordinate(of: "n1")!
        // Every round trip is 20 ms; the estimate converges near it.
        let estimate = mine.distance(to: theirs)
        #expect(estimate > 0.010 && estimate < 0.030, "estimate \(estimate)")
    }

    @Test func malformedSerfMessagesAreDropped() {
        var network = SerfTestNetwork(count: 2)
        network.joinAll()
        network.input(0, .packet(from: SerfTestNetwork.address(1), messages: [
            .user([]), .user([99]), .user([3, 0xC1]), .user([9, 0x80]), .user([5, 0x80]), .user([2, 0x80]),
        ]))
        network.run(for: .seconds(2))
        #expect(network.status(of: 1, seenBy: 0) == .alive)
        #expect(network.logs.contains { $0.1.contains("Error decoding message") })
    }

    @Test func vivaldiConvergesToAFixedRoundTrip() {
        var a = VivaldiClient(random: SeededRandom(seed: 1))
        var b = VivaldiClient(random: SeededRandom(seed: 2))
        for _ in 0..<200 {
            _ = a.update(node: "b", other: b.coordinate, rtt: .milliseconds(50))
            _ = b.update(node: "a", other: a.coordinate, rtt: .milliseconds(50))
        }
        #expect(abs(a.coordinate.distance(to: b.coordinate) - 0.050) < 0.005)
        // Nonsense input is refused rather than poisoning the estimate.
        let nan = a.update(node: "x", other: VivaldiCoordinate(vector: [.nan], error: 1, adjustment: 0, height: 0), rtt: .milliseconds(1))
        let slow = a.update(node: "x", other: b.coordinate, rtt: .seconds(11))
        #expect(!nan && !slow)
    }

    @Test func voluntaryLeaveIsLeftEvenWhenTheIntentWasMissed() {
        var network = SerfTestNetwork(count: 3)
        network.joinAll()
        // n2's memberlist leave (dead from itself) reaches n0 without n2's serf leave intent.
        let incarnation = network.cores[0].swim.nodes["n2"]!.incarnation
        network.input(0, .packet(from: SerfTestNetwork.address(2), messages: [
            .dead(DeadMessage(incarnation: incarnation, node: "n2", from: "n2")),
        ]))
        #expect(network.status(of: 2, seenBy: 0) == .left)
        #expect(network.memberEvents[0].contains { $0.kind == .leave && $0.member.name == "n2" })
    }

    @Test func joinIntentOfAnUnknownMemberTriggersOneEarlySync() {
        var network = SerfTestNetwork(count: 2)
        network.joinAll()
        let join = SerfMessage.join(SerfJoinMessage(lamportTime: 99, node: "stranger"))
        var effects = network.cores[0].handle(.packet(from: SerfTestNetwork.address(1), messages: [join.memberlistMessage]), now: network.now)
        effects += network.cores[0].handle(.tick, now: network.now)
        let syncs = effects.filter { if case .swim(.openStream(_, _, .pushPull, _, _)) = $0 { true } else { false } }
        #expect(syncs.count == 1)
        // A second hint right away merges into the next allowed sync, a second later.
        effects = network.cores[0].handle(.packet(from: SerfTestNetwork.address(1), messages: [
            SerfMessage.join(SerfJoinMessage(lamportTime: 100, node: "other")).memberlistMessage,
        ]), now: network.now)
        effects += network.cores[0].handle(.tick, now: network.now)
        #expect(!effects.contains { if case .swim(.openStream(_, _, .pushPull, _, _)) = $0 { true } else { false } })
        #expect(network.cores[0].nextWakeup <= network.now + .seconds(1))
    }

    @Test func lamportClockWitnessesAndIncrements() {
        var clock = LamportClock()
        clock.witness(5)
        #expect(clock.time == 6)
        clock.witness(3)
        #expect(clock.time == 6)
        #expect(clock.increment() == 7)
    }
}
