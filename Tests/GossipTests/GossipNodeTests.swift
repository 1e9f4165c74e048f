import ConsulCore
import ConsulCrypto
import Synchronization
import Testing
import TestSupport
@testable import Gossip

#if canImport(Glibc)
import Glibc
#endif

/// Collects log lines and events from nodes under test.
final class TestRecorder: Sendable {
    private let lines = Mutex<[String]>([])
    private let events = Mutex<[(String, GossipNodeEvent)]>([])

    func sink(_ prefix: String) -> GossipLogSink {
        { [self] level, text in lines.withLock { $0.append("\(prefix) [\(level)] \(text)") } }
    }

    func handler(_ name: String) -> GossipEventHandler {
        { [self] event in events.withLock { $0.append((name, event)) } }
    }

    var log: [String] { lines.withLock { $0 } }
    func events(of name: String) -> [GossipNodeEvent] { events.withLock { $0.filter { $0.0 == name }.map(\.1) } }
}

/// Polls `condition` every 50 ms for at most `limit` (no timing is asserted, only that it happens).
/// The default is generous: CI runs these beside every other test on 2 cores, and failure
/// detection alone may take a probe round plus the longest suspicion timeout (18 s locally).
func eventually(within limit: Duration = .seconds(60), _ condition: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let end = clock.now + limit
    while clock.now < end {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return condition()
}

func makeNode(
    _ name: String, keyring: Keyring? = nil, verifyIncoming: Bool = true, verifyOutgoing: Bool = true,
    recorder: TestRecorder, profile: SWIMConfig = .lan
) -> GossipNode {
    var configuration = GossipNodeConfiguration(
        name: name, bindAddress: GossipAddress(ip: [127, 0, 0, 1], port: 0), serf: SerfConfig(swim: profile), keyring: keyring)
    configuration.verifyIncoming = verifyIncoming
    configuration.verifyOutgoing = verifyOutgoing
    let clock = SystemMonotonicClock()
    let logger = RateLimitedLogger(minimumLevel: .debug, burst: 1000, clock: clock, sink: recorder.sink(name))
    return GossipNode(configuration: configuration, clock: clock, logger: logger, onEvent: recorder.handler(name))
}

func status(_ node: GossipNode, sees name: String) -> SerfMemberStatus? { node.member(name)?.status }

@Suite(.serialized) struct GossipNodeTests {
    @Test func threeNodesJoinFailAndLeaveOverRealSockets() async throws {
        let recorder = TestRecorder()
        let nodes = ["a", "b", "c"].map { makeNode($0, recorder: recorder) }
        for node in nodes { try await node.start() }
        let seed = nodes[0].address!
        for node in nodes.dropFirst() { try await node.join([seed]) }
        #expect(await eventually { nodes.allSatisfy { node in ["a", "b", "c"].allSatisfy { status(node, sees: $0) == .alive } } })
        #expect(await eventually { nodes[0].metrics.packetsIn > 0 && nodes[0].metrics.streamsIn > 0 })

        // c stops without a word: the others see it fail.
        await nodes[2].shutdown()
        #expect(await eventually { status(nodes[0], sees: "c") == .failed && status(nodes[1], sees: "c") == .failed })
        // The member event is delivered after the status changes: wait for it too.
        #expect(await eventually {
            recorder.events(of: "a").contains { if case .member(let event) = $0 { event.kind == .failed && event.member.name == "c" } else { false } }
        })

        // b leaves gracefully: a sees it left.
        await nodes[1].leave()
        await nodes[1].leave()  // a second leave returns at once
        await nodes[1].shutdown()
        #expect(await eventually { status(nodes[0], sees: "b") == .left })
        #expect(await eventually { nodes[0].metrics.probes > 0 })
        await nodes[0].shutdown()
    }

    @Test func forceLeaveMovesAKilledNodeToLeftEverywhere() async throws {
        let recorder = TestRecorder()
        let names = ["a", "b", "c", "d"]
        let nodes = names.map { makeNode($0, recorder: recorder) }
        for node in nodes { try await node.start() }
        for node in nodes.dropFirst() { try await node.join([nodes[0].address!]) }
        #expect(await eventually { nodes.allSatisfy { node in names.allSatisfy { status(node, sees: $0) == .alive } } })

        await #expect(throws: GossipNodeError.serf(.unknownMember("ghost"))) { try await nodes[0].forceLeave("ghost", prune: false) }
        #expect(GossipNodeError.serf(.unknownMember("ghost")).description == "agent: No node found with name 'ghost'")

        // d is killed; once the others see it failed, a forces it out.
        await nodes[3].shutdown()
        let survivors = Array(nodes.prefix(3))
        #expect(await eventually { survivors.allSatisfy { status($0, sees: "d") == .failed } })
        try await nodes[0].forceLeave("d", prune: false)
        #expect(await eventually { survivors.allSatisfy { status($0, sees: "d") == .left } })
        #expect(await eventually {
            recorder.events(of: "b").contains { if case .member(let event) = $0 { event.kind == .leave && event.member.name == "d" } else { false } }
        })

        // With prune, every survivor forgets it.
        try await nodes[1].forceLeave("d", prune: true)
        #expect(await eventually { survivors.allSatisfy { $0.members.map(\.name) == ["a", "b", "c"] } })
        for node in survivors { await node.shutdown() }
        await #expect(throws: GossipNodeError.notRunning) { try await nodes[0].forceLeave("b", prune: false) }
    }

    @Test func restartedNodeRejoinsFromItsSnapshotAlone() async throws {
        var template = Array("/tmp/gossip-rejoin-XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        let path = directory + "/" + GossipSnapshotFile.lanPath
        defer {
            for file in [path, path + ".compact"] { unlink(file) }
            rmdir(directory + "/serf")
            rmdir(directory)
        }
        let recorder = TestRecorder()
        func snapshotNode(port: UInt16, rejoinAfterLeave: Bool = false) -> GossipNode {
            var configuration = GossipNodeConfiguration(name: "c", bindAddress: GossipAddress(ip: [127, 0, 0, 1], port: port))
            configuration.snapshotPath = path
            configuration.rejoinAfterLeave = rejoinAfterLeave
            let clock = SystemMonotonicClock()
            let logger = RateLimitedLogger(minimumLevel: .debug, burst: 1000, clock: clock, sink: recorder.sink("c"))
            return GossipNode(configuration: configuration, clock: clock, logger: logger, onEvent: recorder.handler("c"))
        }
        let a = makeNode("a", recorder: recorder)
        let b = makeNode("b", recorder: recorder)
        try await a.start()
        try await b.start()
        try await b.join([a.address!])
        // Restarted on its port below: one that stays ours while the node is down.
        let first = snapshotNode(port: UInt16(try #require(ReusablePorts.next(udp: true))))
        try await first.start()
        #expect(first.previousMembers.isEmpty)
        try await first.join([a.address!])
        #expect(await eventually { ["a", "b", "c"].allSatisfy { status(first, sees: $0) == .alive } })
        let port = first.address!.port

        // Killed, restarted on its port with nothing but the snapshot: it finds the pool again.
        await first.shutdown()
        let second = snapshotNode(port: port)
        try await second.start()
        #expect(Set(second.previousMembers) == [a.address!, b.address!])
        #expect(await second.rejoinPrevious() == 1)
        #expect(await eventually {
            ["a", "b", "c"].allSatisfy { status(second, sees: $0) == .alive } && status(a, sees: "c") == .alive && status(b, sees: "c") == .alive
        })
        #expect(recorder.log.contains { $0.hasPrefix("c ") && $0.contains("Re-joined to previously known node") })

        // After a graceful leave it does not rejoin on its own...
        await second.leave()
        await second.shutdown()
        #expect(await eventually { status(a, sees: "c") == .left })
        let third = snapshotNode(port: port)
        try await third.start()
        #expect(third.previousMembers.isEmpty)
        #expect(await third.rejoinPrevious() == 0)
        await third.shutdown()
        // ...unless told to rejoin after a leave (Consul -rejoin), which still finds the members
        // recorded before the leave.
        let fourth = snapshotNode(port: port, rejoinAfterLeave: true)
        try await fourth.start()
        #expect(Set(fourth.previousMembers) == [a.address!, b.address!])
        #expect(await fourth.rejoinPrevious() == 1)
        #expect(await eventually { status(a, sees: "c") == .alive && status(fourth, sees: "b") == .alive })
        for node in [fourth, a, b] { await node.shutdown() }
    }

    @Test func impostorOfATakenNameLosesTheVoteAndStops() async throws {
        let recorder = TestRecorder()
        let nodes = ["a", "b", "c"].map { makeNode($0, recorder: recorder) }
        for node in nodes { try await node.start() }
        for node in nodes.dropFirst() { try await node.join([nodes[0].address!]) }
        #expect(await eventually { nodes.allSatisfy { node in ["a", "b", "c"].allSatisfy { status(node, sees: $0) == .alive } } })
        let original = nodes[1].address!

        let reported = Mutex<[SerfNameConflict]>([])
        var configuration = GossipNodeConfiguration(name: "b", bindAddress: GossipAddress(ip: [127, 0, 0, 1], port: 0))
        configuration.serf = SerfConfig(swim: .lan)
        let clock = SystemMonotonicClock()
        let impostor = GossipNode(
            configuration: configuration, clock: clock,
            logger: RateLimitedLogger(minimumLevel: .debug, burst: 1000, clock: clock, sink: recorder.sink("impostor")),
            onNameConflict: { vote in reported.withLock { $0.append(vote) } })
        try await impostor.start()
        _ = try? await impostor.join([nodes[0].address!])
        #expect(await eventually { impostor.lostNameConflict != nil })
        #expect(reported.withLock { $0.count } == 1)
        #expect(impostor.lostNameConflict?.otherAddress == original)
        #expect(impostor.lostNameConflict?.matching == 0)
        // Its gossip is shut down; the pool still knows b at its own address.
        #expect(await eventually {
            do throws(GossipNodeError) {
                try impostor.userEvent(name: "x", payload: [])
                return false
            } catch {
                return error == .notRunning
            }
        })
        for node in nodes {
            #expect(node.member("b")?.address == original)
            #expect(node.lostNameConflict == nil)
        }
        #expect(recorder.log.contains { $0.hasPrefix("impostor ") && $0.contains("minority in name conflict resolution, quitting") })
        for node in nodes { await node.shutdown() }
    }

    @Test func userEventsAndQueriesTravelEncrypted() async throws {
        let recorder = TestRecorder()
        let keyring = Keyring(primary: GossipKey.generate())
        let a = makeNode("a", keyring: keyring, recorder: recorder)
        let b = makeNode("b", keyring: keyring, recorder: recorder)
        try await a.start()
        try await b.start()
        try await b.join([a.address!])
        #expect(await eventually { status(a, sees: "b") == .alive })
        try b.userEvent(name: "deploy", payload: Array("v1".utf8))
        #expect(await eventually {
            recorder.events(of: "a").contains { if case .user(let event) = $0 { event.name == "deploy" && event.payload == Array("v1".utf8) } else { false } }
        })
        // A loaded machine may answer after the query's (short) timeout: ask again, a few times.
        var listing = SerfKeyOperationResult()
        for _ in 0..<5 where listing.keys[keyring.primaryKey.base64] != 2 {
            listing = try await a.keyOperation(.list)
        }
        #expect(listing.keys == [keyring.primaryKey.base64: 2])
        #expect(a.metrics.decryptFailures == 0 && a.metrics.plaintextDropped == 0)
        await a.shutdown()
        await b.shutdown()
    }

    @Test func wrongKeyAndMissingKeyAreRefusedWithReasons() async throws {
        let recorder = TestRecorder()
        let a = makeNode("a", keyring: Keyring(primary: GossipKey.generate()), recorder: recorder)
        let wrong = makeNode("wrong", keyring: Keyring(primary: GossipKey.generate()), recorder: recorder)
        let plain = makeNode("plain", recorder: recorder)
        try await a.start()
        try await wrong.start()
        try await plain.start()
        await #expect(throws: GossipNodeError.joinFailed(["Failed to join 127.0.0.1: No installed keys could decrypt the message"])) {
            try await wrong.join([a.address!])
        }
        await #expect(throws: GossipNodeError.joinFailed(["Failed to join 127.0.0.1: Remote state is encrypted and encryption is not configured"])) {
            try await plain.join([a.address!])
        }
        #expect(a.metrics.decryptFailures >= 1)
        #expect(a.metrics.plaintextDropped >= 1)
        #expect(a.members.map(\.name) == ["a"])
        #expect(recorder.log.contains { $0.hasPrefix("a ") && $0.contains("Encryption is configured but remote state is not encrypted") })
        for node in [a, wrong, plain] { await node.shutdown() }
    }

    @Test func verifyIncomingOffLetsPlaintextPeersIn() async throws {
        let recorder = TestRecorder()
        let key = GossipKey.generate()
        // Rolling encryption out: the keyed node accepts plaintext and still sends plaintext.
        let a = makeNode("a", keyring: Keyring(primary: key), verifyIncoming: false, verifyOutgoing: false, recorder: recorder)
        let plain = makeNode("plain", recorder: recorder)
        try await a.start()
        try await plain.start()
        try await plain.join([a.address!])
        #expect(await eventually { status(a, sees: "plain") == .alive && status(plain, sees: "a") == .alive })
        await a.shutdown()
        await plain.shutdown()
    }

    @Test func garbageFromPeersIsCountedAndHarmless() async throws {
        let recorder = TestRecorder()
        let a = makeNode("a", keyring: Keyring(primary: GossipKey.generate()), recorder: recorder)
        let b = makeNode("b", keyring: a.configuration.keyring, recorder: recorder)
        try await a.start()
        try await b.start()
        try await b.join([a.address!])
        let port = a.address!.port
        var random = SeededRandom(seed: 99)
        for size in [0, 1, 5, 29, 64, 1400, 9000] {
            sendUDP((0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) }, port: port)
            sendTCP((0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) }, port: port)
        }
        sendTCP([10, 0xFF, 0xFF, 0xFF, 0xFF], port: port)  // a frame claiming 4 GiB
        #expect(await eventually { a.metrics.decryptFailures + a.metrics.plaintextDropped + a.metrics.malformed >= 5 })
        #expect(await eventually { status(a, sees: "b") == .alive && status(b, sees: "a") == .alive })
        try b.userEvent(name: "still-working", payload: [])
        #expect(await eventually {
            recorder.events(of: "a").contains { if case .user(let event) = $0 { event.name == "still-working" } else { false } }
        })
        await a.shutdown()
        await b.shutdown()
    }
}

