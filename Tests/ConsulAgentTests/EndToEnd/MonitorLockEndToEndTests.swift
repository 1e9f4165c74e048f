import Foundation
import Testing

/// `/v1/agent/monitor`, `consul monitor` and `consul lock` against a real `consul agent -dev`
/// process on 127.0.0.183, with real child processes. Every wait is bounded; no assertion
/// depends on how long anything takes.
@Suite(.serialized) struct MonitorLockEndToEndTests {
    static let host = "127.0.0.183"
    static let port = 18583
    static var address: String { "\(host):\(port)" }
    var addr: [String] { ["-http-addr", Self.address] }

    /// The agent logs at info: debug lines reach a monitor only because it asks for them.
    func startAgent() throws -> AgentProcessHarness {
        let agent = try AgentProcessHarness(arguments: [
            "agent", "-dev", "-node", "e2e-monitor", "-bind", Self.host, "-client", Self.host, "-http-port", String(Self.port),
            "-dns-port", "18683", "-log-level", "info",
        ])
        let ready = AgentProcessHarness.eventually(20) {
            (try? AgentProcessHarness.http("GET", host: Self.host, port: Self.port, path: "/v1/status/leader").body.contains(Self.host)) ?? false
        }
        guard ready else {
            _ = agent.stop()
            throw HarnessError("dev agent did not become ready:\n\(agent.log)")
        }
        return agent
    }

    static func scratchDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "monitor-lock-" + UUID().uuidString.lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// Waits (bounded) for a process the harness started to exit; its exit code, or nil if it did not.
    static func exitCode(of process: AgentProcessHarness, within seconds: Double = 30) -> Int32? {
        guard AgentProcessHarness.eventually(seconds, { !process.process.isRunning }) else { return nil }
        return process.process.terminationStatus
    }

    /// A child for `consul lock`: records `start NAME`, waits (at most 60 s) for `release-NAME` in
    /// `directory`, records `end NAME`.
    static func heldChild(_ name: String, in directory: String) -> String {
        "echo start \(name) >> \(directory)/events; i=0; while [ ! -e \(directory)/release-\(name) ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo end \(name) >> \(directory)/events"
    }

    static func release(_ name: String, in directory: String) {
        _ = FileManager.default.createFile(atPath: "\(directory)/release-\(name)", contents: Data())
    }

    static func kv(_ path: String) throws -> [[String: Any]] {
        let answer = try AgentProcessHarness.http("GET", host: host, port: port, path: "/v1/kv/" + path)
        guard answer.status == 200 else { return [] }
        return (try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [[String: Any]]) ?? []
    }

    static func sessions() throws -> [[String: Any]] {
        let answer = try AgentProcessHarness.http("GET", host: host, port: port, path: "/v1/session/list")
        return (try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [[String: Any]]) ?? []
    }

    /// Reads a streamed answer from a raw socket until `marker` shows up (or 20 s pass).
    static func readStream(_ socket: Int32, until marker: String) -> String {
        var received = ""
        var buffer = [UInt8](repeating: 0, count: 16384)
        let deadline = Date().addingTimeInterval(20)
        while !received.contains(marker), Date() < deadline {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            received += String(decoding: buffer[0..<count], as: UTF8.self)
        }
        return received
    }

