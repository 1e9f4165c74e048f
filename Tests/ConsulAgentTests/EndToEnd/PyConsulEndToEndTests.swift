import Foundation
import Testing

/// Issue 6's proof: py-consul, the Python client, drives a real `consul agent -dev` through KV,
/// transactions, catalog, health, agent, sessions, prepared queries, status, events, operator calls
/// (usage included), network coordinates and snapshot save/restore, asserting the answers
/// (`Tests/PyConsul/drive_agent.py`). The test installs py-consul itself when missing.
@Suite(.serialized) struct PyConsulEndToEndTests {
    static let host = "127.0.0.175"
    static let pyConsulVersion = "1.8.0"
    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../PyConsul/drive_agent.py").standardized.path
    }

    /// (exit code, stdout and stderr together).
    static func python(_ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func ensurePyConsul() throws {
        if try python(["-c", "import consul.check"]).0 == 0 { return }
        let install = try python(["-m", "pip", "install", "-q", "--disable-pip-version-check", "py-consul==\(pyConsulVersion)"])
        guard try python(["-c", "import consul.check"]).0 == 0 else {
            throw HarnessError("py-consul is missing and `pip install py-consul==\(pyConsulVersion)` did not provide it:\n\(install.1)")
        }
    }

    @Test func pyConsulDrivesADevAgent() throws {
        try Self.ensurePyConsul()
        let key = try AgentProcessHarness.cli(["keygen"]).1.trimmingCharacters(in: .whitespacesAndNewlines)
        let agent = try AgentProcessHarness(arguments: [
            "agent", "-dev", "-node", "py-dev", "-bind", Self.host, "-client", Self.host, "-encrypt", key,
            // So the agent's coordinate reaches the catalog in under a second, not 15-30 s.
            "-hcl", #"sync_coordinate_interval_min = "300ms""#,
        ])
        defer { _ = agent.stop() }
        let ready = AgentProcessHarness.eventually(15) {
            (try? AgentProcessHarness.http("GET", host: Self.host, port: 8500, path: "/v1/catalog/nodes").body.contains("py-dev")) ?? false
        }
        try #require(ready, "dev agent did not become ready:\n\(agent.log)")
        let run = try Self.python([Self.script, Self.host, "8500", key])
        #expect(run.0 == 0, "py-consul run failed:\n\(run.1)\nagent log:\n\(agent.log)")
        #expect(run.1.contains("py-consul: all areas passed"))
    }
}
