@testable import ConsulAgent
import Foundation
import NIOCore
import NIOPosix
import Raft
import Synchronization
import Testing
import TestSupport

/// A real server port (`ServerPortListener` with its Raft transport and an `RPCServer` whose
/// answers come from a closure) on a loopback port, and the client pool talking to it.
final class LoopbackRPCServer: Sendable {
    let group: MultiThreadedEventLoopGroup
    let raft: RaftTCPTransport
    let rpc: RPCServer
    let listener: ServerPortListener
    let address: String
    let port: Int
    private let stopped = Atomic<Bool>(false)

    private init(group: MultiThreadedEventLoopGroup, raft: RaftTCPTransport, rpc: RPCServer, listener: ServerPortListener, address: String, port: Int) {
        self.group = group
        self.raft = raft
        self.rpc = rpc
        self.listener = listener
        self.address = address
        self.port = port
    }

    static let quietLogger = AgentLogger(level: .error, json: false, write: { _ in })

    static func start(port: Int = 0, limits: RPCServer.Limits = RPCServer.Limits(), serve: @escaping RPCServer.Serve) async throws -> LoopbackRPCServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let raft = RaftTCPTransport(localID: ServerID("loopback"), group: group)
        let rpc = RPCServer(limits: limits, serve: serve)
        let listener = try await ServerPortListener.start(host: "127.0.0.1", port: port, raft: raft, rpc: rpc, group: group, logger: quietLogger)
        let bound = listener.port!
        return LoopbackRPCServer(group: group, raft: raft, rpc: rpc, listener: listener, address: "127.0.0.1:\(bound)", port: bound)
    }

    /// Gone for good: the listener, every accepted connection and the event loop. Once only: a
    /// channel of a loop that is shut down can no longer be closed.
    func stop() async {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        await raft.shutdown()
        await listener.close()
        try? await group.shutdownGracefully()
    }

    /// Answers with the path as the body, the hop count and token as headers; `/slow/<ms>` after
    /// that many milliseconds; `/gated/<name>` once the test opens that gate.
    static let echo: RPCServer.Serve = { request, loop in
        var answer = APIResponse.text(request.path)
        answer.headers = [("X-Hops", String(request.forwardHops)), ("X-Token", request.token), ("X-Consul-Index", "7")]
        let response = answer
        if request.path.hasPrefix("/slow/"), let ms = Int64(request.path.dropFirst(6)) {
            return loop.scheduleTask(in: .milliseconds(ms)) { response }.futureResult
        }
        if request.path.hasPrefix("/gated/") {
            return RPCTestGates.shared.wait(String(request.path.dropFirst(7)), on: loop).map { response }
        }
        return loop.makeSucceededFuture(response)
    }
}

/// Answers held until the test opens their gate: what finishes first is then decided by the test,
/// not by how fast a loaded machine runs the rest.
final class RPCTestGates: Sendable {
    static let shared = RPCTestGates()
    private struct State {
        var open: Set<String> = []
        var waiting: [String: [EventLoopPromise<Void>]] = [:]
    }
    private let state = Mutex(State())

    func wait(_ name: String, on loop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        let isOpen = state.withLock { state -> Bool in
            if state.open.contains(name) { return true }
            state.waiting[name, default: []].append(promise)
            return false
        }
        if isOpen { promise.succeed() }
        return promise.futureResult
    }

    func open(_ name: String) {
        let waiting = state.withLock { state -> [EventLoopPromise<Void>] in
            state.open.insert(name)
            return state.waiting.removeValue(forKey: name) ?? []
        }
        for promise in waiting { promise.succeed() }
    }
}

func rpcRequest(_ path: String, token: String = "", method: String = "GET") -> RPCRequestFrame {
    RPCRequestFrame(APIRequest(method: method, path: path, query: [:], headers: [("X-Consul-Token", token)], body: []), hops: 1)
}

