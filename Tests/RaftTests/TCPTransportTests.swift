import ConsulCore
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
import TestSupport
@testable import Raft

/// One RaftNode with a real TCP transport on 127.0.0.1.
struct TCPServer {
    let node: RaftNode<RecordingMachine>
    let transport: RaftTCPTransport
    let pump: Task<Void, Never>

    static func start(
        _ id: String, directory: String, port: Int, addresses: [ServerID: String], seed: UInt64
    ) async throws -> TCPServer {
        let transport = RaftTCPTransport(localID: ServerID(id))
        _ = try await transport.listen(host: "127.0.0.1", port: port)
        var options = RaftOptions()
        options.electionTimeout = .milliseconds(300)
        options.heartbeatInterval = .milliseconds(50)
        options.retransmitTimeout = .milliseconds(150)
        options.trailingEntries = 4
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let configuration = ClusterConfiguration(servers: addresses.keys.sorted().map {
            ServerEntry(id: $0, suffrage: .voter, address: addresses[$0]!)
        })
        let node = try RaftNode(
            id: ServerID(id), directory: directory, machine: RecordingMachine(), transport: transport,
            clock: SystemMonotonicClock(), random: SeededRandom(seed: seed), options: options, bootstrap: configuration,
            snapshots: .every(16), wal: WALOptions(segmentBytes: 64 * 1024))
        let pump = Task {
            for await batch in transport.inbound { await node.receive(batch) }
        }
        await node.start()
        return TCPServer(node: node, transport: transport, pump: pump)
    }

    func stop() async {
        await node.stop()
        await transport.shutdown()
        await pump.value
    }
}

/// Sends raw bytes to 127.0.0.1:port over a fresh connection and keeps it open until `close`.
final class RawConnection {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw POSIXError(.ECONNREFUSED) }
    }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// True once the peer closed the connection (read returns 0 or fails); bounded wait.
    func waitClosed() -> Bool {
        var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pollFD, 1, 5_000) == 1 else { return false }
        var byte: UInt8 = 0
        return read(fd, &byte, 1) <= 0
    }

    deinit { close(fd) }
}

@Suite(.serialized) struct TCPTransportTests {
    let root: String

