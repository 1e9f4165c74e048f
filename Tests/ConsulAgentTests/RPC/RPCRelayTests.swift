@testable import ConsulAgent
import ConsulCore
import Foundation
import NIOCore
import NIOPosix
import Testing

/// The request path of a client agent with the relay: requests the forwarder sends away travel to
/// a server of `ServerDirectory` (here loopback RPC servers answering from closures), rotating past
/// servers that cannot be reached, and the answer comes back unchanged.
@Suite(.serialized) struct RPCRelayTests {
    static func clientRuntime() -> AgentRuntime {
        var config = AgentConfig.defaults(dev: false)
        config.nodeName = "relay-client"
        return AgentRuntime(
            config: config, nodeName: "relay-client", nodeID: "00000000-0000-0000-0000-00000000c11e", advertiseAddress: "127.0.0.1",
            watch: ConsulStateMachine(datacenter: "dc1").watch, raft: nil, clock: SystemMonotonicClock())
    }

    /// A fake server: answers 403 for the token "bad", otherwise what it saw, with Consul's headers.
    static func fakeServer(_ name: String) -> RPCServer.Serve {
        { request, loop in
            if request.token == "bad" {
                var denied = APIError.forbidden("Permission denied").response
                denied.headers = [("X-Consul-Index", "0")]
                return loop.makeSucceededFuture(denied)
            }
            let query = request.query.keys.sorted().joined(separator: ",")
            var response = APIResponse.text("\(name) \(request.method) \(request.path) hops=\(request.forwardHops) query=\(query) token=\(request.token)")
            response.headers = [("X-Consul-Index", "12"), ("X-Consul-KnownLeader", "true"), ("X-Consul-LastContact", "3")]
            return loop.makeSucceededFuture(response)
        }
    }

