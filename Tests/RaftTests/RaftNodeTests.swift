#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore
import Dispatch
import Synchronization
import Testing
@testable import Raft

/// A state machine that records every command; its answer is the number of commands so far.
struct RecordingMachine: RaftStateMachine {
    var commands: [[UInt8]] = []

    mutating func apply(_ command: [UInt8], at index: LogIndex) -> [UInt8] {
        commands.append(command)
        return [UInt8(truncatingIfNeeded: commands.count)]
    }

    func snapshot(into sink: SnapshotSink) {
        for command in commands { sink.write { $0.raw(command) } }
    }

    mutating func restore(from source: inout SnapshotSource) throws(RaftNodeError) {
        var restored: [[UInt8]] = []
        do throws(DecodeError) {
            while let piece = try source.next() { restored.append(Array(piece.bytes[piece.offset..<(piece.offset + piece.remaining)])) }
        } catch {
            throw .badSnapshot("\(error)")
        }
        commands = restored
    }
}

/// A value shared between tasks and the disk writer's queue.
final class Shared<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ initial: Value) { value = Mutex(initial) }
}

/// Delivers messages between in-process nodes on the receiver's event loop (so sends never block
/// a node), in order per sender, and counts what is in flight so a test can wait for quiet.
final class LocalNetwork: RaftTransport {
    let routes = Mutex<[ServerID: @Sendable (Message) -> Void]>([:])
    /// Messages sent and not yet taken by their node.
    let inFlight = Shared(0)

    func send(_ message: Message) {
        guard let route = routes.withLock({ $0[message.to] }) else { return }
        inFlight.value.withLock { $0 += 1 }
        route(message)
    }

    func attach(_ node: RaftNode<RecordingMachine>) {
        let id = node.id
        let inFlight = inFlight
        routes.withLock {
            $0[id] = { message in
                node.eventLoop.execute {
                    node.assumeIsolated { $0.receive(message) }
                    inFlight.value.withLock { $0 -= 1 }
                }
            }
        }
    }
}

@Suite(.serialized) struct RaftNodeTests {
    let root: String

