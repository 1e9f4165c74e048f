import ConsulCore
import Testing
@testable import Gossip

#if canImport(Glibc)
import Glibc
#endif

/// serf's snapshot log as a value: parsing, formatting, replay.
@Suite struct SerfSnapshotTests {
    private func replay(_ text: String, rejoinAfterLeave: Bool = false, chunk: Int = .max) -> SerfSnapshot.Replay {
        var replay = SerfSnapshot.Replay(rejoinAfterLeave: rejoinAfterLeave)
        let bytes = Array(text.utf8)
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + chunk)
            replay.feed(bytes[start..<end])
            start = end
        }
        return replay
    }

    @Test func everyRecordRoundTrips() throws {
        let records: [SerfSnapshot.Record] = [
            .alive(name: "web 1", address: "10.0.0.1:8301"), .alive(name: "v6", address: "[fe80::1]:8301"),
            .notAlive(name: "web 1"), .clock(7), .eventClock(3), .queryClock(12), .leave,
        ]
        for record in records {
            let line = SerfSnapshot.format(record)
            #expect(line.hasSuffix("\n"))
            #expect(try SerfSnapshot.parse(Substring(line.dropLast())).get() == record)
        }
        #expect(SerfSnapshot.format(.alive(name: "a", address: "127.0.0.1:7946")) == "alive: a 127.0.0.1:7946\n")
        #expect(try SerfSnapshot.parse("coordinate: {\"Vec\":[0]}").get() == .ignored)
        #expect(try SerfSnapshot.parse("# a comment").get() == .ignored)
    }

    @Test func replayFollowsTheLogAsSerfDoes() {
        let log = """
            alive: a 127.0.0.1:7946
            alive: b 127.0.0.2:7946
            clock: 4
            alive: c 127.0.0.3:7946
            not-alive: b
            event-clock: 9
            query-clock: 2
            clock: 6

            """
        let result = replay(log, chunk: 5)
        #expect(result.problems.isEmpty && result.tornTailBytes == 0)
        #expect(result.snapshot.alive == ["a": "127.0.0.1:7946", "c": "127.0.0.3:7946"])
        #expect(result.snapshot.clock == 6 && result.snapshot.eventClock == 9 && result.snapshot.queryClock == 2)
        #expect(result.snapshot.previousMembers(excluding: "a").map(\.name) == ["c"])
        #expect(result.snapshot.previousMembers(excluding: "a").first?.address == GossipAddress(ip: [127, 0, 0, 3], port: 7946))
    }

    @Test func leaveForgetsEverythingUnlessRejoiningAfterLeave() {
        let log = "alive: a 127.0.0.1:7946\nclock: 5\nevent-clock: 3\nleave\nclock: 6\n"
        let forgotten = replay(log)
        #expect(forgotten.snapshot.alive.isEmpty)
        #expect(forgotten.snapshot.clock == 6 && forgotten.snapshot.eventClock == 0)
        let kept = replay(log, rejoinAfterLeave: true)
        #expect(kept.snapshot.alive == ["a": "127.0.0.1:7946"])
        #expect(kept.leavesKept == 1 && kept.snapshot.eventClock == 3)
    }

    @Test func corruptLinesAreSkippedAndReported() {
        let log = """
            alive: a 127.0.0.1:7946
            alive: nospace
            alive: b not-an-address
            clock: twelve
            something else
            alive: c 127.0.0.3:7946
            \u{FF}
            """ + "\n" + "x" + String(repeating: "y", count: 5000) + "\nclock: 3\nalive: torn 127.0"
        let result = replay(log, chunk: 7)
        #expect(result.snapshot.alive == ["a": "127.0.0.1:7946", "c": "127.0.0.3:7946"])
        #expect(result.snapshot.clock == 3)
        #expect(result.problems.map(\.line) == [2, 3, 4, 5, 7, 8])
        #expect(result.problems[0].reason.contains("Failed to parse address"))
        #expect(result.problems[3].reason.contains("Unrecognized snapshot line"))
        #expect(result.problems[5].reason.contains("longer than"))
        #expect(result.tornTailBytes == "alive: torn 127.0".utf8.count)
        // Invalid UTF-8 is a problem too.
        var bytes = SerfSnapshot.Replay(rejoinAfterLeave: false)
        bytes.feed([0xFF, 0x0A])
        #expect(bytes.problems.first?.reason == "not UTF-8")
    }

    @Test func namesThatWouldBreakTheLogAreNotRecordable() {
        #expect(SerfSnapshot.canRecord(name: "web-1"))
        #expect(SerfSnapshot.canRecord(name: "with space"))
        #expect(!SerfSnapshot.canRecord(name: "evil 1.2.3.4:80\nleave"))
        #expect(!SerfSnapshot.canRecord(name: ""))
        #expect(!SerfSnapshot.canRecord(name: "tab\there"))
    }

    @Test func compactedFormReplaysToTheSameState() {
        var snapshot = SerfSnapshot()
        snapshot.apply(.alive(name: "b", address: "127.0.0.2:1"), rejoinAfterLeave: false)
        snapshot.apply(.alive(name: "a", address: "[::1]:2"), rejoinAfterLeave: false)
        snapshot.apply(.clock(10), rejoinAfterLeave: false)
        snapshot.apply(.queryClock(4), rejoinAfterLeave: false)
        #expect(snapshot.compacted == "alive: a [::1]:2\nalive: b 127.0.0.2:1\nclock: 10\nevent-clock: 0\nquery-clock: 4\n")
        #expect(replay(snapshot.compacted).snapshot == snapshot)
        #expect(snapshot.compactionThreshold == SerfSnapshot.minCompactBytes)
    }

    @Test func addressesAreWrittenAndReadAsGoPrintsThem() {
        #expect(GossipAddress(ip: [10, 1, 2, 3], port: 8301).hostPort == "10.1.2.3:8301")
        let loopback6 = GossipAddress(ip: [UInt8](repeating: 0, count: 15) + [1], port: 8301)
        #expect(loopback6.hostPort == "[::1]:8301")
        #expect(GossipAddress(hostPort: "[::1]:8301") == loopback6)
        let full = GossipAddress(ip: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2], port: 1)
        #expect(full.hostPort == "[2001:db8:0:1::2]:1")
        #expect(GossipAddress(hostPort: full.hostPort) == full)
        for bad in ["", "1.2.3.4", "1.2.3.4:0", "1.2.3:80", "[::1]", "[:::1]:80", "[1::2::3]:80", "[12345::]:80", "host:80"] {
            #expect(GossipAddress(hostPort: bad) == nil, "\(bad)")
        }
    }

    @Test func restoredClocksMovePastTheSnapshotAndOldEventsStayDelivered() {
        var network = SerfTestNetwork(count: 2)
        network.cores[1].restoreClocks(member: 40, event: 5, query: 9)
        #expect(network.cores[1].clocks.member == 41 && network.cores[1].clocks.event == 6 && network.cores[1].clocks.query == 10)
        network.joinAll()
        // An event at or below the restored event clock was delivered in the last run: not again.
        for (time, name) in [(LamportTime(5), "old"), (6, "new")] {
            let event = SerfMessage.userEvent(SerfUserEventMessage(lamportTime: time, name: name, payload: [], canCoalesce: false))
            network.input(1, .packet(from: SerfTestNetwork.address(0), messages: [event.memberlistMessage]))
        }
        #expect(network.userEvents[1].map(\.name) == ["new"])
    }
}

