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
}
