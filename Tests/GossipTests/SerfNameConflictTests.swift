import ConsulCore
import Testing
@testable import Gossip

/// serf's `_serf_conflict` resolution: when another address claims our name, the pool votes.
@Suite struct SerfNameConflictTests {
    /// An alive message claiming `name` from an address no node of the network uses.
    private func claim(_ name: String, incarnation: UInt32 = 50) -> MemberlistMessage {
        let elsewhere = GossipAddress(ip: [127, 0, 0, 200], port: 7946)
        return .alive(AliveMessage(
            incarnation: incarnation, node: name, addr: elsewhere.ip, port: elsewhere.port, meta: [0xFF, 0x80],
            vsn: ProtocolVersions.serfDefault.vsn))
    }

    @Test func majorityRule() {
        func vote(_ matching: Int, of responses: Int) -> SerfNameConflict {
            var vote = SerfNameConflict(name: "x", ourAddress: SerfTestNetwork.address(0), otherAddress: SerfTestNetwork.address(1))
            vote.matching = matching
            vote.responses = responses
            return vote
        }
        #expect(vote(2, of: 3).kept)
        #expect(!vote(2, of: 4).kept)
        #expect(vote(3, of: 4).kept)
        #expect(!vote(0, of: 1).kept)
        #expect(vote(0, of: 0).kept)
    }

    @Test func impostorIsOutvotedAndStops() {
        var network = SerfTestNetwork(count: 4)
        network.joinAll()
        let impostor = network.addNode(named: "n1")
        network.input(impostor, .join(JoinID(99), [SerfTestNetwork.address(0)], ignoreOld: false))
        network.run(for: .seconds(10))
        let losers = network.conflicts.filter { !$0.1.kept }
        #expect(losers.map(\.0) == [impostor])
        #expect(losers.first?.1.responses == 3 && losers.first?.1.matching == 0)
        #expect(losers.first?.1.otherAddress == SerfTestNetwork.address(1))
        #expect(network.logs.contains { $0.0 == impostor && $0.1.contains("minority in name conflict resolution, quitting [0 / 3]") })
        // The pool keeps the original.
        for observer in 0..<4 {
            #expect(network.cores[observer].member("n1")?.address == SerfTestNetwork.address(1))
            #expect(network.status(of: 1, seenBy: observer) == .alive)
        }
    }

    @Test func rightfulOwnerKeepsItsName() {
        var network = SerfTestNetwork(count: 4)
        network.joinAll()
        network.input(1, .packet(from: SerfTestNetwork.address(2), messages: [claim("n1")]))
        network.run(for: .seconds(10))
        #expect(network.conflicts.count == 1)
        #expect(network.conflicts.first?.0 == 1)
        #expect(network.conflicts.first?.1.kept == true)
        #expect(network.conflicts.first?.1.matching == 3 && network.conflicts.first?.1.responses == 3)
        #expect(!network.crashed.contains(1))
        #expect(network.logs.contains { $0.0 == 1 && $0.1.contains("majority in name conflict resolution [3 / 3]") })
        // Repeated claims while a vote runs start no second vote.
        network.input(1, .packet(from: SerfTestNetwork.address(2), messages: [claim("n1", incarnation: 60)]))
        network.input(1, .packet(from: SerfTestNetwork.address(2), messages: [claim("n1", incarnation: 61)]))
        network.run(for: .seconds(10))
        #expect(network.conflicts.count == 2)
    }

    @Test func withoutAnswersTheNameIsKept() {
        var network = SerfTestNetwork(count: 1)
        network.input(0, .packet(from: SerfTestNetwork.address(5), messages: [claim("n0")]))
        network.run(for: .seconds(10))
        #expect(network.conflicts.map(\.1.kept) == [true])
        #expect(network.logs.contains { $0.1.contains("no answers in name conflict resolution") })
    }

    @Test func resolutionCanBeTurnedOff() {
        var config = SerfConfig(swim: .lan)
        config.enableNameConflictResolution = false
        var network = SerfTestNetwork(count: 3, config: config)
        network.joinAll()
        network.input(1, .packet(from: SerfTestNetwork.address(2), messages: [claim("n1")]))
        network.run(for: .seconds(10))
        #expect(network.conflicts.isEmpty)
        #expect(network.logs.contains { $0.1.contains("Names must be unique! (Resolution enabled: false)") })
    }

    @Test func answersAreDecodedDefensively() {
        var vote = SerfNameConflict(name: "x", ourAddress: SerfTestNetwork.address(0), otherAddress: SerfTestNetwork.address(1))
        let state = SerfTestNetwork(count: 1).cores[0].swim.delegate
        for payload: [UInt8] in [[], [6], [6, 0xC1], [5, 0x80], [6, 0x91, 0x01]] { state.countConflictVote(&vote, payload: payload) }
        #expect(vote.responses == 0)
        // "No such member" (nil) is an answer that does not back us, as in serf.
        state.countConflictVote(&vote, payload: SerfMessage.conflictResponse(nil).encoded)
        let mapped = SerfMember(
            name: "x", addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 127, 0, 0, 1], port: 7946, tags: [:], status: 1,
            versions: .serfDefault)
        state.countConflictVote(&vote, payload: SerfMessage.conflictResponse(mapped).encoded)
        #expect(vote.responses == 2 && vote.matching == 1)
        #expect(!vote.kept)
    }
}
