@testable import ConsulAgent
import Foundation
import NIOPosix
import Testing

/// Agent RPC against real `consul` processes: this test process plays the agent that forwards (its
/// `RPCClientPool` sends frames to a `-dev` server's server port), and a client agent with no
/// server to ask answers as Consul does. Two agent processes forwarding to each other need gossip
/// to find each other; until it lands, `ForwardingClusterTests` runs that path in-process.
@Suite(.serialized) struct RPCEndToEndTests {
    static let serverHost = "127.0.0.64"
    static let clientHost = "127.0.0.65"
    static let httpPort = 18500
    static let serverPort = 18300

    static func http(_ method: String, _ host: String, _ path: String, body: String = "") async throws -> (status: Int, headers: [String: String], body: String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result {
                    try AgentProcessHarness.http(method, host: host, port: httpPort, path: path, body: Array(body.utf8))
                })
            }.start()
        }
    }

    static func request(_ method: String, _ target: String, body: String = "", token: String = "") -> RPCRequestFrame {
        let parsed = APIRequest.parseTarget(target)!
        return RPCRequestFrame(
            APIRequest(method: method, path: parsed.path, query: parsed.query, headers: [("X-Consul-Token", token)], body: Array(body.utf8)), hops: 1)
    }

    @Test func aDevServerAnswersRequestsForwardedToItsServerPort() async throws {
        let agent = try AgentProcessHarness(arguments: [
            "agent", "-dev", "-node", "e2e-rpc", "-bind", Self.serverHost, "-client", Self.serverHost,
            "-http-port", String(Self.httpPort), "-dns-port", "18600", "-server-port", String(Self.serverPort),
        ])
        defer { _ = agent.stop() }
        let ready = await eventually(15) {
            (try? AgentProcessHarness.http("GET", host: Self.serverHost, port: Self.httpPort, path: "/v1/catalog/nodes").body.contains("e2e-rpc")) ?? false
        }
        guard ready else { throw HarnessError("dev agent did not become ready:\n\(agent.log)") }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = RPCClientPool(group: group)
        let address = "\(Self.serverHost):\(Self.serverPort)"
        do {
            let loop = group.next()
            let put = try await pool.call(Self.request("PUT", "/v1/kv/e2e/rpc", body: "via-rpc"), to: address, timeout: .seconds(10), on: loop).get()
            #expect(put.status == 200 && put.body == Array("true".utf8))
            let get = try await pool.call(Self.request("GET", "/v1/kv/e2e/rpc?raw"), to: address, timeout: .seconds(10), on: loop).get()
            #expect(get.body == Array("via-rpc".utf8))
            #expect(get.headers.contains { $0.name == "X-Consul-KnownLeader" && $0.value == "true" })
            #expect(get.headers.contains { $0.name == "X-Consul-Index" })
            // What came over RPC is in the store HTTP reads.
            #expect(try await Self.http("GET", Self.serverHost, "/v1/kv/e2e/rpc?raw").body == "via-rpc")
            // Agent-local endpoints are not served to other agents.
            let local = try await pool.call(Self.request("PUT", "/v1/agent/leave"), to: address, timeout: .seconds(10), on: loop).get()
            #expect(local.status == 400)
        } catch {
            Issue.record("\(error)\n\(agent.log)")
        }
        await pool.shutdown()
        try? await group.shutdownGracefully()
        // Still up (the leave above was refused).
        #expect(try await Self.http("GET", Self.serverHost, "/v1/status/leader").body == "\"\(Self.serverHost):\(Self.serverPort)\"")
    }

    @Test func aClientWithNoServerToAskSaysSo() async throws {
        let dataDir = NSTemporaryDirectory() + "consul-e2e-client-" + UUID().uuidString.lowercased()
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let agent = try AgentProcessHarness(arguments: [
            "agent", "-node", "e2e-rpc-client", "-bind", Self.clientHost, "-client", Self.clientHost, "-data-dir", dataDir,
            "-http-port", String(Self.httpPort), "-dns-port", "18600",
        ])
        defer { _ = agent.stop() }
        let ready = await eventually(15) {
            (try? AgentProcessHarness.http("GET", host: Self.clientHost, port: Self.httpPort, path: "/v1/agent/self").status) == 200
        }
        guard ready else { throw HarnessError("client agent did not become ready:\n\(agent.log)") }
        let read = try await Self.http("GET", Self.clientHost, "/v1/kv/anything")
        #expect(read.status == 500 && read.body == "No known Consul servers")
        let write = try await Self.http("PUT", Self.clientHost, "/v1/kv/anything", body: "x")
        #expect(write.status == 500 && write.body == "No known Consul servers")
        let leader = try await Self.http("GET", Self.clientHost, "/v1/status/leader")
        #expect(leader.status == 500 && leader.body == "No known Consul servers")
        // Its own services are its own business, answered without a server.
        #expect(try await Self.http("GET", Self.clientHost, "/v1/agent/services").body == "{}")
    }
}
