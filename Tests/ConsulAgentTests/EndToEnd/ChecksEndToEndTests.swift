import Foundation
import Testing

/// Seed 002's service discovery with real processes: servers n1, n2 and a client n3; `web3` is
/// defined by a JSON file in `-config-dir` on n2 and n3 with an HTTP check against a small local
/// web server; `dig` on n1 sees both instances, loses the one whose web server stops and finds it
/// again when it comes back. Also TTL checks, maintenance, the script-check refusal and reload.
/// Addresses 127.0.0.141-143 belong to this suite.
@Suite(.serialized) struct ChecksEndToEndTests {
    static let hosts = ["n1": "127.0.0.141", "n2": "127.0.0.142", "n3": "127.0.0.143"]

    /// `python3 -m http.server` serving a directory with a `health` file.
    final class WebServer {
        let process = Process()

        init(python: String, host: String, directory: String) throws {
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = ["-m", "http.server", "10000", "--bind", host, "--directory", directory]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
        }

        func stop() {
            guard process.isRunning else { return }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        deinit { stop() }
    }

    static func web3(host: String) -> String {
        """
        {
          "service": {
            "name": "web3",
            "tags": ["master"],
            "port": 10000,
            "checks": [
              {
                "http": "http://\(host):10000/health",
                "interval": "1s"
              }
            ]
          }
        }
        """
    }

    /// `dig … SRV` answer and additional sections as (section, record) lines.
    static func srv(_ dig: String, server: String, name: String) -> (answers: [String], additional: [String]) {
        guard let output = try? AgentProcessHarness.run(dig, ["@\(server)", "-p", "8600", "+time=2", "+tries=1", name, "SRV", "+noall", "+answer", "+additional"]).1 else {
            return ([], [])
        }
        let lines = output.split(separator: "\n").map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ") }
        return (lines.filter { $0.contains(" SRV ") }.sorted(), lines.filter { $0.contains(" A ") }.sorted())
    }

    static func targets(_ answers: [String]) -> [String] {
        answers.compactMap { $0.split(separator: " ").last.map(String.init) }.sorted()
    }