@Suite struct GossipKeyringFileTests {
    private func temporaryDirectory() -> String {
        var template = Array("/tmp/gossip-keyring-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    /// Removes what these tests create: the keyring file (and its temporary), `serf/`, the directory.
    private func remove(_ directory: String) {
        for file in ["/serf/local.keyring", "/serf/local.keyring.tmp", "/serf/remote.keyring"] { unlink(directory + file) }
        rmdir(directory + "/serf")
        rmdir(directory)
    }

    @Test func keyringFileWinsOverEncryptAndSaysSo() throws {
        let directory = temporaryDirectory()
        defer { remove(directory) }
        let first = GossipKey.generate()
        let second = GossipKey.generate()
        // No file yet: the 'encrypt' key is used and saved.
        let created = try GossipKeyringFile.resolve(dataDirectory: directory, encrypt: first.base64)
        #expect(created.keyring?.keys == [first])
        #expect(created.source == .encryptSetting(savedTo: directory + "/serf/local.keyring"))
        #expect(created.messages.last?.1.contains("key from the 'encrypt' setting") == true)
        // The file exists now: a different 'encrypt' is ignored, with a warning naming the file.
        var ring = created.keyring!
        ring.install(second)
        try GossipKeyringFile.save(ring, to: directory + "/serf/local.keyring")
        let loaded = try GossipKeyringFile.resolve(dataDirectory: directory, encrypt: second.base64)
        #expect(loaded.keyring?.keys == [first, second])
        #expect(loaded.source == .keyringFile(path: directory + "/serf/local.keyring"))
        #expect(loaded.messages.first?.0 == .warn)
        #expect(loaded.messages.first?.1.contains("keyring exists but -encrypt given, using keyring") == true)
        // The WAN pool has its own file.
        let wan = try GossipKeyringFile.resolve(dataDirectory: directory, wan: true, encrypt: nil)
        #expect(wan.keyring == nil && wan.source == .none)
    }

    @Test func badFilesAreNamedInTheError() throws {
        let directory = temporaryDirectory()
        defer { remove(directory) }
        let path = directory + "/serf/local.keyring"
        try GossipKeyringFile.makeParentDirectory(of: path)
        for (content, expected) in [
            ("{}", "is not a JSON list"), ("[\"not-a-key\"]", "key 1"), ("[]", "holds no keys"), ("[1]", "key 1: not a string"),
        ] {
            try GossipKeyringFile.writeFileAtomically(path, Array(content.utf8), mode: 0o600)
            do {
                _ = try GossipKeyringFile.load(path)
                Issue.record("\(content) was accepted")
            } catch {
                #expect(error.description.contains(path) && error.description.contains(expected), "\(error)")
            }
        }
        #expect(throws: GossipKeyringFileError.self) { try GossipKeyringFile.resolve(dataDirectory: nil, encrypt: "short") }
    }
}

@Suite struct RateLimitedLoggerTests {
    @Test func repeatsAreSuppressedAndCounted() {
        let clock = ManualClock()
        let lines = Mutex<[String]>([])
        let logger = RateLimitedLogger(minimumLevel: .info, burst: 2, interval: .seconds(10), clock: clock) { _, text in
            lines.withLock { $0.append(text) }
        }
        for index in 0..<5 { logger.log(.error, "Decrypt packet failed: from=10.0.0.\(index)") }
        logger.log(.debug, "hidden")
        logger.log(.info, "another kind of line")
        #expect(lines.withLock { $0.count } == 3)
        clock.advance(by: .seconds(11))
        logger.log(.error, "Decrypt packet failed: from=10.0.0.9")
        #expect(lines.withLock { $0.last } == "Decrypt packet failed: from=10.0.0.9 (3 similar lines suppressed)")
    }
}

/// Raw sockets for the garbage test (no NIO on the sending side).
private func sendUDP(_ bytes: [UInt8], port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { return }
    defer { close(fd) }
    var address = loopback(port)
    _ = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { target in
            bytes.withUnsafeBytes { raw in sendto(fd, raw.baseAddress, raw.count, 0, target, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}

private func sendTCP(_ bytes: [UInt8], port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return }
    defer { close(fd) }
    var address = loopback(port)
    let connected = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return }
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
}

private func loopback(_ port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
}
