import Foundation
import Testing

/// `consul watch` and `/v1/operator/usage` against a real `consul agent -dev` (127.0.0.186 and
/// .187): handlers run with each new value on stdin, printed watches show the view once and end,
/// SIGINT stops a watch with 0. Every wait is bounded; nothing asserts how long anything took.
@Suite(.serialized) struct WatchEndToEndTests {
    static func startAgent(host: String, node: String) throws -> AgentProcessHarness {
        let agent = try AgentProcessHarness(arguments: ["agent", "-dev", "-node", node, "-bind", host, "-client", host])
        let ready = AgentProcessHarness.eventually(20) {
            (try? AgentProcessHarness.http("GET", host: host, port: 8500, path: "/v1/catalog/nodes").body.contains(node)) ?? false
        }
        guard ready else {
            _ = agent.stop()
            throw HarnessError("dev agent did not become ready:\n\(agent.log)")
        }
        return agent
    }

    static func temporaryDirectory() throws -> URL {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("watch-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// One JSON document per line, as the handlers below append them.
    static func lines(_ file: URL) -> [Any] {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8), options: [.fragmentsAllowed]) }
    }

    static func decode(_ text: String) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }

    @Test func keyAndEventHandlersRunWithEachNewValue() throws {
        let host = "127.0.0.186"
        let addr = ["-http-addr", "\(host):8500"]
        let agent = try Self.startAgent(host: host, node: "watch-dev")
        defer { _ = agent.stop() }
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }

        // key: the first result (no such key yet: null), then each put's KV object.
        let keyFile = directory.appendingPathComponent("key.jsonl")
        let keyWatch = try AgentProcessHarness(arguments: ["watch"] + addr + ["-type=key", "-key=x", "cat >> \(keyFile.path)"])
        defer { _ = keyWatch.stop(signal: SIGKILL) }
        #expect(AgentProcessHarness.eventually(15) { Self.lines(keyFile).count == 1 }, "first result never handled:\n\(keyWatch.log)")
        #expect(Self.lines(keyFile).first is NSNull)
        #expect(try AgentProcessHarness.cli(["kv", "put"] + addr + ["x", "one"]).0 == 0)
        #expect(AgentProcessHarness.eventually(15) { Self.lines(keyFile).count == 2 }, "first put never handled:\n\(keyWatch.log)")
        #expect(try AgentProcessHarness.cli(["kv", "put"] + addr + ["x", "two"]).0 == 0)
        #expect(AgentProcessHarness.eventually(15) { Self.lines(keyFile).count == 3 }, "second put never handled:\n\(keyWatch.log)")
        let values = Self.lines(keyFile).dropFirst().map { ($0 as? [String: Any]).flatMap { $0["Value"] as? String } }
        #expect(values == ["b25l", "dHdv"], "\(Self.lines(keyFile))")  // base64 of "one", "two"
        #expect(Self.lines(keyFile).dropFirst().allSatisfy { ($0 as? [String: Any])?["Key"] as? String == "x" })
        #expect(keyWatch.stop(signal: SIGINT) == 0, "SIGINT did not stop the watch cleanly:\n\(keyWatch.log)")

        // event: the (empty) list first, then only the events fired since the last delivery.
        let eventFile = directory.appendingPathComponent("event.jsonl")
        let eventWatch = try AgentProcessHarness(arguments: ["watch"] + addr + ["-type=event", "-name=deploy", "cat >> \(eventFile.path)"])
        defer { _ = eventWatch.stop(signal: SIGKILL) }
        #expect(AgentProcessHarness.eventually(15) { Self.lines(eventFile).count == 1 }, "first result never handled:\n\(eventWatch.log)")
        #expect((Self.lines(eventFile).first as? [Any])?.isEmpty == true)
        let first = try AgentProcessHarness.cli(["event", "-name", "deploy"] + addr + ["v1"])
        #expect(first.0 == 0 && first.1.hasPrefix("Event ID: "))
        #expect(AgentProcessHarness.eventually(15) { Self.lines(eventFile).count == 2 }, "first event never handled:\n\(eventWatch.log)")
        _ = try AgentProcessHarness.cli(["event", "-name", "other"] + addr)
        let second = try AgentProcessHarness.cli(["event", "-name", "deploy"] + addr + ["v2"])
        #expect(AgentProcessHarness.eventually(15) { Self.lines(eventFile).count == 3 }, "second event never handled:\n\(eventWatch.log)")
        let deliveries = Self.lines(eventFile).dropFirst().map { delivery in
            (delivery as? [[String: Any]] ?? []).map { "\($0["ID"] as? String ?? "?") \($0["Name"] as? String ?? "?") \($0["Payload"] as? String ?? "-")" }
        }
        let firstID = first.1.dropFirst("Event ID: ".count).trimmingCharacters(in: .whitespacesAndNewlines)
        let secondID = second.1.dropFirst("Event ID: ".count).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(deliveries == [["\(firstID) deploy djE="], ["\(secondID) deploy djI="]], "\(deliveries)")
        #expect(eventWatch.stop(signal: SIGINT) == 0)
    }

    @Test func printedWatchesShowTheViewOnceAndUsageCountsTheCatalog() throws {
        let host = "127.0.0.187"
        let addr = ["-http-addr", "\(host):8500"]
        let agent = try Self.startAgent(host: host, node: "watch-print")
        defer { _ = agent.stop() }
        let register = try AgentProcessHarness.http("PUT", host: host, port: 8500, path: "/v1/catalog/register", body: Array(#"""
            {"Node": "ext-1", "Address": "10.1.2.3", "Service": {"ID": "web-1", "Service": "web", "Tags": ["v1"], "Port": 8080}}
            """#.utf8))
        try #require(register.status == 200, "\(register)")

        let nodes = try AgentProcessHarness.cli(["watch"] + addr + ["-type=nodes"])
        #expect(nodes.0 == 0, "\(nodes)")
        let nodeNames = (Self.decode(nodes.1) as? [[String: Any]])?.compactMap { $0["Node"] as? String }
        #expect(nodeNames.map(Set.init) == ["ext-1", "watch-print"], "\(nodes.1)")
        #expect(nodes.1.hasPrefix("[\n    {\n        \""), "Consul prints the JSON indented by four spaces")

        let service = try AgentProcessHarness.cli(["watch"] + addr + ["-type=service", "-service=web", "-tag=v1"])
        #expect(service.0 == 0, "\(service)")
        let entries = Self.decode(service.1) as? [[String: Any]] ?? []
        #expect(entries.count == 1, "\(service.1)")
        #expect((entries.first?["Service"] as? [String: Any])?["ID"] as? String == "web-1")
        #expect((entries.first?["Service"] as? [String: Any])?["Port"] as? Int == 8080)
        #expect((entries.first?["Node"] as? [String: Any])?["Node"] as? String == "ext-1")
        let noMatch = try AgentProcessHarness.cli(["watch"] + addr + ["-type=service", "-service=web", "-tag=v1", "-tag=v2"])
        #expect(noMatch.0 == 0 && (Self.decode(noMatch.1) as? [Any])?.isEmpty == true, "\(noMatch)")

        let services = try AgentProcessHarness.cli(["watch"] + addr + ["-type=services"])
        #expect((Self.decode(services.1) as? [String: [String]]) == ["consul": [], "web": ["v1"]], "\(services)")

        // Bad combinations are refused before anything is watched.
        let noKey = try AgentProcessHarness.cli(["watch"] + addr + ["-type=key"])
        #expect(noKey.0 == 1 && noKey.2 == "Must specify a single key to watch\n", "\(noKey)")
        let noType = try AgentProcessHarness.cli(["watch"] + addr)
        #expect(noType.0 == 1 && noType.2.hasPrefix("Watch type must be specified\n"), "\(noType)")
        let unknown = try AgentProcessHarness.cli(["watch"] + addr + ["-type=everything"])
        #expect(unknown.0 == 1 && unknown.2 == "Unsupported watch type: everything\n")

        // Usage counts what the catalog holds: two services (consul, web), two instances, one
        // billable (web-1; the server's consul service is not), two nodes.
        let usage = try AgentProcessHarness.http("GET", host: host, port: 8500, path: "/v1/operator/usage")
        #expect(usage.status == 200 && usage.headers["x-consul-index"] != nil)
        let dc1 = ((Self.decode(usage.body) as? [String: Any])?["Usage"] as? [String: Any])?["dc1"] as? [String: Any]
        #expect(dc1?["Services"] as? Int == 2 && dc1?["ServiceInstances"] as? Int == 2, "\(usage.body)")
        #expect(dc1?["BillableServiceInstances"] as? Int == 1 && dc1?["Nodes"] as? Int == 2, "\(usage.body)")
        #expect(try AgentProcessHarness.http("GET", host: host, port: 8500, path: "/v1/operator/usage?index=x").status == 400)
    }
}
