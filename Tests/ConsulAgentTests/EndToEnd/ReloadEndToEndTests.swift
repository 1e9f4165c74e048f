import Foundation
import Testing

/// Reloading a real server started with `-config-dir`: SIGHUP and `consul reload` apply
/// `log_level`, `node_meta` and `dns_config` while the agent runs, keep settings that need a
/// restart (and say so), and a broken file changes nothing and is named.
/// Address 127.0.0.191 belongs to this suite (127.0.0.191-195 are this branch's).
@Suite(.serialized) struct ReloadEndToEndTests {
    static let host = "127.0.0.191"
    static let node = "reload-e2e"
    var addr: [String] { ["-http-addr", "\(Self.host):8500"] }

    final class Setup: @unchecked Sendable {
        let root = NSTemporaryDirectory() + "consul-reload-" + UUID().uuidString.lowercased()
        var configDir: String { root + "/config.d" }
        var dataDir: String { root + "/data" }

        init() throws {
            try FileManager.default.createDirectory(atPath: configDir, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        }

        /// The agent's main file; every step rewrites it whole.
        func writeAgentFile(logLevel: String, rack: String, serviceTTL: String, nodeName: String = ReloadEndToEndTests.node, dnsPort: Int = 8600) throws {
            let text = """
                node_name = "\(nodeName)"
                server = true
                bootstrap_expect = 1
                bind_addr = "\(ReloadEndToEndTests.host)"
                client_addr = "\(ReloadEndToEndTests.host)"
                data_dir = "\(dataDir)"
                log_level = "\(logLevel)"
                node_meta {
                  rack = "\(rack)"
                }
                ports {
                  dns = \(dnsPort)
                }
                dns_config {
                  service_ttl {
                    "*" = "\(serviceTTL)"
                  }
                }
                service {
                  name = "web"
                  port = 8080
                }
                """
            try text.write(toFile: configDir + "/agent.hcl", atomically: true, encoding: .utf8)
        }

        deinit { try? FileManager.default.removeItem(atPath: root) }
    }

    /// The TTLs of `web.service.consul A` as `dig` shows them; empty when there is no answer.
    static func webTTLs(_ dig: String) -> [String] {
        guard let output = try? AgentProcessHarness.run(dig, ["@" + host, "-p", "8600", "+time=2", "+tries=1", "+noall", "+answer", "web.service.consul", "A"]).1
        else { return [] }
        return output.split(separator: "\n").filter { $0.contains("\tA\t") || $0.contains(" A ") }
            .compactMap { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.map(String.init) }
    }

    func rackInCatalog() -> String? {
        guard let answer = try? AgentProcessHarness.http("GET", host: Self.host, port: 8500, path: "/v1/catalog/node/\(Self.node)"),
              answer.status == 200,
              let json = try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any],
              let node = json["Node"] as? [String: Any], let meta = node["Meta"] as? [String: String]
        else { return nil }
        return meta["rack"]
    }

    /// Fires a user event and waits until the agent has taken it in (it is listed): its debug
    /// line, if the level lets it through, is written as it is taken in.
    func fireEvent(_ name: String) {
        let fired = try? AgentProcessHarness.cli(["event", "-name", name] + addr)
        #expect(fired?.0 == 0, "\(String(describing: fired))")
        let listed = AgentProcessHarness.eventually(10) {
            (try? AgentProcessHarness.http("GET", host: Self.host, port: 8500, path: "/v1/event/list?name=\(name)").body.contains(name)) ?? false
        }
        #expect(listed, "event \(name) not listed")
    }

    /// Waits until the agent printed `text` (bounded).
    static func printed(_ agent: AgentProcessHarness, _ text: String, within seconds: Double = 15) -> Bool {
        AgentProcessHarness.eventually(seconds) { agent.log.contains(text) }
    }

    /// How often the agent has printed `text` so far.
    static func count(_ agent: AgentProcessHarness, _ text: String) -> Int {
        agent.log.components(separatedBy: text).count - 1
    }

