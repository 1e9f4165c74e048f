import ConsulCore
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import ConsulAgent

/// The pure parts of `/v1/agent/monitor` and `consul lock`: log level names, the bounded per-client
/// buffer, the logger's fan-out, the semaphore's holder set; and one in-process server with a
/// client that never reads, to show logging goes on and the client is told what it lost.
@Suite(.serialized) struct MonitorLockTests {
    @Test func logLevelsParseCaseInsensitively() {
        #expect(AgentLogger.Level("trace") == .trace)
        #expect(AgentLogger.Level("DEBUG") == .debug)
        #expect(AgentLogger.Level("Info") == .info)
        #expect(AgentLogger.Level("WARN") == .warn)
        #expect(AgentLogger.Level("error") == .error)
        #expect(AgentLogger.Level("verbose") == nil)
        #expect(AgentLogger.Level("") == nil)
    }

    @Test func monitorEndpointRefusesAnUnknownLevel() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let runtime = Self.runtime(logger: AgentLogger(level: .info, json: false, write: { _ in }))
        let dispatcher = APIDispatcher(agent: runtime, seed: 1)
        let bad = try await AgentLocalEndpointTests.call(dispatcher, group.next(), "GET", "/v1/agent/monitor?loglevel=chatty")
        #expect(bad == (400, "Unknown log level: chatty"))
        #expect(try await AgentLocalEndpointTests.call(dispatcher, group.next(), "PUT", "/v1/agent/monitor").0 == 405)
        let request = APIRequest(method: "GET", path: "/v1/agent/monitor", query: ["loglevel": "TRACE", "logjson": ""], headers: [], body: [])
        let good = try await dispatcher.handle(request, on: group.next()).get()
        #expect(good.status == 200)
        let monitor = try #require(good.stream as? LogMonitor)
        #expect(monitor.level == .trace && monitor.json)
        try await group.shutdownGracefully()
    }

    @Test func aFullBufferDropsCountsAndTellsTheClient() {
        var buffer = BoundedLogBuffer(capacity: 3)
        for n in 0..<10 { _ = buffer.offer("line \(n)\n") }
        #expect(buffer.count == 3)
        #expect(buffer.droppedTotal == 7)
        #expect(buffer.take(maxLines: 2) == ["Monitor dropped 7 logs during monitor request\n", "line 0\n"])
        #expect(buffer.take(maxLines: 10) == ["line 1\n", "line 2\n"])
        #expect(buffer.take(maxLines: 10).isEmpty)
        // Told once; the total stays for the agent's own log line.
        #expect(buffer.droppedUntold == 0 && buffer.droppedTotal == 7)
        let kept = buffer.offer("again\n")
        #expect(kept)
        #expect(buffer.take(maxLines: 10) == ["again\n"])
    }

    @Test func loggerFeedsMonitorsAtTheirOwnLevelWithoutBlocking() {
        let written = Mutex<[String]>([])
        let logger = AgentLogger(level: .info, json: false, write: { line in written.withLock { $0.append(line) } })
        #expect(!logger.monitors.wants(.debug))
        // Not attached to a connection: lines only accumulate, as for a client that never reads.
        let debugMonitor = LogMonitor(level: .debug, json: false, registry: logger.monitors, capacity: 4)
        let jsonMonitor = LogMonitor(level: .warn, json: true, registry: logger.monitors, capacity: 4)
        logger.monitors.add(debugMonitor)
        logger.monitors.add(jsonMonitor)
        #expect(logger.monitors.wants(.debug) && !logger.monitors.wants(.trace))
        logger.debug("agent", "only for the monitor")
        logger.warn("agent", "for everyone", ["key": "two words"])
        for n in 0..<100 { logger.info("agent", "flood \(n)") }
        // The agent's own output is at info: the debug line is not there.
        #expect(written.withLock { $0.count } == 101)
        #expect(!written.withLock { $0.joined() }.contains("only for the monitor"))
        let debugLines = debugMonitor.takeForTesting()
        #expect(debugLines.first == "Monitor dropped 98 logs during monitor request\n")
        #expect(debugLines[1].hasSuffix("[DEBUG] agent: only for the monitor\n"))
        #expect(debugLines[2].hasSuffix("[WARN]  agent: for everyone: key=\"two words\"\n"))
        let jsonLines = jsonMonitor.takeForTesting()
        #expect(jsonLines.count == 1)
        #expect(jsonLines[0].hasPrefix(#"{"@level":"warn","@message":"for everyone","@module":"agent","@timestamp":""#))
        #expect(jsonLines[0].hasSuffix(#","key":"two words"}"# + "\n"))
        logger.monitors.remove(debugMonitor)
        logger.monitors.remove(jsonMonitor)
        #expect(!logger.monitors.wants(.error))
    }

    @Test func semaphoreHolderSet() throws {
        let empty = try SemaphoreHolders.decode(nil, defaultLimit: 2)
        #expect(empty == SemaphoreHolders(limit: 2, holders: []))
        let one = empty.adding("b-session").adding("a-session")
        #expect(String(decoding: one.encoded, as: UTF8.self) == #"{"Limit":2,"Holders":{"a-session":true,"b-session":true}}"#)
        #expect(one.isFull)
        let decoded = try SemaphoreHolders.decode(one.encoded, defaultLimit: 5)
        #expect(decoded == one)
        // A holder whose session no longer holds a contender key is not counted.
        let pruned = decoded.pruned(aliveSessions: ["a-session", "someone-else"])
        #expect(pruned.holders == ["a-session"] && !pruned.isFull)
        #expect(pruned.removing("a-session").holders.isEmpty)
        #expect(throws: SemaphoreHolders.DecodeError.notJSON) { try SemaphoreHolders.decode(Array("locked".utf8), defaultLimit: 1) }
    }

    @Test func lockFlagsAreConsulsAPIClientValues() {
        #expect(KVLockFlags.lock == 3_304_740_253_564_472_344)
        #expect(KVLockFlags.semaphore == 16_210_313_421_097_356_768)
    }

    /// A real listener on 127.0.0.182 and a client that connects to the monitor and never reads:
    /// the agent keeps logging at full speed, and once the client reads it is told how many lines
    /// it lost; when it leaves, its monitor goes away.
    @Test func aClientThatDoesNotReadLosesLinesAndNeverHoldsUpLogging() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let logger = AgentLogger(level: .error, json: false, write: { _ in })
        let runtime = Self.runtime(logger: logger)
        let server = try await HTTPServer.start(host: "127.0.0.182", port: 0, dispatcher: APIDispatcher(agent: runtime, seed: 1), group: group)
        let port = try #require(server.port)

        let socket = Darwinless.socket()
        // A small receive buffer, so the kernel cannot absorb the flood for the client.
        var small: Int32 = 4096
        setsockopt(socket, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        try Darwinless.connect(socket, host: "127.0.0.182", port: port)
        try Darwinless.send(socket, Array("GET /v1/agent/monitor?loglevel=debug HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(Self.eventually { logger.monitors.count == 1 })

        let padding = String(repeating: "x", count: 200)
        for n in 0..<50_000 { logger.debug("agent", "flood \(n) \(padding)") }

        var received = ""
        let deadline = Date().addingTimeInterval(30)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !received.contains("Monitor dropped"), Date() < deadline {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            received += String(decoding: buffer[0..<count], as: UTF8.self)
        }
        #expect(received.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(received.contains("[DEBUG] agent: flood 0 "))
        let notice = try #require(received.range(of: #"Monitor dropped (\d+) logs during monitor request"#, options: .regularExpression))
        let dropped = Int(received[notice].split(separator: " ")[2]) ?? 0
        #expect(dropped > 0 && dropped < 50_000)

        close(socket)
        #expect(Self.eventually { logger.monitors.count == 0 })
        await server.close()
        try await group.shutdownGracefully()
    }

    static func runtime(logger: AgentLogger) -> AgentRuntime {
        var config = AgentConfig.defaults(dev: false)
        config.nodeName = "monitor-node"
        return AgentRuntime(
            config: config, nodeName: "monitor-node", nodeID: "00000000-0000-0000-0000-0000000000ab", advertiseAddress: "127.0.0.182",
            watch: ConsulStateMachine(datacenter: "dc1").watch, raft: nil, clock: SystemMonotonicClock(), logger: logger)
    }

    static func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }
}

extension LogMonitor {
    /// Everything waiting, as the connection's drain would take it.
    func takeForTesting() -> [String] { takeWaiting(maxLines: .max) }
}
