import ConsulCore
import Testing
@testable import Raft

@Suite struct FeatureTests {
    @Test func readIndexServedAfterQuorumRound() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.run(for: .milliseconds(100))
        cluster.input(leader, .read(1))
        cluster.input(leader, .read(2))
        // Not before a heartbeat round is acknowledged.
        #expect(cluster.reads[leader, default: []].isEmpty)
        cluster.deliverAll()
        let reads = cluster.reads[leader, default: []]
        #expect(reads.map(\.id) == [1, 2])
        #expect(reads.allSatisfy { $0.result == .success(cluster[leader].commitIndex) })
    }

    @Test func readIndexNotServedWithoutQuorum() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.run(for: .milliseconds(100))
        cluster.isolate(leader)
        cluster.input(leader, .read(1))
        cluster.run(for: .milliseconds(200))
        #expect(cluster.reads[leader, default: []].isEmpty)
        cluster.run(for: .seconds(3))
        // Stepping down fails the read rather than answering it.
        #expect(cluster.reads[leader, default: []] == [ReadState(id: 1, result: .failure(.leadershipLost))])
    }

    @Test func readOnFollowerIsRefused() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.run(for: .milliseconds(100))
        let follower = cluster.ids.first { $0 != leader }!
        cluster.input(follower, .read(4))
        #expect(cluster.reads[follower] == [ReadState(id: 4, result: .failure(.notLeader(leaderHint: leader)))])
    }

    @Test func membershipChangesOneAtATime() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.run(for: .milliseconds(100))
        let newcomer = ServerID("n4")
        cluster.cores[newcomer] = try RaftCore(id: newcomer, random: SeededRandom(seed: 9), recovered: RecoveredState(), now: cluster.now)
        cluster.ids.append(newcomer)
        cluster.input(leader, .changeMembership(1, .addNonVoter(newcomer)))
        // A second change before the first commits is refused.
        cluster.input(leader, .changeMembership(2, .remove(cluster.ids[0])))
        #expect(cluster.outcomes[leader]?.last == RequestOutcome(id: 2, result: .failure(.configurationChangeInProgress)))
        cluster.run(for: .milliseconds(500))
        #expect(cluster[newcomer].configuration.suffrage(of: newcomer) == .nonvoter)
        #expect(cluster[newcomer].commitIndex == cluster[leader].commitIndex)
        cluster.input(leader, .changeMembership(3, .promote(newcomer)))
        cluster.run(for: .milliseconds(500))
        #expect(cluster[leader].configuration.voters.count == 4)
        // Removing the leader: it commits its removal, then steps down, and the rest elect a leader.
        cluster.input(leader, .changeMembership(4, .remove(leader)))
        cluster.run(for: .seconds(3))
        #expect(!cluster[leader].isLeader)
        let next = try #require(cluster.leaders().first)
        #expect(next != leader)
        #expect(!cluster[next].configuration.contains(leader))
        #expect(cluster[next].configuration.voters.count == 3)
    }

    @Test func invalidMembershipChangesAreRefused() throws {
        var cluster = TestCluster(1)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.input(leader, .changeMembership(1, .remove(leader)))
        cluster.input(leader, .changeMembership(2, .promote(ServerID("ghost"))))
        cluster.input(leader, .changeMembership(3, .addVoter(leader)))
        #expect(cluster.outcomes[leader]?.map(\.result) == Array(repeating: .failure(.invalidMembershipChange), count: 3))
    }

    /// Log compaction and chunked InstallSnapshot bring a follower that missed compacted entries up to date.
    @Test func laggingFollowerCatchesUpFromChunkedSnapshot() throws {
        let run = try catchUpFromSnapshot { cluster, leader, applied, state in
            cluster.input(leader, .snapshotTaken(index: applied, data: state))
        }
        #expect(run.installed.data == run.state)
    }

    /// The same with the snapshot's data in the shell's store: the core keeps none of it and
    /// asks for each chunk it sends; the follower installs the same bytes.
    @Test func laggingFollowerCatchesUpFromAStoredSnapshot() throws {
        var run = try catchUpFromSnapshot { cluster, leader, applied, state in
            cluster.stores[leader] = state
            cluster.input(leader, .snapshotStored(index: applied, size: UInt64(state.count)))
            #expect(cluster[leader].log.snapshot?.data == [])
        }
        #expect(run.installed.data == run.state)
        // The follower's shell saved what it installed: its core lets go of its copy too.
        run.cluster.input(run.lagging, .snapshotStored(index: run.applied, size: UInt64(run.state.count)))
        #expect(run.cluster[run.lagging].log.snapshot?.data == [])
        #expect(run.cluster[run.lagging].log.snapshotIndex == run.applied)
    }

    /// A three-server cluster whose follower `lagging` misses 20 entries that the leader then
    /// compacts into a snapshot (made by `snapshot`, 3-byte chunks, no trailing entries); the
    /// follower rejoins and gets a second to catch up. Checks the leader compacted and the
    /// follower ended level with it; returns what it installed.
    private func catchUpFromSnapshot(
        _ snapshot: (inout TestCluster, ServerID, LogIndex, [UInt8]) -> Void
    ) throws -> (cluster: TestCluster, lagging: ServerID, applied: LogIndex, state: [UInt8], installed: Snapshot) {
        var options = RaftOptions()
        options.trailingEntries = 0
        options.snapshotChunkBytes = 3
        var cluster = TestCluster(3, options: options)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let lagging = cluster.ids.first { $0 != leader }!
        cluster.run(for: .milliseconds(100))
        cluster.isolate(lagging)
        for n in 0..<20 { cluster.input(leader, .propose(RequestID(n), [UInt8(n)])) }
        cluster.run(for: .milliseconds(200))
        let applied = cluster[leader].appliedIndex
        let state = Array("state-at-\(applied)".utf8)
        snapshot(&cluster, leader, applied, state)
        #expect(cluster[leader].log.snapshotIndex == applied)
        #expect(cluster[leader].log.firstIndex == applied + 1)
        cluster.heal()
        cluster.run(for: .seconds(1))
        let installed = try #require(cluster.restored[lagging]?.last)
        #expect(installed.metadata.index == applied)
        #expect(cluster[lagging].commitIndex == cluster[leader].commitIndex)
        #expect(cluster[lagging].log.lastPosition == cluster[leader].log.lastPosition)
        return (cluster, lagging, applied, state, installed)
    }

    @Test func restartRecoversFromSnapshotAndLog() throws {
        let a = ServerID("a")
        let configuration = ClusterConfiguration(voters: [a])
        let snapshot = Snapshot(metadata: SnapshotMetadata(index: 5, term: 2, configuration: configuration), data: [1])
        let entries = (4...8).map { LogEntry(index: $0, term: 2, payload: .noop) }
        let core = try RaftCore(
            id: a, random: SeededRandom(seed: 1),
            recovered: RecoveredState(hardState: HardState(term: 2), snapshot: snapshot, entries: entries), now: .zero)
        #expect(core.log.lastIndex == 8)
        #expect(core.commitIndex == 5)
        #expect(core.configuration == configuration)
        #expect(throws: RaftError.self) {
            _ = try RaftCore(
                id: a, random: SeededRandom(seed: 1),
                recovered: RecoveredState(hardState: HardState(term: 2), snapshot: snapshot, entries: [LogEntry(index: 7, term: 2, payload: .noop)]),
                now: .zero)
        }
    }

    @Test func sameSeedSameOutputs() {
        func run() -> [String] {
            var cluster = TestCluster(5, seed: 42)
            var log: [String] = []
            for _ in 0..<100 {
                cluster.run(for: .milliseconds(50))
                log.append(cluster.ids.map { "\(cluster[$0].term)/\(cluster[$0].role.name)/\(cluster[$0].log.lastIndex)" }.joined(separator: ","))
            }
            return log
        }
        #expect(run() == run())
    }

    /// `-bootstrap-expect`: servers start with no log, then each bootstraps the same configuration
    /// on the fly; they elect one leader and agree. A server that already has a log ignores it.
    @Test func liveBootstrapOfServersStartedEmpty() throws {
        var cluster = TestCluster(3)
        let configuration = ClusterConfiguration(voters: cluster.ids)
        for (n, id) in cluster.ids.enumerated() {
            cluster.cores[id] = try RaftCore(id: id, random: SeededRandom(seed: UInt64(n) + 7), recovered: RecoveredState(), now: cluster.now)
        }
        cluster.run(for: .seconds(3))
        #expect(cluster.leaders().isEmpty, "a server without a configuration must not elect itself")
        for id in cluster.ids { cluster.input(id, .bootstrap(configuration)) }
        let elected = cluster.electLeader()
        let leader = try #require(elected)
        cluster.input(leader, .propose(1, [42]))
        cluster.run(for: .milliseconds(300))
        for id in cluster.ids {
            #expect(cluster[id].configuration == configuration)
            #expect(cluster[id].commitIndex == cluster[leader].commitIndex)
        }
        // Bootstrapping again (a restart with -bootstrap-expect) changes nothing.
        let before = cluster[leader].log.lastIndex
        cluster.input(leader, .bootstrap(ClusterConfiguration(voters: [leader])))
        #expect(cluster[leader].log.lastIndex == before)
        #expect(cluster[leader].configuration == configuration)
    }
}