    @Test func reloadAppliesLogLevelNodeMetaAndDNSConfig() throws {
        let dig = try AgentProcessHarness.ensureTool("dig", package: "bind9-dnsutils")
        let setup = try Setup()
        try setup.writeAgentFile(logLevel: "info", rack: "r1", serviceTTL: "5s")
        let agent = try AgentProcessHarness(arguments: ["agent", "-config-dir", setup.configDir])
        defer { _ = agent.stop(signal: SIGINT) }

        // Started: the node's meta is in the catalog and DNS answers with the configured TTL.
        let started = AgentProcessHarness.eventually(45) { rackInCatalog() == "r1" && Self.webTTLs(dig) == ["5"] }
        #expect(started, "rack=\(String(describing: rackInCatalog())) ttl=\(Self.webTTLs(dig))\n\(agent.log)")
        guard started else { return }
        // At info, a user event's debug line is not printed.
        fireEvent("before-reload")
        #expect(!agent.log.contains("event_name=before-reload"))

        // SIGHUP with log_level, node_meta and dns_config changed.
        try setup.writeAgentFile(logLevel: "debug", rack: "r2", serviceTTL: "42s")
        kill(agent.process.processIdentifier, SIGHUP)
        #expect(Self.printed(agent, "==> Reload complete"), "\(agent.log)")
        #expect(agent.log.contains("Reloaded configuration: applied=log_level,node_meta,dns_config"), "\(agent.log)")
        let metaFollowed = AgentProcessHarness.eventually(20) { rackInCatalog() == "r2" }
        #expect(metaFollowed, "rack=\(String(describing: rackInCatalog()))\n\(agent.log)")
        #expect(Self.webTTLs(dig) == ["42"])
        fireEvent("while-debug")
        #expect(Self.printed(agent, "[DEBUG] agent: new event: event_name=while-debug"), "\(agent.log)")

        // `consul reload`: back to info, and another TTL.
        try setup.writeAgentFile(logLevel: "info", rack: "r2", serviceTTL: "7s")
        let reload = try AgentProcessHarness.cli(["reload"] + addr)
        #expect(reload.0 == 0 && reload.1 == "Configuration reload triggered\n", "\(reload)")
        let ttlFollowed = AgentProcessHarness.eventually(10) { Self.webTTLs(dig) == ["7"] }
        #expect(ttlFollowed, "ttl=\(Self.webTTLs(dig))\n\(agent.log)")
        fireEvent("after-debug")
        #expect(!agent.log.contains("event_name=after-debug"), "\(agent.log)")

        // Settings that need a restart: kept, and named in a warning; the reload itself succeeds.
        try setup.writeAgentFile(logLevel: "info", rack: "r3", serviceTTL: "7s", nodeName: "renamed", dnsPort: 8653)
        let refused = try AgentProcessHarness.cli(["reload"] + addr)
        #expect(refused.0 == 0, "\(refused)")
        #expect(Self.printed(agent, "Configuration changes not applied"), "\(agent.log)")
        #expect(agent.log.contains("settings=node_name,ports"), "\(agent.log)")
        #expect(AgentProcessHarness.eventually(20) { rackInCatalog() == "r3" })
        #expect(Self.webTTLs(dig) == ["7"])  // still on 8600

        // A broken file: the reload fails naming it, and nothing changes.
        try setup.writeAgentFile(logLevel: "debug", rack: "r4", serviceTTL: "99s")
        try "log_level = \n".write(toFile: setup.configDir + "/zz-broken.hcl", atomically: true, encoding: .utf8)
        let broken = try AgentProcessHarness.cli(["reload"] + addr)
        #expect(broken.0 != 0 && broken.2.contains("zz-broken.hcl"), "\(broken)")
        let failuresBefore = Self.count(agent, "==> Failed to reload configs")
        kill(agent.process.processIdentifier, SIGHUP)
        #expect(AgentProcessHarness.eventually(15) { Self.count(agent, "==> Failed to reload configs") > failuresBefore }, "\(agent.log)")
        #expect(agent.log.contains("zz-broken.hcl"))
        #expect(Self.webTTLs(dig) == ["7"])
        #expect(rackInCatalog() == "r3")
        fireEvent("still-info")
        #expect(!agent.log.contains("event_name=still-info"), "\(agent.log)")
    }
}