/// The snapshot on a real file: appends, compaction, leave, close, corrupt files.
@Suite struct GossipSnapshotFileTests {
    private func temporaryDirectory() -> String {
        var template = Array("/tmp/gossip-snapshot-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    private func remove(_ directory: String) {
        for file in ["/serf/local.snapshot", "/serf/local.snapshot.compact"] { unlink(directory + file) }
        rmdir(directory + "/serf")
        rmdir(directory)
    }

    private func logger(_ lines: TestRecorder) -> RateLimitedLogger {
        RateLimitedLogger(minimumLevel: .debug, burst: 1000, clock: SystemMonotonicClock(), sink: lines.sink("snapshot"))
    }

    private func contents(_ path: String) throws -> String {
        String(decoding: try GossipKeyringFile.readFile(path, limit: 1 << 24), as: UTF8.self)
    }

    @Test func membersAndClocksSurviveARestart() async throws {
        let directory = temporaryDirectory()
        defer { remove(directory) }
        let path = directory + "/" + GossipSnapshotFile.lanPath
        let lines = TestRecorder()
        let first = try await GossipSnapshotFile.open(path: path, rejoinAfterLeave: false, logger: logger(lines))
        first.memberAlive("a", address: GossipAddress(ip: [127, 0, 0, 1], port: 7946))
        first.memberAlive("b", address: GossipAddress(ip: [127, 0, 0, 2], port: 7946))
        first.memberAlive("evil\nleave", address: GossipAddress(ip: [127, 0, 0, 9], port: 7946))
        first.memberGone("a")
        first.clockAdvanced(to: 8)
        first.clockAdvanced(to: 5)  // never backwards
        first.userEventDelivered(at: 3)
        first.queryDelivered(at: 2)
        await first.close()
        first.memberAlive("late", address: GossipAddress(ip: [127, 0, 0, 3], port: 1))  // ignored after close
        #expect(try contents(path) == "alive: a 127.0.0.1:7946\nalive: b 127.0.0.2:7946\nnot-alive: a\nclock: 7\nevent-clock: 3\nquery-clock: 2\n")
        #expect(lines.log.contains { $0.contains("not recording member") && $0.contains(path) })

        let second = try await GossipSnapshotFile.open(path: path, rejoinAfterLeave: false, logger: logger(lines))
        #expect(second.snapshot.alive == ["b": "127.0.0.2:7946"])
        #expect(second.snapshot.clock == 7 && second.snapshot.eventClock == 3 && second.snapshot.queryClock == 2)
        await second.close()
    }

    @Test func gracefulLeaveIsDurableAndForgetsMembersUnlessRejoining() async throws {
        for rejoin in [false, true] {
            let directory = temporaryDirectory()
            defer { remove(directory) }
            let path = directory + "/" + GossipSnapshotFile.lanPath
            let lines = TestRecorder()
            let file = try await GossipSnapshotFile.open(path: path, rejoinAfterLeave: rejoin, logger: logger(lines))
            file.memberAlive("b", address: GossipAddress(ip: [127, 0, 0, 2], port: 7946))
            file.clockAdvanced(to: 4)
            await file.leave()
            // On disk (fsynced) before leave() returns; members after the leave are not recorded.
            #expect(try contents(path).hasSuffix("leave\n"))
            #expect(file.stats.syncs >= 1)
            file.memberAlive("c", address: GossipAddress(ip: [127, 0, 0, 3], port: 7946))
            file.clockAdvanced(to: 9)
            await file.close()
            let reopened = try await GossipSnapshotFile.open(path: path, rejoinAfterLeave: rejoin, logger: logger(lines))
            #expect(reopened.snapshot.alive == (rejoin ? ["b": "127.0.0.2:7946"] : [:]))
            #expect(reopened.snapshot.clock == 8)
            await reopened.close()
        }
    }

    @Test func corruptFileIsReadAroundLoggedWithItsNameAndCompacted() async throws {
        let directory = temporaryDirectory()
        defer { remove(directory) }
        let path = directory + "/" + GossipSnapshotFile.lanPath
        try GossipKeyringFile.makeParentDirectory(of: path)
        try GossipKeyringFile.writeFileAtomically(
            path, Array("alive: a 127.0.0.1:7946\ngarbage here\nclock: x\nalive: b 127.0.0.2:7946\nclock: 3\nalive: c 12".utf8), mode: 0o644)
        let lines = TestRecorder()
        let file = try await GossipSnapshotFile.open(path: path, rejoinAfterLeave: false, logger: logger(lines))
        #expect(file.snapshot.alive.keys.sorted() == ["a", "b"])
        let log = lines.log
        #expect(log.contains { $0.contains(path) && $0.contains("line 2") && $0.contains("Unrecognized snapshot line") })
        #expect(log.contains { $0.contains(path) && $0.contains("line 3") })
        #expect(log.contains { $0.contains(path) && $0.contains("incomplete line") })
        file.memberAlive("d", address: GossipAddress(ip: [127, 0, 0, 4], port: 7946))
        await file.close()
        // Rewritten without the bad lines, and the next append did not follow the torn one.
        #expect(try contents(path) == "alive: a 127.0.0.1:7946\nalive: b 127.0.0.2:7946\nclock: 3\nevent-clock: 0\nquery-clock: 0\nalive: d 127.0.0.4:7946\n")
        #expect(file.stats.compactions == 1)
    }

    @Test func growingLogIsCompactedAndKeepsItsState() async throws {
        let directory = temporaryDirectory()
        defer { remove(directory) }
        let path = directory + "/" + GossipSnapshotFile.lanPath
        let lines = TestRecorder()
        let file = try await GossipSnapshotFile.open(path: path, rejoinAfterLeave: false, logger: logger(lines))
        // Flapping members: far more lines than the 128 KiB threshold allows, and, recorded in one
        // burst, more than the pending buffer holds (the overflow is replaced by a compaction).
        for round in 0..<3000 {
            let name = "member-\(round % 50)"
            file.memberAlive(name, address: GossipAddress(ip: [10, 0, 0, UInt8(round % 50)], port: 8301))
            if round % 3 == 0 { file.memberGone(name) }
            file.clockAdvanced(to: LamportTime(round + 2))
        }
        await file.close()
        let size = try contents(path).utf8.count
        #expect(size <= SerfSnapshot.minCompactBytes + GossipSnapshotFile.defaultMaxPendingBytes)
        #expect(file.stats.compactions >= 1)
        let reopened = try await GossipSnapshotFile.open(path: path, rejoinAfterLeave: false, logger: logger(lines))
        #expect(reopened.snapshot == file.snapshot)
        #expect(reopened.snapshot.clock == 3000)
        await reopened.close()
        #expect(!lines.log.contains { $0.contains("[ERR]") })
    }

    @Test func writerFallingBehindLosesNothing() async throws {
        let directory = temporaryDirectory()
        defer { remove(directory) }
        let path = directory + "/" + GossipSnapshotFile.lanPath
        let lines = TestRecorder()
        // A pending buffer smaller than one line ("alive: m0 10.0.0.0:8301"): every record
        // overflows it whatever the writer's pace, and a compaction writes the state instead.
        // (A larger buffer made the overflow depend on how fast the writer queue drained.)
        let file = try await GossipSnapshotFile.open(path: path, rejoinAfterLeave: false, logger: logger(lines), maxPendingBytes: 16)
        for index in 0..<200 {
            file.memberAlive("m\(index)", address: GossipAddress(ip: [10, 0, 0, UInt8(index % 200)], port: 8301))
            if index % 2 == 1 { file.memberGone("m\(index - 1)") }
        }
        await file.close()
        #expect(file.stats.overflows >= 1)
        let reopened = try await GossipSnapshotFile.open(path: path, rejoinAfterLeave: false, logger: logger(lines))
        #expect(reopened.snapshot.alive.count == 100)
        #expect(reopened.snapshot == file.snapshot)
        await reopened.close()
    }

    @Test func unusablePathFailsWithItsName() async {
        let lines = TestRecorder()
        do throws(GossipSnapshotError) {
            _ = try await GossipSnapshotFile.open(path: "/proc/no-such-dir/serf/local.snapshot", rejoinAfterLeave: false, logger: logger(lines))
            Issue.record("opened an impossible path")
        } catch {
            #expect(error.description.contains("Failed to setup snapshot /proc/no-such-dir/serf/local.snapshot"))
        }
    }
}