    /// Runs `body` with a client's dispatcher (with a relay over a fresh pool) and its runtime.
    static func withClient(_ body: (APIDispatcher, AgentRuntime, RPCClientPool, any EventLoop) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let runtime = clientRuntime()
        let pool = RPCClientPool(group: group)
        let dispatcher = APIDispatcher(agent: runtime, seed: 1, relay: RPCRelay(runtime: runtime, pool: pool))
        do {
            try await body(dispatcher, runtime, pool, group.next())
        } catch {
            await pool.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
        await pool.shutdown()
        try? await group.shutdownGracefully()
    }

    static func request(_ method: String, _ target: String, headers: [(String, String)] = [], hops: Int = 0) -> APIRequest {
        let parsed = APIRequest.parseTarget(target)!
        return APIRequest(method: method, path: parsed.path, query: parsed.query, headers: headers, body: [], forwardHops: hops)
    }

    static func text(_ response: APIResponse) -> String { String(decoding: response.body, as: UTF8.self) }

    @Test func aClientWithoutServersAnswersNoKnownConsulServers() async throws {
        try await Self.withClient { dispatcher, _, _, loop in
            let response = try await dispatcher.handle(Self.request("GET", "/v1/kv/a"), on: loop).get()
            #expect(response.status == 500)
            #expect(Self.text(response) == "No known Consul servers")
        }
    }

    @Test func aClientForwardsToAServerAndPassesTheAnswerBackUnchanged() async throws {
        let server = try await LoopbackRPCServer.start(serve: Self.fakeServer("s1"))
        try await Self.withClient { dispatcher, runtime, _, loop in
            runtime.servers.replace(with: [KnownServer(name: "s1", id: "s1-id", datacenter: "dc1", rpcAddress: server.address)])
            let answer = try await dispatcher.handle(
                Self.request("GET", "/v1/kv/a?stale&index=3&wait=1s", headers: [("X-Consul-Token", "tok"), ("Connection", "close")]), on: loop).get()
            #expect(answer.status == 200)
            #expect(Self.text(answer) == "s1 GET /v1/kv/a hops=1 query=index,stale,wait token=tok")
            #expect(answer.headers.map(\.name) == ["X-Consul-Index", "X-Consul-KnownLeader", "X-Consul-LastContact"])
            #expect(answer.headers.map(\.value) == ["12", "true", "3"])
            #expect(answer.contentType == "text/plain; charset=utf-8")

            // The ACL gate runs on the server that answers: its 403 comes back as it is.
            let denied = try await dispatcher.handle(Self.request("PUT", "/v1/kv/a", headers: [("X-Consul-Token", "bad")]), on: loop).get()
            #expect(denied.status == 403)
            #expect(Self.text(denied) == "Permission denied")
            #expect(denied.headers.map(\.name) == ["X-Consul-Index"])
        }
        await server.stop()
    }

    @Test func aClientRotatesPastAServerItCannotReach() async throws {
        let alive = try await LoopbackRPCServer.start(serve: Self.fakeServer("b-alive"))
        try await Self.withClient { dispatcher, runtime, pool, loop in
            // Nothing listens on port 1; "a-dead" sorts first, so it is tried first.
            runtime.servers.replace(with: [
                KnownServer(name: "b-alive", id: "b", datacenter: "dc1", rpcAddress: alive.address),
                KnownServer(name: "a-dead", id: "a", datacenter: "dc1", rpcAddress: "127.0.0.1:1"),
            ])
            let first = try await dispatcher.handle(Self.request("PUT", "/v1/kv/x"), on: loop).get()
            #expect(Self.text(first).hasPrefix("b-alive PUT /v1/kv/x hops=1"))
            #expect(pool.counters.snapshot.connectsFailed == 1)
            // The failed server moved to the back: the next request goes straight to the live one.
            let second = try await dispatcher.handle(Self.request("GET", "/v1/kv/x"), on: loop).get()
            #expect(Self.text(second).hasPrefix("b-alive GET"))
            #expect(pool.counters.snapshot.connectsFailed == 1)

            // None reachable: a clear 500 naming the last server tried.
            runtime.servers.replace(with: [KnownServer(name: "a-dead", id: "a", datacenter: "dc1", rpcAddress: "127.0.0.1:1")])
            let failed = try await dispatcher.handle(Self.request("GET", "/v1/kv/x"), on: loop).get()
            #expect(failed.status == 500)
            #expect(Self.text(failed).hasPrefix("rpc error making call to server a-dead at 127.0.0.1:1: cannot reach 127.0.0.1:1"))
        }
        await alive.stop()
    }

    @Test func hopsAreBoundedAndAgentLocalRoutesAreNeverForwarded() async throws {
        try await Self.withClient { dispatcher, runtime, _, loop in
            runtime.servers.replace(with: [KnownServer(name: "s", id: "s", datacenter: "dc1", rpcAddress: "127.0.0.1:1")])
            let looping = try await dispatcher.handle(Self.request("GET", "/v1/kv/a", hops: RPCRelay.maxHops), on: loop).get()
            #expect(looping.status == 500)
            #expect(Self.text(looping).contains("forwarded 2 times without reaching the leader"))
            let local = try await dispatcher.handle(Self.request("GET", "/v1/agent/self", hops: 1), on: loop).get()
            #expect(local.status == 400)
            #expect(Self.text(local) == "/v1/agent/self is answered by each agent itself and is not forwarded")
            let localRead = try await dispatcher.handle(Self.request("GET", "/v1/agent/services", hops: 1), on: loop).get()
            #expect(localRead.status == 400)
            // What an agent says about itself is answered here, never by a server.
            let own = try await dispatcher.handle(Self.request("GET", "/v1/agent/services"), on: loop).get()
            #expect(own.status == 200 && Self.text(own) == "{}")
            // Other datacenters stay a seam for WAN federation.
            let remote = try await dispatcher.handle(Self.request("GET", "/v1/kv/a?dc=dc2"), on: loop).get()
            #expect(Self.text(remote) == "No path to datacenter dc2")
        }
    }

    @Test func aForwardedCallGetsTheBlockingWaitPlusAMargin() {
        var options = QueryOptions(datacenter: "dc1")
        #expect(RPCRelay.timeout(for: options, hops: 0) == .seconds(35))
        #expect(RPCRelay.timeout(for: options, hops: 1) == .seconds(30))
        options.minIndex = 5
        options.wait = .seconds(160)
        #expect(RPCRelay.timeout(for: options, hops: 1) == .seconds(30 + 160 + 10))
    }

    @Test func callFailuresMapToClearStatuses() {
        #expect(RPCRelay.failure(RPCError.tooManyInFlight(limit: 2), reaching: "x").status == 429)
        #expect(RPCRelay.failure(RPCError.requestTooLarge("body"), reaching: "x").status == 413)
        let lost = RPCRelay.failure(RPCError.connectionLost(address: "10.0.0.1:8300"), reaching: "the leader at 10.0.0.1:8300")
        #expect(lost.status == 500)
        #expect(lost.message == "rpc error making call to the leader at 10.0.0.1:8300: connection to 10.0.0.1:8300 closed before the answer came")
    }
}
