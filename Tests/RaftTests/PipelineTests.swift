import ConsulCore
import Testing
@testable import Raft

@Suite struct PipelineTests {
    /// A leader of a two-server cluster whose peer is `b`, ready to replicate (b in replicate mode).
    static func replicatingLeader(_ options: RaftOptions) throws -> (RaftCore, Timestamp) {
        let a = ServerID("a"), b = ServerID("b")
        var leader = try RaftCore(
            id: a, options: options, random: SeededRandom(seed: 8), recovered: .bootstrap(ClusterConfiguration(voters: [a, b])), now: .zero)
        var now = Timestamp.zero + options.electionTimeout * 2
        _ = leader.handle(.tick, now: now)
        _ = leader.handle(.message(Message(from: b, to: a, term: 2, payload: .preVoteResponse(granted: true))), now: now)
        let won = leader.handle(.message(Message(from: b, to: a, term: 2, payload: .voteResponse(granted: true))), now: now)
        let noop = try #require(won.persist.entries.last)
        _ = leader.handle(.persisted(LogPosition(index: noop.index, term: noop.term)), now: now)
        now = now + .milliseconds(1)
        let ack = AppendResponse(success: true, matchIndex: noop.index, readRound: 0)
        _ = leader.handle(.message(Message(from: b, to: a, term: 2, payload: .appendResponse(ack))), now: now)
        #expect(leader.leadership?.progress[b]?.mode == .replicate)
        return (leader, now)
    }

    static func appends(_ output: RaftOutput) -> [AppendEntries] {
        output.messages.compactMap { if case .appendEntries(let append) = $0.payload { append } else { nil } }
    }

    /// Pipelining stops at the inflight limit; batching caps entries per message.
    @Test func inflightAndBatchLimitsHold() throws {
        var options = RaftOptions()
        options.maxInflightAppends = 2
        options.maxEntriesPerAppend = 3
        var (leader, now) = try Self.replicatingLeader(options)
        var sent: [AppendEntries] = []
        for n in 0..<10 { sent += Self.appends(leader.handle(.propose(RequestID(n), [UInt8(n)]), now: now)) }
        #expect(sent.count == 2)
        #expect(sent.allSatisfy { $0.entries.count <= 3 })
        // Acknowledging the first frees a slot, and the next message batches what piled up.
        let firstLast = try #require(sent.first?.entries.last?.index)
        now = now + .milliseconds(1)
        let ack = AppendResponse(success: true, matchIndex: firstLast, readRound: 0)
        let more = Self.appends(leader.handle(.message(Message(from: ServerID("b"), to: ServerID("a"), term: 2, payload: .appendResponse(ack))), now: now))
        #expect(more.count == 1)
        #expect(more.first?.entries.count == 3)
    }

    /// A batch of proposals is one log write and one AppendEntries, with an outcome for each.
    @Test func proposalBatchGoesOutTogether() throws {
        var (leader, now) = try Self.replicatingLeader(RaftOptions())
        now = now + .milliseconds(1)
        let output = leader.handle(.proposeBatch((0..<5).map { Proposal(id: RequestID($0), command: [UInt8($0)]) }), now: now)
        #expect(output.persist.entries.map(\.payload) == (0..<5).map { .command([UInt8($0)]) })
        #expect(output.outcomes.map(\.id) == Array(0..<5))
        #expect(output.outcomes.allSatisfy { (try? $0.result.get()) != nil })
        let sent = Self.appends(output)
        #expect(sent.count == 1)
        #expect(sent.first?.entries.count == 5)
    }

    /// A lost append is sent again once the retransmit timeout passes.
    @Test func lostAppendIsRetransmitted() throws {
        var options = RaftOptions()
        options.maxInflightAppends = 1
        var (leader, now) = try Self.replicatingLeader(options)
        let first = Self.appends(leader.handle(.propose(1, [1]), now: now))
        let lost = try #require(first.first?.entries.first)
        // Heartbeats before the timeout do not resend it.
        now = now + options.heartbeatInterval
        #expect(Self.appends(leader.handle(.tick, now: now)).allSatisfy { $0.entries.isEmpty })
        now = now + options.retransmitTimeout
        var resent: [AppendEntries] = []
        for _ in 0..<3 {
            now = now + options.heartbeatInterval
            resent += Self.appends(leader.handle(.tick, now: now))
        }
        #expect(resent.contains { $0.entries.contains(lost) })
    }

    /// Reads arriving while a round is in flight share the next round: the first read of a burst
    /// starts a round at once, all later ones ride together on the following one.
    @Test func readsAreBatchedIntoRounds() throws {
        var (leader, now) = try Self.replicatingLeader(RaftOptions())
        func rounds(_ output: RaftOutput) -> [UInt64] {
            output.messages.compactMap { if case .heartbeat(_, let round) = $0.payload { round } else { nil } }
        }
        func acknowledge(_ round: UInt64) -> RaftOutput {
            now = now + .milliseconds(1)
            return leader.handle(
                .message(Message(from: ServerID("b"), to: ServerID("a"), term: 2, payload: .heartbeatResponse(readRound: round))), now: now)
        }
        var heartbeats: [UInt64] = []
        for id in 1...5 { heartbeats += rounds(leader.handle(.read(RequestID(id)), now: now)) }
        #expect(heartbeats.count == 1)
        let first = acknowledge(try #require(heartbeats.first))
        #expect(first.readStates.map(\.id) == [1])
        // The four that waited go out together in one new round.
        let next = rounds(first)
        #expect(next.count == 1)
        let rest = acknowledge(try #require(next.first))
        #expect(rest.readStates.map(\.id) == [2, 3, 4, 5])
        #expect(rest.readStates.allSatisfy { $0.result == .success(leader.commitIndex) })
        #expect(rounds(rest).isEmpty)
    }

    /// A transfer whose target never catches up is abandoned after an election timeout, and
    /// proposals are accepted again.
    @Test func stalledTransferIsAbandoned() throws {
        var options = RaftOptions()
        options.maxInflightAppends = 1
        var (leader, now) = try Self.replicatingLeader(options)
        _ = leader.handle(.propose(1, [1]), now: now)
        let accepted = leader.handle(.transferLeadership(2, target: ServerID("b")), now: now)
        #expect(accepted.outcomes.first?.result != nil)
        #expect(leader.handle(.propose(3, [3]), now: now).outcomes.first?.result == .failure(.leadershipTransferInProgress))
        // Keep b alive for check-quorum but never acknowledge the new entry.
        for _ in 0..<30 {
            now = now + options.heartbeatInterval
            let out = leader.handle(.tick, now: now)
            for round in out.messages.compactMap({ if case .heartbeat(_, let r) = $0.payload { r } else { nil } }) {
                _ = leader.handle(.message(Message(from: ServerID("b"), to: ServerID("a"), term: 2, payload: .heartbeatResponse(readRound: round))), now: now)
            }
        }
        #expect(leader.isLeader)
        #expect(try leader.handle(.propose(4, [4]), now: now).outcomes.first?.result.get().index != nil)
    }
}
