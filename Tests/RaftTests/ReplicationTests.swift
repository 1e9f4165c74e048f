import ConsulCore
import Testing
@testable import Raft

@Suite struct ReplicationTests {
    /// §5.3 Log matching and state machine safety: after a burst of proposals every server applies the
    /// same sequence.
    @Test func replicatesAndAppliesSameSequence() throws {
        var options = RaftOptions()
        options.maxEntriesPerAppend = 3
        options.maxInflightAppends = 2
        var cluster = TestCluster(5, options: options)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        for n in 0..<40 { cluster.input(leader, .propose(RequestID(n), [UInt8(n)])) }
        cluster.run(for: .seconds(1))
        let expected = cluster.applied[leader] ?? []
        #expect(expected.filter { if case .command = $0.payload { true } else { false } }.count == 40)
        for id in cluster.ids {
            #expect(cluster.applied[id] == expected)
            #expect(cluster[id].commitIndex == cluster[leader].log.lastIndex)
        }
    }

    /// §5.3: a follower's conflicting suffix is replaced by the leader's entries, using the
    /// conflict-term hint to skip back a whole term at a time.
    @Test func conflictingSuffixIsOverwritten() throws {
        let a = ServerID("a"), b = ServerID("b")
        let configuration = ClusterConfiguration(voters: [a, b])
        var leaderLog = RecoveredState.bootstrap(configuration)
        leaderLog.hardState.term = 5
        leaderLog.entries += (2...3).map { LogEntry(index: $0, term: 2, payload: .command([UInt8($0)])) }
        leaderLog.entries += (4...6).map { LogEntry(index: $0, term: 4, payload: .command([UInt8($0)])) }
        var followerLog = RecoveredState.bootstrap(configuration)
        followerLog.hardState.term = 4
        followerLog.entries += (2...3).map { LogEntry(index: $0, term: 2, payload: .command([UInt8($0)])) }
        followerLog.entries += (4...9).map { LogEntry(index: $0, term: 3, payload: .command([99])) }
        var leader = try RaftCore(id: a, random: SeededRandom(seed: 1), recovered: leaderLog, now: .zero)
        var follower = try RaftCore(id: b, random: SeededRandom(seed: 2), recovered: followerLog, now: .zero)
        // Make `a` leader: it times out, pre-votes and wins b's vote (its log is more up to date).
        var now = Timestamp.zero + .seconds(3)
        var queue = leader.handle(.tick, now: now).messages
        var rounds = 0
        while !queue.isEmpty && rounds < 200 {
            rounds += 1
            let message = queue.removeFirst()
            if message.to == a {
                let out = leader.handle(.message(message), now: now)
                queue += out.messages
                if let last = out.persist.entries.last {
                    queue += leader.handle(.persisted(LogPosition(index: last.index, term: last.term)), now: now).messages
                }
            } else {
                queue += follower.handle(.message(message), now: now).messages
            }
            now = now + .milliseconds(1)
        }
        #expect(leader.isLeader)
        #expect(follower.log.lastIndex == leader.log.lastIndex)
        for index in 1...leader.log.lastIndex {
            #expect(follower.log.entry(at: index) == leader.log.entry(at: index))
        }
        #expect(rounds < 40, "fast backtracking should need only a few round trips")
    }

    /// §5.4.2 (Figure 8): a leader never commits an entry of an earlier term by counting replicas;
    /// such entries commit only once an entry of its own term does.
    @Test func doesNotCommitPreviousTermEntryByCounting() throws {
        let a = ServerID("a"), b = ServerID("b"), c = ServerID("c")
        var recovered = RecoveredState.bootstrap(ClusterConfiguration(voters: [a, b, c]))
        recovered.hardState.term = 3
        recovered.entries.append(LogEntry(index: 2, term: 2, payload: .command([2])))
        var leader = try RaftCore(id: a, random: SeededRandom(seed: 3), recovered: recovered, now: .zero)
        // Win an election in term 4 with b's vote.
        let now = Timestamp.zero + .seconds(3)
        let preVotes = leader.handle(.tick, now: now).messages
        #expect(preVotes.count == 2)
        let voteRequests = leader.handle(.message(Message(from: b, to: a, term: 4, payload: .preVoteResponse(granted: true))), now: now)
        #expect(voteRequests.persist.hardState?.term == 4)
        let won = leader.handle(.message(Message(from: b, to: a, term: 4, payload: .voteResponse(granted: true))), now: now)
        #expect(leader.isLeader)
        let noop = try #require(won.persist.entries.last)
        #expect(noop.index == 3 && noop.term == 4)
        _ = leader.handle(.persisted(LogPosition(index: 3, term: 4)), now: now)
        // b has entry 2 (term 2) but not yet the no-op: 2 is on a majority, yet must not commit.
        let ack2 = AppendResponse(success: true, matchIndex: 2, readRound: 0)
        _ = leader.handle(.message(Message(from: b, to: a, term: 4, payload: .appendResponse(ack2))), now: now)
        #expect(leader.commitIndex == 0)
        // Once the no-op (term 4) is on b too, both commit.
        let ack3 = AppendResponse(success: true, matchIndex: 3, readRound: 0)
        let out = leader.handle(.message(Message(from: b, to: a, term: 4, payload: .appendResponse(ack3))), now: now)
        #expect(leader.commitIndex == 3)
        #expect(out.committed.map(\.index) == [1, 2, 3])
    }