    init() {
        var template = Array("/tmp/raft-node-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        root = String(cString: made!)
    }

    func cleanUp() {
        // Best effort: remove the files this test created, then the directories.
        for node in ["n1", "n2", "n3"] {
            for sub in ["wal", "snapshots"] {
                let directory = root + "/" + node + "/" + sub
                if let names = try? fileNames(in: directory) {
                    for name in names where name != "." && name != ".." { unlink(directory + "/" + name) }
                }
                rmdir(directory)
            }
            unlink(root + "/" + node + "/" + StableStore.fileName)
            rmdir(root + "/" + node)
        }
        rmdir(root)
    }

    func makeNode(
        _ name: String, voters: [String], network: LocalNetwork, clock: ManualClock, snapshots: SnapshotPolicy? = nil,
        beforeSync: (@Sendable () -> Void)? = nil
    ) throws -> RaftNode<RecordingMachine> {
        mkdir(root + "/" + name, 0o755)
        var options = RaftOptions()
        options.electionTimeout = .milliseconds(200)
        options.heartbeatInterval = .milliseconds(40)
        options.trailingEntries = 2
        let node = try RaftNode(
            id: ServerID(name), directory: root + "/" + name, machine: RecordingMachine(), transport: network, clock: clock,
            random: SeededRandom(seed: UInt64(name.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) })), options: options,
            bootstrap: ClusterConfiguration(voters: voters.map { ServerID($0) }), snapshots: snapshots,
            wal: WALOptions(segmentBytes: 64 * 1024), beforeSync: beforeSync)
        network.attach(node)
        return node
    }

    /// Advances the manual clock and lets messages flow until `done` holds (bounded).
    func drive(
        _ nodes: [RaftNode<RecordingMachine>], network: LocalNetwork, clock: ManualClock, until done: () async -> Bool
    ) async -> Bool {
        for _ in 0..<1000 {
            if await done() { return true }
            clock.advance(by: .milliseconds(10))
            for node in nodes { await node.tick() }
            await quiesce(nodes, network: network)
        }
        return await done()
    }

    /// Waits (bounded) until no message is in flight and no node has a write queued, twice in a
    /// row with a trip through every node's event loop in between (a finished write's report and
    /// the messages it releases are queued there). The nodes run on their event loops and the
    /// writers on their queues, in real time, while the test's clock stands still.
    func quiesce(_ nodes: [RaftNode<RecordingMachine>], network: LocalNetwork) async {
        var quiet = 0
        for _ in 0..<5000 where quiet < 2 {
            var idle = network.inFlight.value.withLock { $0 } == 0
            for node in nodes where await node.diskStats().queued > 0 { idle = false }
            quiet = idle ? quiet + 1 : 0
            if !idle { try? await Task.sleep(for: .microseconds(200)) }
        }
    }

    func leader(of nodes: [RaftNode<RecordingMachine>]) async -> RaftNode<RecordingMachine>? {
        for node in nodes where await node.status().role == "leader" { return node }
        return nil
    }

    @Test func singleServerSurvivesRestartWithSnapshotsAndCheckpoints() async throws {
        defer { cleanUp() }
        let clock = ManualClock()
        let network = LocalNetwork()
        var node = try makeNode("n1", voters: ["n1"], network: network, clock: clock, snapshots: .every(4))
        #expect(await drive([node], network: network, clock: clock) { await node.status().role == "leader" })
        for n in 1...10 {
            let answer = try await node.propose([UInt8(n)])
            #expect(answer == [UInt8(n)])
        }
        // Snapshots are taken off the loop, on a thread of their own at a lower priority (slow
        // on a loaded machine): wait for one past 8 and for its log record to be written, as a
        // stop drops log writes not yet started.
        #expect(await snapshotted(node, through: 8))
        await quiesce([node], network: network)
        let before = await node.withMachine { $0.commands }
        await node.stop()
        // The checkpoints left out the trailing entries the snapshot covers (kept in memory only).
        let (_, replayed) = try SegmentedWAL.open(directory: root + "/n1/wal")
        let snapshotIndex = try #require(replayed.snapshot?.metadata.index)
        #expect(snapshotIndex >= 8)
        #expect(replayed.entries.allSatisfy { $0.index > snapshotIndex })
        node = try makeNode("n1", voters: ["n1"], network: network, clock: clock, snapshots: .every(4))
        #expect(await drive([node], network: network, clock: clock) { await node.status().role == "leader" })
        try await node.barrier()
        #expect(await node.withMachine { $0.commands } == before)
        #expect(before == (1...10).map { [UInt8($0)] })
        await node.stop()
    }

    /// Snapshots as Consul's servers take them: at a periodic check, once the threshold is
    /// reached, not as soon as it is; past the policy's limit at once, whatever the time, once the
    /// commands since the last snapshot add up to its size (at most; at least half of it).
    @Test func snapshotsWaitForThePeriodicCheckUpToTheLimit() async throws {
        defer { cleanUp() }
        let clock = ManualClock()
        let network = LocalNetwork()
        let policy = SnapshotPolicy(threshold: 4, interval: .seconds(10), limit: 12)
        let node = try makeNode("n1", voters: ["n1"], network: network, clock: clock, snapshots: policy)
        #expect(await drive([node], network: network, clock: clock) { await node.status().role == "leader" })
        for n in 1...6 { _ = try await node.propose([UInt8](repeating: UInt8(n), count: 16)) }
        await quiesce([node], network: network)
        #expect(await node.status().snapshotIndex == 0)
        // The first check falls between 10 and 20 s after the node started.
        clock.advance(by: .seconds(20))
        await node.tick()
        let applied = await node.status().appliedIndex
        #expect(await snapshotted(node, through: applied))
        let snapshotBytes = try #require(try SnapshotStore(directory: root + "/n1/snapshots").latest()).data.count
        #expect(snapshotBytes >= 6 * 16)
        // Under the threshold at the next check: nothing new.
        _ = try await node.propose([7])
        clock.advance(by: .seconds(20))
        await node.tick()
        await quiesce([node], network: network)
        #expect(await node.status().snapshotIndex == applied)
        // Past the limit (14 entries since the snapshot, the limit is 12) but with fewer bytes
        // than half the snapshot's: no snapshot without a check.
        for n in 8...20 { _ = try await node.propose([UInt8(n)]) }
        await quiesce([node], network: network)
        #expect(await node.status().snapshotIndex == applied)
        // As many bytes as the snapshot: one at once.
        _ = try await node.propose([UInt8](repeating: 21, count: snapshotBytes))
        #expect(await snapshotted(node, through: applied + 15))
        // A reloaded policy takes effect at once: 2 entries are past a threshold of 2 without checks.
        _ = try await node.propose([22])
        _ = try await node.propose([23])
        let latest = await node.status().appliedIndex
        await node.reconfigureSnapshots(.every(2), trailingEntries: 0)
        #expect(await snapshotted(node, through: latest))
        await node.stop()
    }

    /// Waits (bounded, in real time: snapshots are written on a thread of their own) until the
    /// node's newest snapshot covers `index`.
    func snapshotted(_ node: RaftNode<RecordingMachine>, through index: LogIndex) async -> Bool {
        for _ in 0..<1000 {
            if await node.status().snapshotIndex >= index { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// The term and vote live in the stable store, not in the log: after an election the file
    /// holds the node's term and its vote for itself, no log record carries a hard state, and a
    /// restarted node starts from that term.
    @Test func termAndVoteLiveInTheStableStore() async throws {
        defer { cleanUp() }
        let clock = ManualClock()
        let network = LocalNetwork()
        var node = try makeNode("n1", voters: ["n1"], network: network, clock: clock)
        #expect(try StableStore(directory: root + "/n1").load() == HardState(term: 1))
        #expect(await drive([node], network: network, clock: clock) { await node.status().role == "leader" })
        _ = try await node.propose([1])
        let term = await node.status().term
        await node.stop()
        #expect(term > 1)
        #expect(try StableStore(directory: root + "/n1").load() == HardState(term: term, votedFor: ServerID("n1")))
        let (_, replayed) = try SegmentedWAL.open(directory: root + "/n1/wal")
        #expect(replayed.hardState == HardState())
        #expect(replayed.entries.count >= 3)
        node = try makeNode("n1", voters: ["n1"], network: network, clock: clock)
        #expect(await node.status().term == term)
        await node.stop()
    }

    /// A log written before the stable store, with the term and vote in a record: the node starts
    /// from that term and vote and moves them into the stable store at once.
    @Test func legacyHardStateInTheLogMovesToTheStableStore() async throws {
        defer { cleanUp() }
        mkdir(root + "/n1", 0o755)
        do {
            let (wal, _) = try SegmentedWAL.open(directory: root + "/n1/wal", preallocate: false)
            try wal.append(PersistWork(entries: [LogEntry(index: 1, term: 1, payload: .configuration(ClusterConfiguration(voters: [ServerID("n1")])))]))
            try wal.sync()
        }
        // Appended by hand: today's writer never puts a hard state into a record.
        let bytes = WALRecordTests.legacyHardStateRecord(term: 3, votedFor: "n1")
        let segment = root + "/n1/wal/wal-0000000000000001.log"
        let fd = open(segment, O_WRONLY | O_APPEND)
        #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count)
        close(fd)
        let network = LocalNetwork()
        let node = try makeNode("n1", voters: ["n1"], network: network, clock: ManualClock())
        #expect(await node.status().term == 3)
        #expect(try StableStore(directory: root + "/n1").load() == HardState(term: 3, votedFor: ServerID("n1")))
        await node.stop()
    }

    /// `consul info`'s raft section, with hashicorp/raft's keys and formats.
    @Test func statsUseConsulInfoKeys() async throws {
        defer { cleanUp() }
        let clock = ManualClock()
        let network = LocalNetwork()
        let voters = ["n1", "n2", "n3"]
        let nodes = try voters.map { try makeNode($0, voters: voters, network: network, clock: clock) }
        let fresh = await nodes[0].stats()
        #expect(fresh["state"] == "Follower")
        #expect(fresh["last_contact"] == "never")
        #expect(fresh["num_peers"] == "2")
        #expect(await drive(nodes, network: network, clock: clock) { await leader(of: nodes) != nil })
        let leaderNode = try #require(await leader(of: nodes))
        _ = try await leaderNode.propose([1])
        let stats = await leaderNode.stats()
        #expect(Set(stats.keys) == [
            "applied_index", "commit_index", "fsm_pending", "last_contact", "last_log_index", "last_log_term",
            "last_snapshot_index", "last_snapshot_term", "num_peers", "protocol_version", "state", "term",
        ])
        #expect(stats["state"] == "Leader")
        #expect(stats["last_contact"] == "0")
        // The leader's own stream of leader changes reports it; verifyLeader confirms it with a quorum.
        var announced: LeaderInfo?
        for await change in leaderNode.leaderChanges where change.leader != nil {
            announced = change
            break
        }
        #expect(announced?.leader == leaderNode.id)
        try await leaderNode.verifyLeader()
        #expect(stats["protocol_version"] == "3")
        #expect(stats["applied_index"] == stats["commit_index"])
        #expect(stats["last_log_index"] == stats["commit_index"])
        #expect(await drive(nodes, network: network, clock: clock) {
            for node in nodes where await node.stats()["state"] == "Follower" {
                if await node.stats()["last_contact"]?.hasSuffix("s") != true { return false }
            }
            return true
        })
        for node in nodes { await node.stop() }
    }

    /// The timer task alone (real clock, no manual ticks) gets a cluster to elect and commit.
    @Test func timerTaskDrivesElections() async throws {
        defer { cleanUp() }
        let clock = SystemMonotonicClock()
        let network = LocalNetwork()
        let voters = ["n1", "n2", "n3"]
        var nodes: [RaftNode<RecordingMachine>] = []
        for name in voters {
            mkdir(root + "/" + name, 0o755)
            var options = RaftOptions()
            options.electionTimeout = .milliseconds(300)
            options.heartbeatInterval = .milliseconds(50)
            options.retransmitTimeout = .milliseconds(150)
            let node = try RaftNode(
                id: ServerID(name), directory: root + "/" + name, machine: RecordingMachine(), transport: network, clock: clock,
                random: SeededRandom(seed: UInt64(nodes.count + 1)), options: options,
                bootstrap: ClusterConfiguration(voters: voters.map { ServerID($0) }), wal: WALOptions(segmentBytes: 64 * 1024))
            network.attach(node)
            nodes.append(node)
        }
        for node in nodes { await node.start() }
        // Bounded (no timing assertion): up to ~20 s for a leader that commits a proposal; a loaded
        // machine may see leadership move in between, so a refused or lost proposal is retried.
        var answer: [UInt8]?
        for _ in 0..<2000 where answer == nil {
            try await Task.sleep(for: .milliseconds(10))
            if let current = await leader(of: nodes) {
                answer = try? await current.propose([42])
            }
        }
        #expect(answer == [1] || answer == [2])
        for node in nodes { await node.stop() }
    }

    /// A leader of two whose follower is gone steps down (check-quorum) and answers the write it
    /// could not commit with `.leadershipLost`, instead of leaving its caller waiting for a leader
    /// that cannot be elected.
    @Test func writePendingWhenLeadershipIsLostIsAnswered() async throws {
        defer { cleanUp() }
        let clock = ManualClock()
        let network = LocalNetwork()
        let voters = ["n1", "n2"]
        let nodes = try voters.map { try makeNode($0, voters: voters, network: network, clock: clock) }
        #expect(await drive(nodes, network: network, clock: clock) { await leader(of: nodes) != nil })
        let leaderNode = try #require(await leader(of: nodes))
        _ = try await leaderNode.propose([1])
        let follower = try #require(nodes.first { $0.id != leaderNode.id })
        network.routes.withLock { $0[follower.id] = nil }
        let before = await leaderNode.status().lastIndex
        let outcome = Mutex<Result<[UInt8], RaftNodeError>?>(nil)
        Task {
            do throws(RaftNodeError) {
                let answer = try await leaderNode.propose([2])
                outcome.withLock { $0 = .success(answer) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
        }
        // The entry is in the leader's log (so the write is waiting for its commit) before time moves.
        #expect(await drive(nodes, network: network, clock: clock) { await leaderNode.status().lastIndex > before })
        #expect(await drive(nodes, network: network, clock: clock) { await leaderNode.status().role != "leader" })
        // Bounded: without the answer the write would wait forever (stop() below then ends it).
        for _ in 0..<500 where outcome.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(10)) }
        #expect(outcome.withLock { $0 } == .failure(.leadershipLost))
        for node in nodes { await node.stop() }
    }

    @Test func threeServersReplicateAndReadLinearizably() async throws {
        defer { cleanUp() }
        let clock = ManualClock()
        let network = LocalNetwork()
        let voters = ["n1", "n2", "n3"]
        let nodes = try voters.map { try makeNode($0, voters: voters, network: network, clock: clock) }
        #expect(await drive(nodes, network: network, clock: clock) { await leader(of: nodes) != nil })
        let leaderNode = try #require(await leader(of: nodes))
        for n in 1...5 { _ = try await leaderNode.propose([UInt8(n)]) }
        try await leaderNode.linearizableRead()
        #expect(await leaderNode.withMachine { $0.commands.count } == 5)
        // Followers catch up and apply the same sequence.
        #expect(await drive(nodes, network: network, clock: clock) {
            for node in nodes where await node.withMachine({ $0.commands.count }) != 5 { return false }
            return true
        })
        let follower = try #require(await { () async -> RaftNode<RecordingMachine>? in
            for node in nodes where await node.status().role != "leader" { return node }
            return nil
        }())
        await #expect(throws: RaftNodeError.self) { _ = try await follower.propose([9]) }
        for node in nodes { await node.stop() }
    }

    /// Group commit, counted rather than timed: while the writer's first fsync is held, 100
    /// concurrent proposals pile up behind it; none is acknowledged before its fsync, and all of
    /// them together cost at most two fsyncs (they also share core steps: see proposeBatch).
    @Test func concurrentProposalsShareFsyncs() async throws {
        defer { cleanUp() }
        let clock = ManualClock()
        let network = LocalNetwork()
        let holding = Shared(false)
        let gate = DispatchSemaphore(value: 0)
        let node = try makeNode("n1", voters: ["n1"], network: network, clock: clock, beforeSync: {
            // Bounded: a broken test releases itself after 10 s.
            if holding.value.withLock({ $0 }) { _ = gate.wait(timeout: .now() + .seconds(10)) }
        })
        #expect(await drive([node], network: network, clock: clock) { await node.status().role == "leader" })
        try await node.barrier()
        let before = await node.diskStats()
        let startIndex = await node.status().lastIndex
        holding.value.withLock { $0 = true }
        let acknowledged = Shared(0)
        let count = 100
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<count {
                group.addTask {
                    _ = try await node.propose([UInt8(truncatingIfNeeded: n)])
                    acknowledged.value.withLock { $0 += 1 }
                }
            }
            var appended: LogIndex = 0
            for _ in 0..<500 where appended < UInt64(count) {
                try await Task.sleep(for: .milliseconds(10))
                appended = await node.status().lastIndex - startIndex
            }
            #expect(appended == UInt64(count))
            #expect(acknowledged.value.withLock { $0 } == 0)
            holding.value.withLock { $0 = false }
            gate.signal()
            try await group.waitForAll()
        }
        let after = await node.diskStats()
        #expect(acknowledged.value.withLock { $0 } == count)
        #expect(after.entries - before.entries == count)
        #expect(after.syncs - before.syncs <= 2)
        #expect(await node.withMachine { $0.commands.count } == count)
        await node.stop()
    }

    /// The writer itself: jobs submitted while an fsync runs all go into the next one.
    @Test func diskWriterGroupsJobsQueuedDuringAnFsync() async throws {
        defer { cleanUp() }
        mkdir(root + "/n1", 0o755)
        let (wal, _) = try SegmentedWAL.open(directory: root + "/n1/wal")
        let snapshots = try SnapshotStore(directory: root + "/n1/snapshots")
        let (events, sink) = AsyncStream.makeStream(of: DiskWriter.Event.self)
        let inSync = Shared(0)
        let gate = DispatchSemaphore(value: 0)
        let writer = DiskWriter(wal: wal, snapshots: snapshots, stable: StableStore(directory: root + "/n1"), label: "test", report: { sink.yield($0) }, beforeSync: {
            if inSync.value.withLock({ $0 += 1; return $0 }) == 1 { _ = gate.wait(timeout: .now() + .seconds(10)) }
        })
        func job(_ index: LogIndex) -> DiskWriter.Job {
            .persist(PersistWork(hardState: index == 1 ? HardState(term: 1) : nil, entries: [LogEntry(index: index, term: 1, payload: .noop)]), then: nil)
        }
        writer.submit(job(1))
        for _ in 0..<500 where inSync.value.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        for index in 2...100 { writer.submit(job(LogIndex(index))) }
        gate.signal()
        var durable: UInt64 = 0
        for await event in events {
            guard case .durable(let seq) = event else { break }
            durable = seq
            if durable == 100 { break }
        }
        #expect(durable == 100)
        #expect(writer.stats.syncs == 2)
        #expect(writer.stats.largestGroup == 99)
        await writer.close()
        let (_, state) = try SegmentedWAL.open(directory: root + "/n1/wal")
        #expect(state.entries.map(\.index) == Array(1...100))
    }

    /// Outage recovery: two of three servers are gone for good; `peers.json` listing only the
    /// survivor makes it a one-server cluster that still holds every write, and the file is removed.
    @Test func peersFileRecoversFromLostQuorum() async throws {
        defer { cleanUp() }
        let clock = ManualClock()
        let network = LocalNetwork()
        let voters = ["n1", "n2", "n3"]
        let nodes = try voters.map { try makeNode($0, voters: voters, network: network, clock: clock) }
        #expect(await drive(nodes, network: network, clock: clock) { await leader(of: nodes) != nil })
        let leaderNode = try #require(await leader(of: nodes))
        for n in 1...5 { _ = try await leaderNode.propose([UInt8(n)]) }
        #expect(await drive(nodes, network: network, clock: clock) { await nodes[0].withMachine { $0.commands.count } == 5 })
        for node in nodes { await node.stop() }

        let path = root + "/n1/peers.json"
        func writePeers(_ text: String) {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            _ = text.utf8CString.withUnsafeBytes { write(fd, $0.baseAddress, $0.count - 1) }
            close(fd)
        }
        // A malformed file stops the start with an error naming it; nothing is changed.
        writePeers(#"[{"id": "n1"}]"#)
        #expect(throws: RaftNodeError.peersFile(PeersFile.ParseError(
            path: path, problem: #"server 1 (n1) has no "address" (a non-empty "host:port" string)"#))) {
            _ = try makeNode("n1", voters: voters, network: network, clock: clock)
        }
        writePeers(#"[{"id": "n1", "address": "127.0.0.1:8300", "non_voter": false}]"#)
        let survivor = try makeNode("n1", voters: voters, network: network, clock: clock)
        #expect(access(path, F_OK) != 0)
        #expect(await survivor.status().configuration.servers == [
            ServerEntry(id: ServerID("n1"), suffrage: .voter, address: "127.0.0.1:8300"),
        ])
        #expect(await drive([survivor], network: network, clock: clock) { await survivor.status().role == "leader" })
        _ = try await survivor.propose([6])
        #expect(await survivor.withMachine { $0.commands } == (1...6).map { [UInt8($0)] })
        await survivor.stop()
        // The recovered configuration is durable: a plain restart keeps it.
        let again = try makeNode("n1", voters: voters, network: network, clock: clock)
        #expect(await again.status().configuration.voters == [ServerID("n1")])
        #expect(await drive([again], network: network, clock: clock) { await again.status().role == "leader" })
        try await again.barrier()
        #expect(await again.withMachine { $0.commands.count } == 6)
        await again.stop()
    }
}
