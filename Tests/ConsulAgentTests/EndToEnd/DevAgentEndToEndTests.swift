import Foundation
import Testing

/// A real `consul agent -dev` process on its own loopback address, driven by the real CLI and raw
/// HTTP: the path a newcomer takes first.
@Suite(.serialized) struct DevAgentEndToEndTests {
    static let host = "127.0.0.61"
    static let port = 18500
    static let dnsPort = 18600
    var addr: [String] { ["-http-addr", "\(Self.host):\(Self.port)"] }

    func startAgent() throws -> AgentProcessHarness {
        let agent = try AgentProcessHarness(arguments: [
            "agent", "-dev", "-node", "e2e-dev", "-bind", Self.host, "-client", Self.host, "-http-port", String(Self.port),
            "-dns-port", String(Self.dnsPort),
        ])
        let ready = AgentProcessHarness.eventually(15) {
            (try? AgentProcessHarness.http("GET", host: Self.host, port: Self.port, path: "/v1/catalog/nodes").body.contains("e2e-dev")) ?? false
        }
        guard ready else {
            _ = agent.stop()
            throw HarnessError("dev agent did not become ready:\n\(agent.log)")
        }
        return agent
    }

    @Test func devAgentServesKVCatalogAndStatusThroughTheCLI() throws {
        let agent = try startAgent()
        defer { _ = agent.stop() }
        #expect(agent.log.contains("==> Starting Consul agent..."))
        #expect(agent.log.contains("Node name: 'e2e-dev'"))
        #expect(agent.log.contains("==> Log data will now stream in as it occurs:"))

        let put = try AgentProcessHarness.cli(["kv", "put"] + addr + ["app/config", "v1"])
        #expect(put.0 == 0 && put.1 == "Success! Data written to: app/config\n")
        let stdinPut = try AgentProcessHarness.cli(["kv", "put"] + addr + ["app/stdin", "-"], stdin: "from stdin")
        #expect(stdinPut.0 == 0)
        let get = try AgentProcessHarness.cli(["kv", "get"] + addr + ["app/config"])
        #expect(get.0 == 0 && get.1 == "v1\n")
        let recurse = try AgentProcessHarness.cli(["kv", "get", "-recurse"] + addr + ["app"])
        #expect(recurse.1 == "app/config:v1\napp/stdin:from stdin\n")
        let missing = try AgentProcessHarness.cli(["kv", "get"] + addr + ["app/none"])
        #expect(missing.0 == 1 && missing.2 == "Error! No key exists at: app/none\n")
        let cas = try AgentProcessHarness.cli(["kv", "put", "-cas", "-modify-index=1"] + addr + ["app/config", "v2"])
        #expect(cas.0 == 1 && cas.2.contains("CAS failed"))

        let env = ["CONSUL_HTTP_ADDR": "\(Self.host):\(Self.port)"]
        let members = try AgentProcessHarness.cli(["members"], environment: env)
        #expect(members.0 == 0)
        #expect(members.1.hasPrefix("Node     Address"))
        #expect(members.1.contains("e2e-dev  \(Self.host):8301  alive   server"))
        let peers = try AgentProcessHarness.cli(["operator", "raft", "list-peers"], environment: env)
        #expect(peers.1.contains("leader  true"))
        let info = try AgentProcessHarness.cli(["info"], environment: env)
        #expect(info.1.contains("\tleader = true"))
        #expect(info.1.contains("\tstate = Leader"))

        let leader = try AgentProcessHarness.http("GET", host: Self.host, port: Self.port, path: "/v1/status/leader")
        #expect(leader.body == "\"\(Self.host):8300\"")
        let health = try AgentProcessHarness.http("GET", host: Self.host, port: Self.port, path: "/v1/health/service/consul?passing")
        #expect(health.body.contains("\"CheckID\":\"serfHealth\""))
        #expect(Int(health.headers["x-consul-index"] ?? "0")! >= 1)
        #expect(health.headers["x-consul-knownleader"] == "true")
        #expect(agent.stop(signal: SIGINT) == 0)
        #expect(agent.log.contains("==> Caught signal: interrupt"))
    }