    /// Leader append-only: a leader never overwrites or deletes entries in its own log, even when a
    /// (bogus) message from its own term claims otherwise.
    @Test func leaderIsAppendOnly() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        for n in 0..<5 { cluster.input(leader, .propose(RequestID(n), [UInt8(n)])) }
        cluster.run(for: .milliseconds(300))
        let before = cluster[leader].log.entries
        var core = cluster[leader]
        let bogus = AppendEntries(
            prevIndex: 1, prevTerm: 1, entries: [LogEntry(index: 2, term: core.term, payload: .command([66]))],
            commit: 0, readRound: 0)
        _ = core.handle(.message(Message(from: cluster.ids.first { $0 != leader }!, to: leader, term: core.term, payload: .appendEntries(bogus))), now: cluster.now)
        #expect(Array(core.log.entries.prefix(before.count)) == before)
    }

    /// Leader completeness: whoever wins after a leader failure holds every committed entry.
    @Test(arguments: 1...6)
    func leaderCompleteness(seed: UInt64) throws {
        var cluster = TestCluster(5, seed: seed)
        let firstElected = cluster.electLeader()
        let first = try #require(firstElected)
        for n in 0..<10 { cluster.input(first, .propose(RequestID(n), [UInt8(n)])) }
        cluster.run(for: .milliseconds(300))
        let committed = cluster[first].commitIndex
        let committedEntries = cluster[first].log.entries(in: 1...committed)
        cluster.cores[first] = nil
        cluster.ids.removeAll { $0 == first }
        let secondElected = cluster.electLeader()
        let second = try #require(secondElected)
        #expect(cluster[second].log.entries(in: 1...committed) == committedEntries)
    }

    /// Nothing a peer sends can crash the core: random, malformed and out-of-range messages are dropped.
    @Test func garbageMessagesAreSurvived() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        var random = SeededRandom(seed: 77)
        // Mostly small values (to hit real code paths), sometimes values near the top of the range.
        func any(_ limit: UInt64) -> UInt64 {
            random.next() % 50 == 0 ? UInt64.max - random.next() % 3 : random.next() % limit
        }
        for id in cluster.ids {
            var core = cluster[id]
            for _ in 0..<2000 {
                let term = any(8)
                let entries = (0..<(any(4) % 4)).map { _ in LogEntry(index: any(20), term: any(8), payload: .command([UInt8(truncatingIfNeeded: any(255))])) }
                let meta = SnapshotMetadata(index: any(30), term: any(8), configuration: ClusterConfiguration(voters: [ServerID("x")]))
                let payloads: [MessagePayload] = [
                    .appendEntries(AppendEntries(prevIndex: any(30), prevTerm: any(8), entries: entries, commit: any(40), readRound: any(5))),
                    .appendResponse(AppendResponse(success: any(2) == 0, matchIndex: any(40), rejectedIndex: any(40), conflictTerm: any(2) == 0 ? nil : any(9), conflictIndex: any(40), readRound: any(9))),
                    .heartbeat(commit: any(50), readRound: any(9)),
                    .heartbeatResponse(readRound: any(100)),
                    .installSnapshot(InstallSnapshot(metadata: meta, totalSize: any(20), offset: any(25), chunk: Array(repeating: 1, count: Int(any(10) % 16)))),
                    .installSnapshotResponse(InstallSnapshotResponse(snapshotIndex: any(30), snapshotTerm: any(8), nextOffset: any(100), done: any(2) == 0)),
                    .requestVote(lastLog: LogPosition(index: any(30), term: any(8)), transfer: any(2) == 0),
                    .voteResponse(granted: any(2) == 0),
                    .preVote(lastLog: LogPosition(index: any(30), term: any(8))),
                    .preVoteResponse(granted: any(2) == 0),
                    .timeoutNow,
                ]
                let from = [leader, ServerID("x"), cluster.ids[Int(any(3) % 3)]][Int(any(3) % 3)]
                let message = Message(from: from, to: id, term: term, payload: payloads[Int(any(UInt64(payloads.count)) % UInt64(payloads.count))])
                _ = core.handle(.message(message), now: cluster.now)
                // The core's own invariants hold whatever arrives.
                #expect(core.commitIndex <= core.log.lastIndex)
                #expect(core.appliedIndex <= core.commitIndex)
            }
        }
    }

    /// The configuration in force at an index: the newest configuration entry at or before it
    /// (straight from the core past the newest one, by the log before it).
    @Test func configurationAtAnIndexIsTheNewestEntryUpToIt() throws {
        let a = ServerID("a"), b = ServerID("b"), c = ServerID("c")
        let three = ClusterConfiguration(voters: [a, b, c]), two = ClusterConfiguration(voters: [a, b])
        var recovered = RecoveredState.bootstrap(three)
        recovered.hardState.term = 1
        recovered.entries += (2...5).map { LogEntry(index: $0, term: 1, payload: .command([UInt8($0)])) }
        recovered.entries.append(LogEntry(index: 6, term: 1, payload: .configuration(two)))
        recovered.entries += (7...9).map { LogEntry(index: $0, term: 1, payload: .command([UInt8($0)])) }
        let core = try RaftCore(id: a, random: SeededRandom(seed: 9), recovered: recovered, now: .zero)
        #expect(core.configurationIndex == 6)
        #expect((1...5).allSatisfy { core.configuration(at: $0) == three })
        #expect((6...12).allSatisfy { core.configuration(at: $0) == two })
    }
}