    @Test func monitorEndpointStreamsLinesAnActionCausesAndRefusesAnUnknownLevel() throws {
        let agent = try startAgent()
        defer { _ = agent.stop() }

        let bad = try AgentProcessHarness.http("GET", host: Self.host, port: Self.port, path: "/v1/agent/monitor?loglevel=chatty")
        #expect(bad.status == 400)
        #expect(bad.body == "Unknown log level: chatty")

        for (query, expected) in [("loglevel=DEBUG", "[DEBUG] agent: new event: event_name=monitor-text"), ("loglevel=debug&logjson", #""@message":"new event: event_name=monitor-json"#)] {
            let socket = Darwinless.socket()
            defer { close(socket) }
            try Darwinless.connect(socket, host: Self.host, port: Self.port)
            try Darwinless.send(socket, Array("GET /v1/agent/monitor?\(query) HTTP/1.1\r\nHost: \(Self.host)\r\n\r\n".utf8))
            // The head comes at once, before any line.
            let head = Self.readStream(socket, until: "\r\n\r\n")
            #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(head.lowercased().contains("transfer-encoding: chunked"))
            let name = query.contains("logjson") ? "monitor-json" : "monitor-text"
            let fired = try AgentProcessHarness.cli(["event", "-name", name] + addr)
            #expect(fired.0 == 0)
            let streamed = Self.readStream(socket, until: expected)
            #expect(streamed.contains(expected))
        }
        // The agent's own output stays at info.
        #expect(!agent.log.contains("new event: event_name=monitor-text"))
    }

    @Test func consulMonitorPrintsLinesAndEndsLikeConsul() throws {
        let agent = try startAgent()
        defer { _ = agent.stop() }

        let refused = try AgentProcessHarness.cli(["monitor", "-log-level", "chatty"] + addr)
        #expect(refused.0 == 1)
        #expect(refused.2 == "Error starting monitor: Unexpected response code: 400 (Unknown log level: chatty)\n")

        // Interrupted: exit 0.
        let monitor = try AgentProcessHarness(arguments: ["monitor", "-log-level=debug"] + addr)
        defer { _ = monitor.stop(signal: SIGKILL) }
        var fired = 0
        let printed = AgentProcessHarness.eventually(20) {
            // Fired until one arrives: the monitor may not be attached when the first is logged.
            if fired < 40 {
                fired += 1
                _ = try? AgentProcessHarness.cli(["event", "-name", "cli-monitor"] + addr)
            }
            return monitor.log.contains("[DEBUG] agent: new event: event_name=cli-monitor")
        }
        #expect(printed, "monitor printed:\n\(monitor.log)")
        #expect(monitor.stop(signal: SIGINT) == 0)

        // The agent goes away: Consul's note, exit 1. (Stopped only once this monitor has printed
        // a line, so it is surely attached.)
        let jsonMonitor = try AgentProcessHarness(arguments: ["monitor", "-log-json", "-log-level", "debug"] + addr)
        defer { _ = jsonMonitor.stop(signal: SIGKILL) }
        fired = 0
        let printedJSON = AgentProcessHarness.eventually(20) {
            if fired < 40 {
                fired += 1
                _ = try? AgentProcessHarness.cli(["event", "-name", "cli-json"] + addr)
            }
            return jsonMonitor.log.contains(#""@message":"new event: event_name=cli-json"#)
        }
        #expect(printedJSON, "monitor printed:\n\(jsonMonitor.log)")
        #expect(agent.stop(signal: SIGINT) == 0)
        #expect(Self.exitCode(of: jsonMonitor) == 1)
        #expect(AgentProcessHarness.eventually(5) {
            jsonMonitor.log.contains("Remote side ended the monitor! This usually means that the\nremote side has exited or crashed.")
        })
    }

