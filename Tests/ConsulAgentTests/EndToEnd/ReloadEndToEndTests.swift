import Foundation
import Testing

/// Reloading a real server started with `-config-dir`: SIGHUP and `consul reload` apply
/// `log_level`, `node_meta` and `dns_config` while the agent runs, keep settings that need a
/// restart (and say so), and a broken file changes nothing and is named.
/// Addresses 127.0.0.191 and 127.0.0.192 belong to this suite (127.0.0.191-195 are this branch's).
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

        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: configDir + "/" + name, atomically: true, encoding: .utf8)
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
        // The agent's own view of its configuration follows too.
        let selfView = try AgentProcessHarness.http("GET", host: Self.host, port: 8500, path: "/v1/agent/self").body
        #expect(selfView.contains(#""rack":"r2""#), "\(selfView)")
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

    /// Certificates rotated in place (same file names, a new CA): after SIGHUP new HTTPS
    /// connections get the new certificate; a reload that finds a broken key fails, names it,
    /// and the certificates in use stay.
    @Test func reloadReReadsTLSCertificates() throws {
        let host = "127.0.0.192"
        let curl = try AgentProcessHarness.ensureTool("curl", package: "curl")
        let first = try TestPKI(additionalServerIP: host)
        let second = try TestPKI(additionalServerIP: host)
        let setup = try Setup()
        let tlsDir = setup.root + "/tls"
        try FileManager.default.createDirectory(atPath: tlsDir, withIntermediateDirectories: true)
        func install(_ pki: TestPKI) throws {
            for (source, name) in [(pki.ca, "ca.pem"), (pki.serverCert, "server.pem"), (pki.serverKey, "server-key.pem")] {
                let data = try Data(contentsOf: URL(fileURLWithPath: source))
                try data.write(to: URL(fileURLWithPath: tlsDir + "/" + name), options: .atomic)
            }
        }
        try install(first)
        try setup.write("agent.hcl", """
            node_name = "reload-tls"
            server = true
            bootstrap_expect = 1
            bind_addr = "\(host)"
            client_addr = "\(host)"
            data_dir = "\(setup.dataDir)"
            ports {
              https = 8501
            }
            tls {
              defaults {
                ca_file = "\(tlsDir)/ca.pem"
                cert_file = "\(tlsDir)/server.pem"
                key_file = "\(tlsDir)/server-key.pem"
              }
            }
            """)
        let agent = try AgentProcessHarness(arguments: ["agent", "-config-dir", setup.configDir])
        defer { _ = agent.stop(signal: SIGINT) }
        /// Whether a new HTTPS connection trusting only `ca` is answered.
        func trusted(by ca: String) -> Bool {
            let result = try? AgentProcessHarness.run(curl, [
                "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert", ca, "https://\(host):8501/v1/agent/self"])
            return result?.0 == 0 && result?.1 == "200"
        }
        let up = AgentProcessHarness.eventually(30) { trusted(by: first.ca) }
        #expect(up, "\(agent.log)")
        guard up else { return }
        #expect(!trusted(by: second.ca))

        // Rotated in place, the configuration unchanged: SIGHUP re-reads the files.
        try install(second)
        kill(agent.process.processIdentifier, SIGHUP)
        #expect(Self.printed(agent, "Reloaded TLS certificates"), "\(agent.log)")
        #expect(AgentProcessHarness.eventually(10) { trusted(by: second.ca) }, "\(agent.log)")
        #expect(!trusted(by: first.ca))

        // A broken key: the reload fails, naming the file, and the second certificate stays.
        try "not a key\n".write(toFile: tlsDir + "/server-key.pem", atomically: true, encoding: .utf8)
        let broken = try AgentProcessHarness.cli(["reload", "-http-addr", "\(host):8500"])
        #expect(broken.0 != 0 && broken.2.contains("server-key.pem"), "\(broken)")
        #expect(trusted(by: second.ca))
        #expect(Self.count(agent, "Reloaded TLS certificates") == 1, "\(agent.log)")
    }
}