@Suite struct RegressionTests {
    /// A follower whose log has a stale suffix beyond the matched prefix must cap its commit index at
    /// the match: the leader's commit index says nothing about the follower's unverified entries.
    @Test func followerCommitIsCappedAtVerifiedMatch() throws {
        let a = ServerID("a"), b = ServerID("b")
        var recovered = RecoveredState.bootstrap(ClusterConfiguration(voters: [a, b]))
        recovered.hardState.term = 2
        recovered.entries += [
            LogEntry(index: 2, term: 1, payload: .noop),
            LogEntry(index: 3, term: 2, payload: .command([3])),
            LogEntry(index: 4, term: 2, payload: .command([4])),
        ]
        var follower = try RaftCore(id: b, random: SeededRandom(seed: 5), recovered: recovered, now: .zero)
        let append = AppendEntries(
            prevIndex: 1, prevTerm: 1, entries: [LogEntry(index: 2, term: 1, payload: .noop)], commit: 4, readRound: 0)
        let output = follower.handle(.message(Message(from: a, to: b, term: 3, payload: .appendEntries(append))), now: .zero)
        #expect(follower.commitIndex == 2)
        #expect(output.committed.map(\.index) == [1, 2])
        #expect(output.messages.first?.payload == .appendResponse(AppendResponse(success: true, matchIndex: 2, readRound: 0)))
    }

    /// Found by the simulator: a leader appends its own removal, loses leadership before the entry
    /// reaches anyone, and then (not being a voter of its latest configuration) never campaigned,
    /// while the others could not win without its vote because its log was more up to date.
    @Test func leaderLosingLeadershipAfterAppendingOwnRemovalDoesNotDeadlock() throws {
        var cluster = TestCluster(2)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let other = cluster.ids.first { $0 != leader }!
        cluster.run(for: .milliseconds(300))
        cluster.isolate(leader)
        cluster.input(leader, .changeMembership(1, .remove(leader)))
        #expect(cluster[leader].configuration.voters == [other])
        cluster.run(for: .seconds(3))
        #expect(!cluster[leader].isLeader)
        cluster.heal()
        cluster.run(for: .seconds(10))
        #expect(cluster.leaders() == [other])
        #expect(cluster[other].configuration.voters == [other])
        #expect(cluster[other].commitIndex >= cluster[other].configurationIndex)
    }

    /// A barrier is an entry like any other: once it is applied, everything before it is applied.
    @Test func barrierAppliesAfterEverythingBefore() throws {
        var cluster = TestCluster(3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        for n in 0..<5 { cluster.input(leader, .propose(RequestID(n), [UInt8(n)])) }
        cluster.input(leader, .barrier(99))
        let outcome = try #require(cluster.outcomes[leader]?.first { $0.id == 99 })
        let position = try outcome.result.get()
        cluster.run(for: .milliseconds(300))
        let applied = cluster.applied[leader] ?? []
        #expect(applied.last(where: { $0.index == position.index })?.term == position.term)
        #expect(applied.map(\.index) == Array(1...position.index))
    }
}
