import ConsulCore
import Testing
@testable import Raft

@Suite struct RaftWireCodecTests {
    static let configuration = ClusterConfiguration(servers: [
        ServerEntry(id: ServerID("a"), suffrage: .voter), ServerEntry(id: ServerID("c"), suffrage: .nonvoter, address: "[::1]:8300"),
    ])

    static let messages: [Message] = {
        let a = ServerID("server-a"), b = ServerID("sérver-b")
        let payloads: [MessagePayload] = [
            .preVote(lastLog: LogPosition(index: 7, term: 3)),
            .preVoteResponse(granted: true),
            .requestVote(lastLog: LogPosition(index: 9, term: 4), transfer: true),
            .voteResponse(granted: false),
            .appendEntries(AppendEntries(
                prevIndex: 5, prevTerm: 2,
                entries: [
                    LogEntry(index: 6, term: 3, payload: .noop), LogEntry(index: 7, term: 3, payload: .command([1, 2, 3])),
                    LogEntry(index: 8, term: 3, payload: .configuration(configuration)),
                ],
                commit: 4, readRound: 11)),
            .appendEntries(AppendEntries(prevIndex: 0, prevTerm: 0, entries: [], commit: 0, readRound: 0)),
            .appendResponse(AppendResponse(success: true, matchIndex: 8, readRound: 2)),
            .appendResponse(AppendResponse(success: false, matchIndex: 0, rejectedIndex: 9, conflictTerm: 2, conflictIndex: 4, readRound: 3)),
            .heartbeat(commit: 10, readRound: 12),
            .heartbeatResponse(readRound: 12),
            .installSnapshot(InstallSnapshot(
                metadata: SnapshotMetadata(index: 100, term: 5, configuration: configuration), totalSize: 9, offset: 3, chunk: [4, 5, 6])),
            .installSnapshotResponse(InstallSnapshotResponse(snapshotIndex: 100, snapshotTerm: 5, nextOffset: 6, done: false)),
            .timeoutNow,
        ]
        return payloads.enumerated().map { Message(from: a, to: b, term: UInt64($0.offset + 1), payload: $0.element) }
    }()

    @Test func roundTripsEveryMessageKind() throws {
        let stream = Self.messages.flatMap(RaftWireCodec.encode)
        let (decoded, consumed) = try RaftWireCodec.decodeFrames(stream)
        #expect(decoded == Self.messages)
        #expect(consumed == stream.count)
    }

    /// A stream cut anywhere yields the whole frames before the cut and waits for the rest.
    @Test func partialFramesWaitForMoreBytes() throws {
        let stream = Self.messages.prefix(3).flatMap(RaftWireCodec.encode)
        for cut in 0...stream.count {
            let (decoded, consumed) = try RaftWireCodec.decodeFrames(Array(stream[..<cut]))
            #expect(consumed <= cut)
            #expect(decoded == Array(Self.messages.prefix(decoded.count)))
            let rest = try RaftWireCodec.decodeFrames(Array(stream[consumed...]))
            #expect(decoded + rest.messages == Array(Self.messages.prefix(3)))
        }
    }

    /// Random and mutated frames never trap: they decode to something or are an error.
    @Test func garbageNeverCrashes() {
        var random = SeededRandom(seed: 4242)
        let valid = Self.messages.map(RaftWireCodec.encode)
        for round in 0..<5000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = valid[Int(random.next() % UInt64(valid.count))]
                for _ in 0..<(1 + random.next() % 4) where !bytes.isEmpty {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            } else {
                bytes = (0..<Int(random.next() % 80)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            }
            if let result = try? RaftWireCodec.decodeFrames(bytes) {
                #expect(result.consumed <= bytes.count)
            }
        }
    }

    @Test func oversizedFrameIsRefused() {
        var header = ByteWriter()
        header.u32(UInt32(RaftWireCodec.maxFrameBytes + 1))
        #expect(throws: DecodeError.self) { _ = try RaftWireCodec.decodeFrames(header.bytes + [0, 0, 0]) }
    }
}