    @Test func digFindsTheNodeAndARegisteredServiceFromTheCatalog() throws {
        let dig = try AgentProcessHarness.ensureTool("dig", package: "bind9-dnsutils")
        let agent = try startAgent()
        defer { _ = agent.stop() }
        let register = #"{"Node":"web-node","Address":"10.1.2.3","Service":{"Service":"web","Port":8080,"Tags":["v1"]},"Check":{"CheckID":"web-alive","Status":"passing","ServiceID":"web"}}"#
        let registered = try AgentProcessHarness.http("PUT", host: Self.host, port: Self.port, path: "/v1/catalog/register", body: Array(register.utf8))
        #expect(registered.body == "true")
        let base = ["@\(Self.host)", "-p", String(Self.dnsPort), "+short", "+time=2", "+tries=1"]
        #expect(try AgentProcessHarness.run(dig, base + ["e2e-dev.node.consul"]).1 == "\(Self.host)\n")
        #expect(try AgentProcessHarness.run(dig, base + ["v1.web.service.consul", "SRV"]).1 == "1 1 8080 web-node.node.dc1.consul.\n")
        // A critical check takes the instance out of DNS.
        let failing = #"{"Node":"web-node","Address":"10.1.2.3","Check":{"CheckID":"web-alive","Status":"critical","ServiceID":"web"}}"#
        _ = try AgentProcessHarness.http("PUT", host: Self.host, port: Self.port, path: "/v1/catalog/register", body: Array(failing.utf8))
        #expect(try AgentProcessHarness.run(dig, base + ["web.service.consul", "SRV"]).1 == "")
        let nx = try AgentProcessHarness.run(dig, ["@\(Self.host)", "-p", String(Self.dnsPort), "+time=2", "+tries=1", "nothere.node.consul"]).1
        #expect(nx.contains("status: NXDOMAIN"))
        #expect(nx.contains("SOA"))
    }

