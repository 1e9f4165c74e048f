import ConsulCore
import Testing
@testable import Raft

@Suite struct ElectionTests {
    /// §5.2 Election safety: at most one leader per term, across many seeds and elections.
    @Test(arguments: 1...12)
    func electionSafety(seed: UInt64) {
        var cluster = TestCluster(5, seed: seed)
        var leaderOfTerm: [Term: ServerID] = [:]
        for round in 0..<6 {
            _ = cluster.electLeader()
            for id in cluster.leaders() {
                let term = cluster[id].term
                #expect(leaderOfTerm[term, default: id] == id, "two leaders in term \(term)")
                leaderOfTerm[term] = id
            }
            // Depose the current leader to force another election.
            if let leader = cluster.leaders().first {
                cluster.isolate(leader)
                cluster.run(for: .seconds(3))
                cluster.heal()
            }
            _ = round
        }
        #expect(leaderOfTerm.count >= 3)
    }

    @Test func singleServerElectsItselfAndCommits() {
        var cluster = TestCluster(1)
        let leader = cluster.electLeader()
        #expect(leader == TestCluster.id(1))
        cluster.input(TestCluster.id(1), .propose(7, [1, 2, 3]))
        let applied = cluster.applied[TestCluster.id(1)] ?? []
        #expect(applied.last?.payload == .command([1, 2, 3]))
    }

    /// Every new leader starts its term with a no-op entry.
    @Test func newLeaderAppendsNoop() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let core = cluster[leader]
        let last = try #require(core.log.entry(at: core.log.lastIndex))
        #expect(last.term == core.term)
        #expect(last.payload == .noop)
    }

    /// §5.4.1: a voter refuses a candidate whose log is less up to date.
    @Test func voteRefusedToStaleLog() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.input(leader, .propose(1, [9]))
        cluster.run(for: .milliseconds(200))
        let voter = cluster.ids.first { $0 != leader }!
        var core = cluster[voter]
        let stale = Message(
            from: ServerID("stranger"), to: voter, term: core.term + 5,
            payload: .requestVote(lastLog: LogPosition(index: 1, term: 1), transfer: true))
        let output = core.handle(.message(stale), now: cluster.now)
        let reply = try #require(output.messages.first)
        #expect(reply.payload == .voteResponse(granted: false))
        #expect(core.term == stale.term)  // learned the term, but did not vote
        #expect(core.votedFor == nil)
    }

    /// §9.6 pre-vote: an isolated server keeps timing out without raising its term, so it does not
    /// depose the leader when it comes back.
    @Test func preVoteKeepsPartitionedServerFromBumpingTerm() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let term = cluster[leader].term
        let loner = cluster.ids.first { $0 != leader }!
        cluster.isolate(loner)
        cluster.run(for: .seconds(5))
        #expect(cluster[loner].term == term)
        cluster.heal()
        cluster.run(for: .seconds(1))
        #expect(cluster[leader].isLeader)
        #expect(cluster[leader].term == term)
    }

    /// Check-quorum: a leader cut off from the majority steps down within about an election timeout.
    @Test func checkQuorumStepsDownIsolatedLeader() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.isolate(leader)
        cluster.run(for: .seconds(3))
        #expect(!cluster[leader].isLeader)
        let others = cluster.leaders()
        #expect(others.count == 1)
        #expect(others.first != leader)
    }

    /// Check-quorum with two voters: a leader whose only follower is gone has no majority and
    /// steps down (a two-server datacenter that loses one server has no leader).
    @Test func checkQuorumStepsDownLeaderOfTwoWhoseFollowerIsGone() throws {
        var cluster = TestCluster(2)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.isolate(cluster.ids.first { $0 != leader }!)
        cluster.run(for: .seconds(3))
        #expect(!cluster[leader].isLeader)
        #expect(cluster.leaders().isEmpty)
    }

    /// Leader stickiness: a vote request in a higher term is ignored while a leader is alive.
    @Test func liveLeaderIsNotDeposedByDisruptiveVoteRequest() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.run(for: .milliseconds(100))
        let follower = cluster.ids.first { $0 != leader }!
        var core = cluster[follower]
        let before = core.term
        let request = Message(
            from: cluster.ids.first { $0 != leader && $0 != follower }!, to: follower, term: before + 3,
            payload: .requestVote(lastLog: LogPosition(index: 100, term: before + 2), transfer: false))
        let output = core.handle(.message(request), now: cluster.now)
        #expect(output.messages.isEmpty)
        #expect(core.term == before)
    }

    @Test func leadershipTransferMovesLeadershipToTarget() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.run(for: .milliseconds(200))
        let target = cluster.ids.first { $0 != leader }!
        cluster.input(leader, .transferLeadership(5, target: target))
        cluster.run(for: .milliseconds(200))
        #expect(cluster.leaders() == [target])
        #expect(cluster.outcomes[leader]?.contains { $0.id == 5 } == true)
    }

    @Test func proposalsRefusedByFollower() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.run(for: .milliseconds(100))
        let follower = cluster.ids.first { $0 != leader }!
        cluster.input(follower, .propose(3, [1]))
        #expect(cluster.outcomes[follower]?.last == RequestOutcome(id: 3, result: .failure(.notLeader(leaderHint: leader))))
    }
}