    init() {
        root = NSTemporaryDirectory() + "raft-tcp-" + UUID().uuidString
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: root) }

    /// Polls `condition` every 20 ms, at most `attempts` times.
    func eventually(_ attempts: Int = 500, _ condition: () async -> Bool) async -> Bool {
        for _ in 0..<attempts {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return await condition()
    }

    func leader(of servers: [TCPServer]) async -> TCPServer? {
        for server in servers where await server.node.status().role == "leader" { return server }
        return nil
    }

    /// Proposes through whichever node leads, retrying (bounded) while leadership settles. A leader
    /// that steps down answers `.leadershipLost` for an entry the next leader may still commit, so
    /// a retried command can be applied twice (at least once, as for any Raft client).
    func propose(_ command: [UInt8], to servers: [TCPServer]) async -> Bool {
        for _ in 0..<200 {
            if let current = await leader(of: servers), (try? await current.node.propose(command)) != nil { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// True when every server applied the same commands and, repeats of a retried command set
    /// aside, they are `expected` in order.
    func allApplied(_ expected: [[UInt8]], on servers: [TCPServer]) async -> Bool {
        let first = await servers[0].node.withMachine { $0.commands }
        for server in servers.dropFirst() where await server.node.withMachine({ $0.commands }) != first { return false }
        var seen = Set<[UInt8]>()
        return first.filter { seen.insert($0).inserted } == expected
    }

    @Test func threeNodesElectReplicateAndReconnect() async throws {
        defer { cleanUp() }
        let names = ["n1", "n2", "n3"]
        var ports: [String: Int] = [:]
        for name in names {
            let port = try #require(ReusablePorts.next())
            ports[name] = port
        }
        var addresses: [ServerID: String] = [:]
        for name in names { addresses[ServerID(name)] = "127.0.0.1:\(ports[name]!)" }
        var servers: [TCPServer] = []
        for (offset, name) in names.enumerated() {
            servers.append(try await TCPServer.start(
                name, directory: root + "/" + name, port: ports[name]!, addresses: addresses, seed: UInt64(offset + 1)))
        }
        for n in 1...20 { #expect(await propose([UInt8(n)], to: servers)) }
        #expect(await eventually { await allApplied((1...20).map { [UInt8($0)] }, on: servers) })

        // n3 goes away; the others go on (and take snapshots past what n3 has).
        let gone = try #require(servers.last)
        await gone.stop()
        for n in 21...60 { #expect(await propose([UInt8(n)], to: Array(servers.prefix(2)))) }
        // n3 comes back on the same address: the others reconnect and bring it up to date.
        servers[2] = try await TCPServer.start("n3", directory: root + "/n3", port: ports["n3"]!, addresses: addresses, seed: 33)
        #expect(await eventually { await allApplied((1...60).map { [UInt8($0)] }, on: servers) })
        var failedConnects = 0
        for server in servers.prefix(2) { failedConnects += server.transport.stats.connectsFailed }
        #expect(failedConnects > 0)
        for server in servers {
            #expect(server.transport.stats.garbageFrames == 0)
            await server.stop()
        }
    }

    @Test func badInputIsDroppedCountedAndSurvived() async throws {
        let transport = RaftTCPTransport(localID: ServerID("me"))
        let port = try await transport.listen(host: "127.0.0.1", port: 0).port!
        let good = Message(from: ServerID("peer"), to: ServerID("me"), term: 3, payload: .heartbeat(commit: 7, readRound: 1))
        var received = transport.inbound.makeAsyncIterator()

        // A frame whose body is garbage is dropped; the next frame on the same connection arrives.
        let connection = try RawConnection(port: port)
        connection.send([RaftTCPTransport.protocolByte] + [3, 0, 0, 0, 0xFF, 0xFE, 0xFD] + RaftWireCodec.encode(good))
        // Waits are bounded: the iterator is asked only once the batch is known to be there.
        try #require(await eventually { transport.stats.framesReceived == 1 })
        let first = await received.next()
        #expect(first == [good])
        #expect(transport.stats.garbageFrames == 1)

        // A length beyond the limit loses the framing: the connection is closed.
        connection.send([0xFF, 0xFF, 0xFF, 0x7F])
        #expect(connection.waitClosed())
        #expect(transport.stats.oversizedFrames == 1)

        // Not a Raft connection (TLS's first byte): closed and counted.
        let stranger = try RawConnection(port: port)
        stranger.send([0x16, 3, 1])
        #expect(stranger.waitClosed())
        #expect(transport.stats.rejectedConnections == 1)

        // Still serving.
        let again = try RawConnection(port: port)
        again.send([RaftTCPTransport.protocolByte] + RaftWireCodec.encode(good))
        try #require(await eventually { transport.stats.framesReceived == 2 })
        let second = await received.next()
        #expect(second == [good])
        await transport.shutdown()
    }

    /// The address book is updatable: messages to a wrong address fail to connect (and, past the
    /// bounded queue, are dropped and counted); the right address delivers what is sent next.
    @Test func addressUpdatesMoveTheConnection() async throws {
        let receiver = RaftTCPTransport(localID: ServerID("b"))
        let port = try await receiver.listen(host: "127.0.0.1", port: 0).port!
        var limits = RaftTCPTransport.Limits()
        limits.maxQueuedMessagesPerPeer = 4
        let nowhere = try #require(ReusablePorts.next())
        let sender = RaftTCPTransport(localID: ServerID("a"), limits: limits, addresses: [ServerID("b"): "127.0.0.1:\(nowhere)"])
        let message = Message(from: ServerID("a"), to: ServerID("b"), term: 1, payload: .heartbeat(commit: 0, readRound: 0))
        for _ in 0..<10 { sender.send(message) }
        #expect(sender.stats.droppedQueueFull >= 6)
        #expect(await eventually { sender.stats.connectsFailed > 0 })
        sender.send(Message(from: ServerID("a"), to: ServerID("c"), term: 1, payload: .timeoutNow))
        #expect(sender.stats.droppedNoAddress == 1)

        sender.configurationChanged(ClusterConfiguration(servers: [
            ServerEntry(id: ServerID("b"), suffrage: .voter, address: "127.0.0.1:\(port)"),
        ]))
        #expect(sender.address(of: ServerID("b")) == "127.0.0.1:\(port)")
        // Sent until it gets through: while the queue is full of what waited, new messages are
        // dropped (Raft would send again just the same).
        #expect(await eventually {
            sender.send(message)
            return receiver.stats.framesReceived > 0
        })
        #expect(sender.stats.connectsSucceeded == 1)
        await sender.shutdown()
        await receiver.shutdown()
    }

    /// The shared server port's demultiplexer reads the first byte and hands the channel over.
    @Test func inboundHandlersOnADemultiplexedChannel() async throws {
        let receiver = RaftTCPTransport(localID: ServerID("b"))
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FirstByteDemultiplexer(raft: receiver))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let sender = RaftTCPTransport(localID: ServerID("a"), addresses: [ServerID("b"): "127.0.0.1:\(server.localAddress!.port!)"])
        let message = Message(from: ServerID("a"), to: ServerID("b"), term: 1, payload: .timeoutNow)
        sender.send(message)
        var received = receiver.inbound.makeAsyncIterator()
        try #require(await eventually { receiver.stats.framesReceived == 1 })
        let batch = await received.next()
        #expect(batch == [message])
        #expect(receiver.stats.rejectedConnections == 0)
        await sender.shutdown()
        await receiver.shutdown()
        try await server.close()
    }
}

/// A stand-in for the agent's RPC port: reads the connection-type byte, and for RPCRaft hands the
/// rest of the stream to the Raft transport's handlers.
private final class FirstByteDemultiplexer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let raft: RaftTCPTransport

    init(raft: RaftTCPTransport) {
        self.raft = raft
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard buffer.readInteger(as: UInt8.self) == RaftTCPTransport.protocolByte else {
            context.close(promise: nil)
            return
        }
        do {
            try raft.installInboundHandlers(on: context.channel)
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(buffer))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