    @Test func seed002ServiceDiscoveryFollowsHealthChecks() throws {
        let dig = try AgentProcessHarness.ensureTool("dig", package: "bind9-dnsutils")
        let python = try AgentProcessHarness.ensureTool("python3", package: "python3")
        let cluster = try LocalCluster()
        let www = cluster.root + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try "ok\n".write(toFile: www + "/health", atomically: true, encoding: .utf8)
        for name in ["n2", "n3"] {
            let conf = cluster.root + "/conf-\(name)"
            try FileManager.default.createDirectory(atPath: conf, withIntermediateDirectories: true)
            try Self.web3(host: Self.hosts[name]!).write(toFile: conf + "/web3.json", atomically: true, encoding: .utf8)
        }
        var servers = ["n2": try WebServer(python: python, host: Self.hosts["n2"]!, directory: www),
                       "n3": try WebServer(python: python, host: Self.hosts["n3"]!, directory: www)]

        let join = ["-retry-join", Self.hosts["n1"]!, "-retry-interval", "200ms"]
        try cluster.start("n1", host: Self.hosts["n1"]!, server: true, extra: ["-bootstrap-expect", "2"] + join)
        try cluster.start("n2", host: Self.hosts["n2"]!, server: true, extra: ["-bootstrap-expect", "2", "-config-dir", cluster.root + "/conf-n2"] + join)
        try cluster.start("n3", host: Self.hosts["n3"]!, server: false, extra: ["-config-dir", cluster.root + "/conf-n3"] + join)

        // /v1/agent/services is the agent's own view, there as soon as its HTTP API is up (the
        // process may still be starting: wait for that, not for any sync).
        var local = ""
        let listed = AgentProcessHarness.eventually(15) {
            local = cluster.get("n3", "/v1/agent/services")?.body ?? ""
            return !local.isEmpty
        }
        #expect(listed && local.contains(#""web3":{"ID":"web3","Service":"web3","Tags":["master"]"#), "agent services: \(local)\n\(cluster.logs)")

        // dig on n1 (which defines nothing) lists both instances, port 10000, with A records.
        let both = AgentProcessHarness.eventually(45) { Self.targets(Self.srv(dig, server: Self.hosts["n1"]!, name: "web3.service.consul").answers) == ["n2.node.dc1.consul.", "n3.node.dc1.consul."] }
        #expect(both, "dig: \(Self.srv(dig, server: Self.hosts["n1"]!, name: "web3.service.consul"))\n\(cluster.logs)")
        guard both else { return }
        let answer = Self.srv(dig, server: Self.hosts["n1"]!, name: "web3.service.consul")
        #expect(answer.answers.allSatisfy { $0.contains(" SRV 1 1 10000 ") }, "\(answer.answers)")
        #expect(answer.additional == ["n2.node.dc1.consul. 0 IN A 127.0.0.142", "n3.node.dc1.consul. 0 IN A 127.0.0.143"], "\(answer.additional)")
        // The client n3 keeps no catalog: its DNS asks a server and answers the same, and a name
        // that does not exist is still NXDOMAIN.
        let fromClient = Self.srv(dig, server: Self.hosts["n3"]!, name: "web3.service.consul")
        #expect(Self.targets(fromClient.answers) == ["n2.node.dc1.consul.", "n3.node.dc1.consul."], "dig on the client: \(fromClient)\n\(cluster.logs)")
        #expect(fromClient.additional == answer.additional)
        let node = try AgentProcessHarness.run(dig, ["@" + Self.hosts["n3"]!, "-p", "8600", "+time=2", "+tries=1", "+short", "n1.node.consul"]).1
        #expect(node == Self.hosts["n1"]! + "\n", "n1.node.consul from the client: \(node)")
        let missing = try AgentProcessHarness.run(dig, ["@" + Self.hosts["n3"]!, "-p", "8600", "+time=2", "+tries=1", "nope.service.consul"]).1
        #expect(missing.contains("status: NXDOMAIN"), "\(missing)")
        let checks = cluster.get("n1", "/v1/health/checks/web3")?.body ?? ""
        #expect(checks.contains(#""Output":"HTTP GET http://127.0.0.142:10000/health: 200 OK Output: ok\n""#), "checks: \(checks)")

        // n2's web server stops: within the interval and a few seconds, only n3 answers, and the
        // failing check is listed as critical.
        servers["n2"]?.stop()
        let one = AgentProcessHarness.eventually(10) { Self.targets(Self.srv(dig, server: Self.hosts["n1"]!, name: "web3.service.consul").answers) == ["n3.node.dc1.consul."] }
        #expect(one, "dig: \(Self.srv(dig, server: Self.hosts["n1"]!, name: "web3.service.consul"))")
        let critical = cluster.get("n1", "/v1/health/state/critical")?.body ?? ""
        #expect(critical.contains(#""Node":"n2","CheckID":"service:web3","Name":"Service 'web3' check","Status":"critical""#), "critical: \(critical)")
        #expect(critical.contains("connection refused"), "critical: \(critical)")

        // It comes back.
        servers["n2"] = try WebServer(python: python, host: Self.hosts["n2"]!, directory: www)
        let back = AgentProcessHarness.eventually(10) { Self.targets(Self.srv(dig, server: Self.hosts["n1"]!, name: "web3.service.consul").answers).count == 2 }
        #expect(back, "dig: \(Self.srv(dig, server: Self.hosts["n1"]!, name: "web3.service.consul"))")

        // Service maintenance on n2 takes its instance out; disabling brings it back.
        let maint = try AgentProcessHarness.cli(["maint", "-enable", "-service", "web3", "-reason", "deploy"] + cluster.addr("n2"))
        #expect(maint.0 == 0 && maint.1 == "Service maintenance is now enabled for \"web3\"\n", "\(maint)")
        #expect(AgentProcessHarness.eventually(10) { Self.targets(Self.srv(dig, server: Self.hosts["n1"]!, name: "web3.service.consul").answers) == ["n3.node.dc1.consul."] })
        #expect(try AgentProcessHarness.cli(["maint", "-disable", "-service", "web3"] + cluster.addr("n2")).0 == 0)
        #expect(AgentProcessHarness.eventually(10) { Self.targets(Self.srv(dig, server: Self.hosts["n1"]!, name: "web3.service.consul").answers).count == 2 })

        // A TTL check: registered from a file with the CLI, passing once, then it lapses and the
        // instance leaves DNS.
        let ttlFile = cluster.root + "/ttl.json"
        try #"{"service": {"name": "ttlweb", "port": 9000, "check": {"ttl": "3s"}}}"#.write(toFile: ttlFile, atomically: true, encoding: .utf8)
        let registered = try AgentProcessHarness.cli(["services", "register"] + cluster.addr("n3") + [ttlFile])
        #expect(registered.0 == 0 && registered.1 == "Registered service: ttlweb\n", "\(registered)")
        let pass = try AgentProcessHarness.http("PUT", host: Self.hosts["n3"]!, port: 8500, path: "/v1/agent/check/pass/service:ttlweb?note=alive")
        #expect(pass.status == 200, "\(pass)")
        #expect(AgentProcessHarness.eventually(10) { Self.srv(dig, server: Self.hosts["n1"]!, name: "ttlweb.service.consul").answers.count == 1 })
        let lapsed = AgentProcessHarness.eventually(15) { Self.srv(dig, server: Self.hosts["n1"]!, name: "ttlweb.service.consul").answers.isEmpty }
        #expect(lapsed, "ttl check never lapsed")
        let ttlState = cluster.get("n3", "/v1/agent/checks")?.body ?? ""
        #expect(ttlState.contains(#""Status":"critical","Notes":"","Output":"TTL expired (last output before timeout follows): alive""#), "\(ttlState)")
        let deregistered = try AgentProcessHarness.cli(["services", "deregister", "-id", "ttlweb"] + cluster.addr("n3"))
        #expect(deregistered.1 == "Deregistered service: ttlweb\n")
        #expect(AgentProcessHarness.eventually(10) { !(cluster.get("n1", "/v1/catalog/services")?.body ?? "ttlweb").contains("ttlweb") })

        // Script checks are refused without -enable-script-checks, over the API and in config.
        let script = try AgentProcessHarness.http(
            "PUT", host: Self.hosts["n3"]!, port: 8500, path: "/v1/agent/check/register",
            body: Array(#"{"Name": "disk", "Args": ["/bin/true"], "Interval": "10s"}"#.utf8))
        #expect(script.status == 400)
        #expect(script.body == "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true")
        let scriptConf = cluster.root + "/script.json"
        try #"{"check": {"name": "disk", "args": ["/bin/true"], "interval": "10s"}}"#.write(toFile: scriptConf, atomically: true, encoding: .utf8)
        let refused = try AgentProcessHarness.cli(["agent", "-dev", "-bind", "127.0.0.144", "-client", "127.0.0.144", "-config-file", scriptConf])
        #expect(refused.0 == 1)
        #expect(refused.2.contains("Failed to register check \"disk\": Scripts are disabled on this agent"), "\(refused)")

        // `consul reload` picks up a new definition in n3's config dir.
        try #"{"service": {"name": "extra", "port": 7000}}"#.write(toFile: cluster.root + "/conf-n3/extra.json", atomically: true, encoding: .utf8)
        let reload = try AgentProcessHarness.cli(["reload"] + cluster.addr("n3"))
        #expect(reload.0 == 0 && reload.1 == "Configuration reload triggered\n", "\(reload)")
        #expect((cluster.get("n3", "/v1/agent/services")?.body ?? "").contains(#""extra":{"#))
        #expect(AgentProcessHarness.eventually(10) { (cluster.get("n1", "/v1/catalog/service/extra")?.body ?? "").contains(#""Node":"n3""#) })
        _ = servers
    }
}
