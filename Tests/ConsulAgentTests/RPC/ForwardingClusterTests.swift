@testable import ConsulAgent
import Foundation
import Raft
import Testing

/// Three real agents in this process, each with its own loopback address, data dir, HTTP, server
/// port and gossip: server A (bootstraps, leads), server B (added to A's Raft configuration by
/// hand: it is in no gossip pool with A), client C (joins B's gossip pool, so B is the only server
/// it knows). Requests go over real HTTP and real agent RPC along Consul's longest path, C → B → A.
/// `ForwardingEndToEndTests` runs the same with separate processes that find each other by gossip.
@Suite(.serialized) struct ForwardingClusterTests {
    static let httpPort = 18_500
    static let serverPort = 18_300
    static let hosts = ["127.0.0.171", "127.0.0.172", "127.0.0.173"]

    static func config(node: String, host: String, server: Bool, bootstrap: Bool, dataDir: String) -> AgentConfig {
        var config = AgentConfig.defaults(dev: false)
        config.nodeName = node
        config.server = server
        config.bootstrap = bootstrap
        config.bindAddr = host
        config.clientAddrs = [host]
        config.dataDir = dataDir
        config.ports.http = httpPort
        config.ports.server = serverPort
        config.ports.dns = 0
        config.ports.serfLAN = 18_301
        config.ports.serfWAN = 18_302
        return config
    }