    @Test func sessionsHoldLocksUntilDestroyed() throws {
        let agent = try startAgent()
        defer { _ = agent.stop() }
        func call(_ method: String, _ path: String, _ body: String = "") throws -> (Int, String) {
            let response = try AgentProcessHarness.http(method, host: Self.host, port: Self.port, path: path, body: Array(body.utf8))
            return (response.status, response.body)
        }
        func sessionID(_ body: String) -> String {
            body.components(separatedBy: "\"ID\":\"").dropFirst().first?.components(separatedBy: "\"").first ?? ""
        }
        let first = sessionID(try call("PUT", "/v1/session/create", #"{"Name":"a","TTL":"30s"}"#).1)
        let second = sessionID(try call("PUT", "/v1/session/create", "").1)
        #expect(first.count == 36 && second.count == 36)
        #expect(try call("PUT", "/v1/kv/service/leader?acquire=\(first)", "me") == (200, "true"))
        #expect(try call("PUT", "/v1/kv/service/leader?acquire=\(second)", "you") == (200, "false"))
        #expect(try call("GET", "/v1/kv/service/leader").1.contains("\"Session\":\"\(first)\""))
        #expect(try call("GET", "/v1/session/info/\(first)").1.contains("\"TTL\":\"30s\""))
        #expect(try call("PUT", "/v1/session/renew/\(first)").0 == 200)
        #expect(try call("PUT", "/v1/session/destroy/\(first)") == (200, "true"))
        #expect(!(try call("GET", "/v1/kv/service/leader").1.contains("Session")))
        // The destroyed session's lock-delay (15 s default) keeps the key from being taken at once...
        #expect(try call("PUT", "/v1/kv/service/leader?acquire=\(second)", "you") == (200, "false"))
        // ...while a session with LockDelay 0 that releases lets the next holder in immediately.
        let quick = sessionID(try call("PUT", "/v1/session/create", #"{"LockDelay":"0s"}"#).1)
        #expect(try call("PUT", "/v1/kv/service/other?acquire=\(quick)", "q") == (200, "true"))
        #expect(try call("PUT", "/v1/session/destroy/\(quick)") == (200, "true"))
        #expect(try call("PUT", "/v1/kv/service/other?acquire=\(second)", "you") == (200, "true"))
        #expect(try call("PUT", "/v1/session/renew/\(first)").0 == 404)
        #expect(try call("PUT", "/v1/session/create", #"{"TTL":"1s"}"#) == (400, "Invalid Session TTL '1s', must be between [10s-24h0m0s]"))
        #expect(try call("PUT", "/v1/session/create", #"{"Behavior":"explode"}"#) == (400, "Invalid Behavior setting 'explode'"))
        #expect(try call("PUT", "/v1/session/create", #"{"Node":"ghost"}"#) == (500, "Missing node registration"))
    }

    @Test func blockingQueryReturnsWhenTheKeyChanges() throws {
        let agent = try startAgent()
        defer { _ = agent.stop() }
        let put = try AgentProcessHarness.http("PUT", host: Self.host, port: Self.port, path: "/v1/kv/watched", body: Array("1".utf8))
        try #require(put.status == 200 && put.body == "true", "PUT answered \(put.status) \(put.body)")
        // An acknowledged write is visible to the next read (read-your-writes on the leader).
        let first = try AgentProcessHarness.http("GET", host: Self.host, port: Self.port, path: "/v1/kv/watched")
        try #require(first.body.contains("\"Value\":\"MQ==\""), "read after an acknowledged write: \(first.status) \(first.headers) \(first.body)")
        let index = try #require(first.headers["x-consul-index"])
        let writer = Thread {
            usleep(300_000)
            _ = try? AgentProcessHarness.http("PUT", host: Self.host, port: Self.port, path: "/v1/kv/watched", body: Array("2".utf8))
        }
        writer.start()
        let started = Date()
        let blocked = try AgentProcessHarness.http("GET", host: Self.host, port: Self.port, path: "/v1/kv/watched?index=\(index)&wait=20s")
        #expect(Date().timeIntervalSince(started) < 15, "the blocking query must return on the change, not at its wait")
        #expect(blocked.body.contains("\"Value\":\"Mg==\""))
        #expect(UInt64(blocked.headers["x-consul-index"]!)! > UInt64(index)!)
    }

    @Test func badRequestsGetClearFourHundreds() throws {
        let agent = try startAgent()
        defer { _ = agent.stop() }
        func request(_ method: String, _ path: String, body: [UInt8] = []) throws -> (Int, String) {
            let response = try AgentProcessHarness.http(method, host: Self.host, port: Self.port, path: path, body: body)
            return (response.status, response.body)
        }
        #expect(try request("GET", "/v1/kv/x?index=abc") == (400, "Invalid index"))
        #expect(try request("GET", "/v1/kv/x?wait=forever") == (400, "Invalid wait time"))
        #expect(try request("GET", "/v1/kv/x?stale&consistent") == (400, "Cannot specify ?stale with ?consistent, conflicting semantics."))
        #expect(try request("PUT", "/v1/catalog/register", body: Array("{not json".utf8)).0 == 400)
        #expect(try request("PUT", "/v1/catalog/register", body: Array("{\"Address\":\"1.2.3.4\"}".utf8)) == (400, "Must provide node"))
        #expect(try request("PUT", "/v1/kv/big", body: [UInt8](repeating: 65, count: 512 * 1024 + 1)).0 == 413)
        #expect(try request("GET", "/v1/nonsense").0 == 404)
        #expect(try request("POST", "/v1/status/leader").0 == 405)
        #expect(try request("GET", "/v1/kv/x?dc=elsewhere") == (500, "No path to datacenter elsewhere"))
        #expect(try request("GET", "/v1/health/state/sideways") == (400, "Invalid state: sideways"))
        // The agent is still fine after all of that.
        #expect(try request("GET", "/v1/status/leader").0 == 200)
    }
}
