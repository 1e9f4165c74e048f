import Foundation
import Testing

/// Operator features on a real `-dev` agent (127.0.0.165): autopilot configuration and state
/// through the CLI, and snapshots saved, restored and inspected.
@Suite(.serialized) struct OperatorEndToEndTests {
    static let host = "127.0.0.165"
    static let port = 18500
    var env: [String: String] { ["CONSUL_HTTP_ADDR": "\(Self.host):\(Self.port)"] }

    func startDevAgent() throws -> AgentProcessHarness {
        let agent = try AgentProcessHarness(arguments: [
            "agent", "-dev", "-node", "e2e-op", "-bind", Self.host, "-client", Self.host, "-http-port", String(Self.port), "-dns-port=-1",
        ])
        let ready = AgentProcessHarness.eventually(15) {
            (try? AgentProcessHarness.http("GET", host: Self.host, port: Self.port, path: "/v1/catalog/nodes").body.contains("e2e-op")) ?? false
        }
        guard ready else {
            _ = agent.stop()
            throw HarnessError("dev agent did not become ready:\n\(agent.log)")
        }
        return agent
    }

    @Test func autopilotSetConfigIsStoredAndStateShowsTheLeader() throws {
        let agent = try startDevAgent()
        defer { _ = agent.stop() }
        let before = try AgentProcessHarness.cli(["operator", "autopilot", "get-config"], environment: env)
        #expect(before.1.contains("MaxTrailingLogs = 250"))
        let set = try AgentProcessHarness.cli(
            ["operator", "autopilot", "set-config", "-max-trailing-logs=99", "-last-contact-threshold=350ms", "-cleanup-dead-servers=false"],
            environment: env)
        #expect(set.0 == 0 && set.1 == "Configuration updated!\n", "\(set)")
        let after = try AgentProcessHarness.cli(["operator", "autopilot", "get-config"], environment: env)
        #expect(after.1.contains("MaxTrailingLogs = 99"))
        #expect(after.1.contains("LastContactThreshold = 350ms"))
        #expect(after.1.contains("CleanupDeadServers = false"))
        #expect(after.1.contains("ServerStabilizationTime = 10s"))
        // A stale CAS index is refused and says so.
        let stale = try AgentProcessHarness.http(
            "PUT", host: Self.host, port: Self.port, path: "/v1/operator/autopilot/configuration?cas=1", body: Array("{}".utf8))
        #expect(stale.status == 200 && stale.body == "false")
        let bad = try AgentProcessHarness.cli(["operator", "autopilot", "set-config", "-last-contact-threshold=soon"], environment: env)
        #expect(bad.0 == 1)

        let state = try AgentProcessHarness.cli(["operator", "autopilot", "state"], environment: env)
        #expect(state.0 == 0)
        #expect(state.1.hasPrefix("Healthy:                      true\nFailure Tolerance:            0\n"), "\(state)")
        #expect(state.1.contains("      Name:            e2e-op\n"))
        #expect(state.1.contains("      Status:          leader\n"))
        let json = try AgentProcessHarness.http("GET", host: Self.host, port: Self.port, path: "/v1/operator/autopilot/state")
        #expect(json.status == 200 && json.body.contains(#""NodeStatus":"alive""#) && json.body.contains(#""Voters":["#))
    }

    @Test func snapshotSaveWipeRestoreAndACorruptFile() throws {
        let agent = try startDevAgent()
        defer { _ = agent.stop() }
        let dir = NSTemporaryDirectory() + "consul-snap-" + UUID().uuidString.lowercased()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try AgentProcessHarness.cli(["kv", "put", "snap/a", "one"], environment: env)
        _ = try AgentProcessHarness.cli(["kv", "put", "snap/b", "two"], environment: env)
        let file = dir + "/backup.snap"
        let save = try AgentProcessHarness.cli(["snapshot", "save", file], environment: env)
        #expect(save.0 == 0 && save.1.hasPrefix("Saved and verified snapshot to index "), "\(save)")
        let inspect = try AgentProcessHarness.cli(["snapshot", "inspect", file])
        #expect(inspect.0 == 0 && inspect.1.contains(" Index") && inspect.1.contains(" Version  1"), "\(inspect)")

        // Wipe: the keys go, and one that was never saved appears.
        _ = try AgentProcessHarness.cli(["kv", "delete", "-recurse", "snap/"], environment: env)
        _ = try AgentProcessHarness.cli(["kv", "put", "later", "x"], environment: env)
        #expect(try AgentProcessHarness.cli(["kv", "get", "snap/a"], environment: env).0 == 1)
        let restore = try AgentProcessHarness.cli(["snapshot", "restore", file], environment: env)
        #expect(restore.0 == 0 && restore.1 == "Restored snapshot\n", "\(restore)")
        #expect(try AgentProcessHarness.cli(["kv", "get", "snap/a"], environment: env).1 == "one\n")
        #expect(try AgentProcessHarness.cli(["kv", "get", "snap/b"], environment: env).1 == "two\n")
        #expect(try AgentProcessHarness.cli(["kv", "get", "later"], environment: env).0 == 1)
        // The agent's own node is back in the catalog either way.
        #expect(try AgentProcessHarness.http("GET", host: Self.host, port: Self.port, path: "/v1/catalog/nodes").body.contains("e2e-op"))

        // A corrupt file: refused by the agent with 400 and a message, and by the CLI.
        var bytes = [UInt8](FileManager.default.contents(atPath: file)!)
        bytes[bytes.count / 2] ^= 0xFF
        let corrupt = dir + "/corrupt.snap"
        FileManager.default.createFile(atPath: corrupt, contents: Data(bytes))
        let refused = try AgentProcessHarness.http("PUT", host: Self.host, port: Self.port, path: "/v1/snapshot", body: bytes)
        #expect(refused.status == 400 && refused.body.hasPrefix("Error restoring snapshot: "), "\(refused)")
        let cli = try AgentProcessHarness.cli(["snapshot", "restore", corrupt], environment: env)
        #expect(cli.0 == 1 && cli.2.contains("Error restoring snapshot"))
        let inspectBad = try AgentProcessHarness.cli(["snapshot", "inspect", corrupt])
        #expect(inspectBad.0 == 1 && inspectBad.2.hasPrefix("Error extracting snapshot data: "))
        #expect(try AgentProcessHarness.cli(["kv", "get", "snap/a"], environment: env).1 == "one\n")
    }
}