    /// One HTTP/1.0 request, on a thread of its own (the socket calls block).
    static func http(_ method: String, _ host: String, _ path: String, body: String = "") async throws -> (status: Int, headers: [String: String], body: String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result {
                    try AgentProcessHarness.http(method, host: host, port: httpPort, path: path, body: Array(body.utf8))
                })
            }.start()
        }
    }

    /// `http`, asked again (bounded, 20 s) while the answer is Consul's "No cluster leader": on a
    /// loaded machine the two servers can miss a heartbeat and hold an election, and a client
    /// asks again then, as Consul's do. Such a request reached no leader, so a write is not done.
    static func httpWithLeader(_ method: String, _ host: String, _ path: String, body: String = "") async throws -> (status: Int, headers: [String: String], body: String) {
        let deadline = Date().addingTimeInterval(20)
        while true {
            let answer = try await http(method, host, path, body: body)
            guard answer.status == 500, answer.body == "No cluster leader", Date() < deadline else { return answer }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    static func eventuallyAnswers(_ expected: String, _ host: String, _ path: String) async throws -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if try await http("GET", host, path).body == expected { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func requestsTravelFromAClientThroughAFollowerToTheLeader() async throws {
        let root = NSTemporaryDirectory() + "consul-forwarding-" + UUID().uuidString.lowercased()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let logger = LoopbackRPCServer.quietLogger
        let (hostA, hostB, hostC) = (Self.hosts[0], Self.hosts[1], Self.hosts[2])

        let a = try await Agent.start(config: Self.config(node: "fwd-a", host: hostA, server: true, bootstrap: true, dataDir: root + "/a"), logger: logger)
        var b: Agent?
        var c: Agent?
        // An agent is shut down once: its event loops are gone afterwards.
        var leaderRunning = true
        do {
            #expect(await eventually(15) { a.runtime.clusterView.isLeader }, "A elects itself")
            let serverB = try await Agent.start(config: Self.config(node: "fwd-b", host: hostB, server: true, bootstrap: false, dataDir: root + "/b"), logger: logger)
            b = serverB
            let addressB = "\(hostB):\(Self.serverPort)"
            // B answers A on B's own connection, so it must know where A's server port is. Servers
            // of a -bootstrap-expect configuration know each other from it; for a server added
            // later nothing in the agent tells it yet (ServerDirectory → updateAddresses would),
            // so the test does. Then the leader adds B to Raft.
            serverB.raftTransport?.updateAddresses([ServerID(a.runtime.nodeID): "\(hostA):\(Self.serverPort)"])
            let raftA = a.runtime.raft!
            let idB = ServerID(serverB.runtime.nodeID)
            // Not awaited here: should B never catch up, the test fails below instead of hanging.
            let added = Task { try await raftA.changeMembership(.addVoter(idB, address: addressB)) }
            let follows = await eventually(15) {
                serverB.runtime.clusterView.leaderID?.rawValue == a.runtime.nodeID && a.runtime.clusterView.configuration.voters.contains(idB)
            }
            guard follows else { throw HarnessError("B did not join A's Raft configuration") }
            // The change may also have been answered `leadershipLost`: under load, A can step down
            // (check-quorum) while B is still starting and then win again with B's vote. What
            // counts is checked above: B is a voter following A.
            _ = await added.result

            let client = try await Agent.start(config: Self.config(node: "fwd-c", host: hostC, server: false, bootstrap: false, dataDir: root + "/c"), logger: logger)
            c = client
            // No server known yet: Consul's answer.
            let none = try await Self.http("GET", hostC, "/v1/kv/fwd/one")
            #expect(none.status == 500 && none.body == "No known Consul servers")
            // C joins B's gossip pool (A is in no pool with them), so B is the one server C knows.
            _ = try await client.runtime.lan!.join(["\(hostB):18301"], defaultPort: 18_301)
            let knowsB = await eventually(10) { client.runtime.servers.current.map(\.rpcAddress) == [addressB] }
            guard knowsB else { throw HarnessError("C never learned of B: \(client.runtime.servers.current)") }

            // A follower forwards writes and default reads to the leader.
            let put = try await Self.httpWithLeader("PUT", hostB, "/v1/kv/fwd/one", body: "v1")
            #expect(put.status == 200 && put.body == "true", "\(put)")
            let get = try await Self.httpWithLeader("GET", hostB, "/v1/kv/fwd/one?raw")
            #expect(get.status == 200 && get.body == "v1", "\(get)")
            #expect(get.headers["x-consul-knownleader"] == "true")
            #expect(Int(get.headers["x-consul-index"] ?? "") ?? 0 > 0)
            let consistent = try await Self.httpWithLeader("GET", hostB, "/v1/kv/fwd/one?raw&consistent")
            #expect(consistent.body == "v1")

            // A client goes to a server, which answers ?stale itself and forwards the rest.
            let clientPut = try await Self.httpWithLeader("PUT", hostC, "/v1/kv/fwd/two", body: "c1")
            #expect(clientPut.status == 200 && clientPut.body == "true", "\(clientPut)")
            let clientGet = try await Self.httpWithLeader("GET", hostC, "/v1/kv/fwd/two")
            #expect(clientGet.status == 200 && clientGet.body.contains("\"Key\":\"fwd/two\""), "\(clientGet)")
            let index = Int(clientGet.headers["x-consul-index"] ?? "") ?? 0
            #expect(index > 0)
            // ?stale is answered by B from what it has applied, which may trail the leader a little.
            #expect(try await Self.eventuallyAnswers("c1", hostC, "/v1/kv/fwd/two?raw&stale"))
            // Status is answered by the server the client asks, from what it knows.
            #expect(try await Self.eventuallyAnswers("\"\(hostA):\(Self.serverPort)\"", hostC, "/v1/status/leader"))
            // Both voters (in the configuration's order, which follows the random node IDs).
            let peers = try await Self.http("GET", hostC, "/v1/status/peers").body
            #expect(Set(peers.dropFirst().dropLast().split(separator: ",").map(String.init)) == ["\"\(hostA):\(Self.serverPort)\"", "\"\(addressB)\""])
            // An agent's own services are its own: B is not asked for A's (the leader's) answer.
            // (As in Consul, a server's `consul` service is the catalog's, not the agent's.)
            #expect(try await Self.http("PUT", hostA, "/v1/agent/service/register", body: #"{"Name": "only-a"}"#).status == 200)
            #expect(try await Self.http("GET", hostA, "/v1/agent/services").body.contains("\"only-a\""))
            #expect(try await Self.http("GET", hostB, "/v1/agent/services").body == "{}")
            let catalog = try await Self.httpWithLeader("GET", hostC, "/v1/catalog/nodes")
            #expect(catalog.body.contains("\"Node\":\"fwd-a\""))

            // A blocking query forwarded from the client waits on the leader without holding back
            // other requests, and returns when the key changes.
            async let blocked = Self.httpWithLeader("GET", hostC, "/v1/kv/fwd/two?raw&index=\(index)&wait=30s")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await Self.httpWithLeader("GET", hostC, "/v1/kv/fwd/one?raw").body == "v1")
            #expect(try await Self.httpWithLeader("PUT", hostC, "/v1/kv/fwd/two", body: "c2").body == "true")
            // The blocked query had 30 s to wait: it was woken by the write, not by its timer,
            // and the requests above went through while it waited.
            let woken = try await blocked
            #expect(woken.body == "c2", "\(woken)")
            #expect(Int(woken.headers["x-consul-index"] ?? "") ?? 0 > index)

            // The leader goes: B still answers ?stale (once it applied the last write: a follower
            // learns of a commit with the leader's next message); what needs the leader fails clearly.
            let applied = await eventually(10) {
                serverB.runtime.watch.current.index(of: [.kv]) >= UInt64(Int(woken.headers["x-consul-index"] ?? "") ?? 0)
            }
            #expect(applied)
            await a.shutdown()
            leaderRunning = false
            let stale = try await Self.http("GET", hostB, "/v1/kv/fwd/two?raw&stale")
            #expect(stale.status == 200 && stale.body == "c2", "\(stale)")
            #expect(try await Self.http("GET", hostC, "/v1/kv/fwd/two?raw&stale").body == "c2")
            let lost = try await Self.http("PUT", hostC, "/v1/kv/fwd/three", body: "x")
            #expect(lost.status == 500, "\(lost)")
            #expect(lost.body == "No cluster leader" || lost.body.hasPrefix("rpc error making call to the leader at \(hostA):\(Self.serverPort)"), "\(lost)")
        } catch {
            Issue.record("\(error)")
        }
        await c?.shutdown()
        await b?.shutdown()
        if leaderRunning { await a.shutdown() }
    }
}