func eventually(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

@Suite(.serialized) struct RPCLoopbackTests {
    /// Runs `body` with a pool on its own event loops, and a server answering with `serve`; both
    /// are shut down afterwards, whatever happens.
    static func withPool(
        _ configure: (inout RPCClientPool.Limits) -> Void = { _ in }, server limits: RPCServer.Limits = RPCServer.Limits(),
        _ body: (RPCClientPool, any EventLoop, LoopbackRPCServer) async throws -> Void
    ) async throws {
        // A port that stays ours while the server is down (one test restarts it there).
        let server = try await LoopbackRPCServer.start(port: try #require(ReusablePorts.next()), limits: limits, serve: LoopbackRPCServer.echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var poolLimits = RPCClientPool.Limits()
        configure(&poolLimits)
        let pool = RPCClientPool(group: group, limits: poolLimits)
        do {
            try await body(pool, group.next(), server)
        } catch {
            await pool.shutdown()
            await server.stop()
            try? await group.shutdownGracefully()
            throw error
        }
        await pool.shutdown()
        await server.stop()
        try? await group.shutdownGracefully()
    }

    @Test func concurrentCallsShareOneConnectionAndALongWaitHoldsNoneBack() async throws {
        try await Self.withPool({ $0.maxConnectionsPerServer = 1 }) { pool, loop, server in
            let slowDone = Atomic<Bool>(false)
            // Held until the quick calls are done: the order of completion is what is checked.
            let gate = "long-wait-\(UUID().uuidString)"
            let slow = pool.call(rpcRequest("/gated/" + gate), to: server.address, timeout: .seconds(60), on: loop)
            slow.whenComplete { _ in slowDone.store(true, ordering: .relaxed) }
            try await withThrowingTaskGroup(of: (Int, RPCResponseFrame).self) { tasks in
                for i in 0..<200 {
                    tasks.addTask {
                        (i, try await pool.call(rpcRequest("/v1/kv/\(i)", token: "t\(i)"), to: server.address, timeout: .seconds(10), on: loop).get())
                    }
                }
                for try await (i, answer) in tasks {
                    #expect(answer.status == 200)
                    #expect(answer.body == Array("/v1/kv/\(i)".utf8))
                    #expect(answer.headers.contains(RPCPair(name: "X-Token", value: "t\(i)")))
                    #expect(answer.headers.contains(RPCPair(name: "X-Hops", value: "1")))
                }
            }
            let slowFinished = slowDone.load(ordering: .relaxed)
            #expect(!slowFinished, "the fast calls finished while the slow one still waits")
            #expect(pool.connectionCount(to: server.address) == 1)
            RPCTestGates.shared.open(gate)
            #expect(try await slow.get().body == Array(("/gated/" + gate).utf8))
            #expect(pool.inFlight == 0)
            #expect(pool.counters.snapshot.connectsSucceeded == 1)
            #expect(server.rpc.counters.snapshot.requestsServed == 201)
        }
    }

    @Test func connectionsSpreadUpToTheLimitPerServer() async throws {
        try await Self.withPool({
            $0.maxConnectionsPerServer = 3
            $0.callsPerConnectionBeforeSpreading = 2
        }) { pool, loop, server in
            let calls = (0..<20).map { _ in pool.call(rpcRequest("/slow/300"), to: server.address, timeout: .seconds(10), on: loop) }
            #expect(pool.connectionCount(to: server.address) == 3)
            for call in calls {
                let status = try await call.get().status
                #expect(status == 200)
            }
        }
    }

    @Test func thePoolRefusesCallsBeyondItsInFlightLimit() async throws {
        try await Self.withPool({ $0.maxInFlight = 2 }) { pool, loop, server in
            let held = [
                pool.call(rpcRequest("/slow/500"), to: server.address, timeout: .seconds(10), on: loop),
                pool.call(rpcRequest("/slow/500"), to: server.address, timeout: .seconds(10), on: loop),
            ]
            await #expect(throws: RPCError.tooManyInFlight(limit: 2)) {
                try await pool.call(rpcRequest("/now"), to: server.address, timeout: .seconds(10), on: loop).get()
            }
            for call in held { _ = try await call.get() }
            #expect(try await pool.call(rpcRequest("/now"), to: server.address, timeout: .seconds(10), on: loop).get().status == 200)
            #expect(pool.counters.snapshot.callsRejectedInFlight == 1)
        }
    }

    @Test func theServerAnswers429PastItsInFlightLimitPerConnection() async throws {
        var limits = RPCServer.Limits()
        limits.maxInFlightPerConnection = 1
        try await Self.withPool({ $0.maxConnectionsPerServer = 1 }, server: limits) { pool, loop, server in
            let first = pool.call(rpcRequest("/slow/500"), to: server.address, timeout: .seconds(10), on: loop)
            let second = try await pool.call(rpcRequest("/now"), to: server.address, timeout: .seconds(10), on: loop).get()
            #expect(second.status == 429)
            #expect(try await first.get().status == 200)
            #expect(server.rpc.counters.snapshot.requestsRejectedBusy == 1)
        }
    }

    @Test func aCallThatOutlivesItsTimeoutFailsAndItsLateAnswerIsDropped() async throws {
        try await Self.withPool { pool, loop, server in
            await #expect(throws: RPCError.timedOut(address: server.address, after: .milliseconds(100))) {
                try await pool.call(rpcRequest("/slow/600"), to: server.address, timeout: .milliseconds(100), on: loop).get()
            }
            #expect(await eventually(5) { pool.counters.snapshot.unmatchedResponses == 1 })
            let after = try await pool.call(rpcRequest("/after"), to: server.address, timeout: .seconds(5), on: loop).get()
            #expect(after.body == Array("/after".utf8))
            #expect(pool.counters.snapshot.connectsSucceeded == 1)
            #expect(pool.counters.snapshot.callsTimedOut == 1)
        }
    }

    @Test func whenTheServerGoesAwayCallsFailAndTheNextOneReconnects() async throws {
        try await Self.withPool { pool, loop, server in
            let address = server.address
            #expect(try await pool.call(rpcRequest("/one"), to: address, timeout: .seconds(5), on: loop).get().status == 200)

            // A call under way when the server goes: it was sent, so it is lost (not "unreachable").
            let pending = pool.call(rpcRequest("/slow/10000"), to: address, timeout: .seconds(20), on: loop)
            try await Task.sleep(for: .milliseconds(200))
            await server.stop()
            await #expect(throws: RPCError.connectionLost(address: address)) { try await pending.get() }
            #expect(pool.connectionCount(to: address) == 0)
            #expect(pool.counters.snapshot.callsLost == 1)

            // Nobody listens: not sent, so safe to try elsewhere.
            do {
                _ = try await pool.call(rpcRequest("/two"), to: address, timeout: .seconds(5), on: loop).get()
                Issue.record("a call to a closed port succeeded")
            } catch let error as RPCError {
                #expect(!error.wasSent, "\(error)")
                guard case .unreachable = error else { throw error }
            }

            let again = try await LoopbackRPCServer.start(port: server.port, serve: LoopbackRPCServer.echo)
            let answer = try? await pool.call(rpcRequest("/three"), to: address, timeout: .seconds(5), on: loop).get()
            await again.stop()
            #expect(answer?.body == Array("/three".utf8))
            #expect(pool.counters.snapshot.connectsSucceeded == 2)
            #expect(pool.counters.snapshot.connectsFailed == 1)
            await pool.shutdown()
            await #expect(throws: RPCError.shutDown) { try await pool.call(rpcRequest("/four"), to: address, timeout: .seconds(5), on: loop).get() }
        }
    }

    @Test func idleConnectionsCloseAndAreReopenedOnDemand() async throws {
        try await Self.withPool({ $0.idleTimeout = .milliseconds(200) }) { pool, loop, server in
            _ = try await pool.call(rpcRequest("/a"), to: server.address, timeout: .seconds(5), on: loop).get()
            #expect(pool.connectionCount(to: server.address) == 1)
            #expect(await eventually(5) { pool.connectionCount(to: server.address) == 0 })
            _ = try await pool.call(rpcRequest("/b"), to: server.address, timeout: .seconds(5), on: loop).get()
            #expect(pool.counters.snapshot.connectsSucceeded == 2)
        }
    }

    /// Raw bytes at the server port, off the cooperative pool (the socket calls block).
    static func sendRaw(_ bytes: [UInt8], port: Int) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result {
                    let socket = Darwinless.socket()
                    defer { close(socket) }
                    try Darwinless.connect(socket, host: "127.0.0.1", port: port)
                    try Darwinless.send(socket, bytes)
                    return Darwinless.receiveAll(socket)
                })
            }.start()
        }
    }

    @Test func badBytesOnTheServerPortCloseTheConnectionAndAreCounted() async throws {
        let server = try await LoopbackRPCServer.start(serve: LoopbackRPCServer.echo)
        // Garbage after the agent-RPC byte: closed with no answer.
        #expect(try await Self.sendRaw([0x00] + RPCCodecTests.framed([9, 1, 2, 3]), port: server.port).isEmpty)
        #expect(server.rpc.counters.snapshot.malformedFrames == 1)
        // A length far over the limit.
        #expect(try await Self.sendRaw([0x00, 0xff, 0xff, 0xff, 0xff], port: server.port).isEmpty)
        #expect(server.rpc.counters.snapshot.oversizedFrames == 1)
        // An answer sent to a server.
        #expect(try await Self.sendRaw([0x00] + RPCCodecTests.bytes(.response(RPCCodecTests.response)), port: server.port).isEmpty)
        #expect(server.rpc.counters.snapshot.malformedFrames == 2)
        // A kind of connection this build does not serve.
        #expect(try await Self.sendRaw([0x07, 1, 2, 3], port: server.port).isEmpty)
        #expect(server.listener.refused.count.load(ordering: .relaxed) == 1)

        // A good request sent in the same packet as the first byte, then garbage: answered, then closed.
        var good = try RPCCodec.encode(.request(rpcRequest("/v1/status/leader")))
        let answer = try await Self.sendRaw([0x00] + good.readBytes(length: good.readableBytes)! + [0, 0, 0, 3, 1, 2, 3], port: server.port)
        var buffer = ByteBuffer(bytes: answer)
        let frame = try RPCCodec.nextFrame(from: &buffer, maxFrameBytes: 1 << 20)
        guard case .response(let response) = frame else { throw HarnessError("expected an answer, got \(String(describing: frame))") }
        #expect(response.body == Array("/v1/status/leader".utf8))
        #expect(buffer.readableBytes == 0)
        #expect(server.rpc.counters.snapshot.malformedFrames == 3)

        // The server still serves a pool.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = RPCClientPool(group: group)
        let status = try? await pool.call(rpcRequest("/ok"), to: server.address, timeout: .seconds(5), on: group.next()).get().status
        await pool.shutdown()
        try? await group.shutdownGracefully()
        #expect(status == 200)
        await server.stop()
    }
}