    @Test func lockRunsTheChildWhileTheKeyShowsItsSessionThenCleansUp() throws {
        let agent = try startAgent()
        defer { _ = agent.stop() }
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let child = "echo $CONSUL_LOCK_HELD > \(directory)/held; " + Self.heldChild("only", in: directory)
        let lock = try AgentProcessHarness(arguments: ["lock", "-verbose"] + addr + ["e2e/single", child])
        defer { _ = lock.stop(signal: SIGKILL) }
        #expect(AgentProcessHarness.eventually(20) { Self.read("\(directory)/events").contains("start only") })
        #expect(Self.read("\(directory)/held") == "true\n")
        let key = try #require(try Self.kv("e2e/single/.lock").first)
        let session = try #require(key["Session"] as? String)
        #expect((key["Flags"] as? NSNumber)?.uint64Value == 0x2ddc_cbc0_58a5_0c18)
        let listed = try Self.sessions().first { ($0["ID"] as? String) == session }
        #expect(listed?["Name"] as? String == "Consul lock for '\(child)' at 'e2e/single'")

        Self.release("only", in: directory)
        #expect(Self.exitCode(of: lock) == 0)
        // (Output is collected as it arrives: waited for, not assumed complete at exit.)
        #expect(AgentProcessHarness.eventually(5) {
            lock.log.contains("Setting up lock at path: e2e/single/.lock\nAttempting lock acquisition\nStarting handler\n")
                && lock.log.contains("Child terminated, releasing lock\nCleanup succeeded\n")
        }, "lock printed:\n\(lock.log)")
        #expect(try Self.kv("e2e/single/.lock").isEmpty)
        #expect(try Self.sessions().isEmpty)
    }

    @Test func twoLocksOnOnePrefixNeverOverlap() throws {
        let agent = try startAgent()
        defer { _ = agent.stop() }
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        // Each child marks its start and end around a short pause; the events file must show one
        // whole start/end pair, then the other.
        func child(_ name: String) -> String { "echo start \(name) >> \(directory)/events; sleep 0.5; echo end \(name) >> \(directory)/events" }
        let first = try AgentProcessHarness(arguments: ["lock"] + addr + ["e2e/mutex", child("a")])
        defer { _ = first.stop(signal: SIGKILL) }
        let second = try AgentProcessHarness(arguments: ["lock"] + addr + ["e2e/mutex", child("b")])
        defer { _ = second.stop(signal: SIGKILL) }
        #expect(Self.exitCode(of: first, within: 60) == 0)
        #expect(Self.exitCode(of: second, within: 60) == 0)
        let events = Self.read("\(directory)/events").split(separator: "\n").map(String.init)
        #expect(events == ["start a", "end a", "start b", "end b"] || events == ["start b", "end b", "start a", "end a"], "events: \(events)")
    }

    @Test func semaphoreOfTwoAdmitsTwoHoldersAndTheThirdOnlyWhenOneLeaves() throws {
        let agent = try startAgent()
        defer { _ = agent.stop() }
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let a = try AgentProcessHarness(arguments: ["lock", "-n", "2"] + addr + ["e2e/sem", Self.heldChild("a", in: directory)])
        defer { _ = a.stop(signal: SIGKILL) }
        let b = try AgentProcessHarness(arguments: ["lock", "-n=2"] + addr + ["e2e/sem", Self.heldChild("b", in: directory)])
        defer { _ = b.stop(signal: SIGKILL) }
        #expect(AgentProcessHarness.eventually(20) {
            let events = Self.read("\(directory)/events")
            return events.contains("start a") && events.contains("start b")
        })
        let c = try AgentProcessHarness(arguments: ["lock", "-n", "2", "-verbose"] + addr + ["e2e/sem", Self.heldChild("c", in: directory)])
        defer { _ = c.stop(signal: SIGKILL) }
        // The third is waiting: its contender key is there, the holder set is full without it.
        #expect(AgentProcessHarness.eventually(20) { ((try? Self.kv("e2e/sem/?recurse")) ?? []).count == 4 })
        let lockValue = try #require(try Self.kv("e2e/sem/.lock").first?["Value"] as? String)
        let holders = try #require(try JSONSerialization.jsonObject(with: Data(base64Encoded: lockValue)!) as? [String: Any])
        #expect(holders["Limit"] as? Int == 2)
        #expect((holders["Holders"] as? [String: Any])?.count == 2)
        #expect(AgentProcessHarness.eventually(5) { c.log.contains("Attempting lock acquisition") })
        #expect(!Self.read("\(directory)/events").contains("start c"))

        Self.release("a", in: directory)
        #expect(Self.exitCode(of: a) == 0)
        #expect(AgentProcessHarness.eventually(30) { Self.read("\(directory)/events").contains("start c") })
        let events = Self.read("\(directory)/events").split(separator: "\n").map(String.init)
        #expect(events.firstIndex(of: "end a")! < events.firstIndex(of: "start c")!, "events: \(events)")

        Self.release("b", in: directory)
        Self.release("c", in: directory)
        #expect(Self.exitCode(of: b) == 0)
        #expect(Self.exitCode(of: c) == 0)
        #expect(try Self.kv("e2e/sem/?recurse").isEmpty)
        #expect(try Self.sessions().isEmpty)
    }

    @Test func timeoutGivesUpWithConsulsMessageAndInterruptStopsTheChildAndReleases() throws {
        let agent = try startAgent()
        defer { _ = agent.stop() }
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        // The holder's child records its pid and waits; it is stopped by SIGINT to `consul lock`.
        let holder = try AgentProcessHarness(arguments: ["lock"] + addr + ["e2e/timeout", "echo $$ > \(directory)/pid; " + Self.heldChild("holder", in: directory)])
        defer { _ = holder.stop(signal: SIGKILL) }
        #expect(AgentProcessHarness.eventually(20) { Self.read("\(directory)/events").contains("start holder") })

        let waiter = try AgentProcessHarness.cli(["lock", "-timeout", "1s"] + addr + ["e2e/timeout", "touch \(directory)/never"])
        #expect(waiter.0 == 1)
        #expect(waiter.2 == "Shutdown triggered or timeout during lock acquisition\n")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/never"))

        let childPID = try #require(Int32(Self.read("\(directory)/pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(holder.process.processIdentifier, SIGINT)
        #expect(Self.exitCode(of: holder) == 0)
        #expect(AgentProcessHarness.eventually(10) { kill(childPID, 0) != 0 })
        #expect(!Self.read("\(directory)/events").contains("end holder"))
        #expect(try Self.kv("e2e/timeout/.lock").isEmpty)
        #expect(try Self.sessions().isEmpty)
    }

    @Test func aLostLockStopsTheChild() throws {
        let agent = try startAgent()
        defer { _ = agent.stop() }
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let lock = try AgentProcessHarness(arguments: ["lock", "-verbose"] + addr + ["e2e/lost", "echo $$ > \(directory)/pid; " + Self.heldChild("lost", in: directory)])
        defer { _ = lock.stop(signal: SIGKILL) }
        #expect(AgentProcessHarness.eventually(20) { Self.read("\(directory)/events").contains("start lost") })
        let session = try #require(try Self.kv("e2e/lost/.lock").first?["Session"] as? String)
        // Someone destroys the session: the lock is lost, and the child must not run on.
        let destroyed = try AgentProcessHarness.http("PUT", host: Self.host, port: Self.port, path: "/v1/session/destroy/" + session)
        #expect(destroyed.body == "true")
        #expect(Self.exitCode(of: lock) == 0)
        let childPID = try #require(Int32(Self.read("\(directory)/pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(AgentProcessHarness.eventually(10) { kill(childPID, 0) != 0 })
        #expect(!Self.read("\(directory)/events").contains("end lost"))
        #expect(AgentProcessHarness.eventually(5) { lock.log.contains("Lock lost, killing child\nTerminating child pid ") }, "lock printed:\n\(lock.log)")
    }
}
