@testable import ConsulAgent
import NIOPosix
import Testing

/// `/v1/agent/health/service/id|name/*`: the local view of a service's health, with the status
/// code carrying the aggregate; and `/v1/agent/token/*` while ACLs are off.
@Suite(.serialized) struct AgentHealthEndpointTests {
    @Test func aggregateStatusAndCodes() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let runtime = RPCRelayTests.clientRuntime()
        let dispatcher = APIDispatcher(agent: runtime, seed: 1)
        let loop = group.next()
        func call(_ method: String, _ target: String, _ body: String = "") async throws -> (Int, String) {
            try await AgentLocalEndpointTests.call(dispatcher, loop, method, target, body)
        }
        for id in ["web1", "web2"] {
            #expect(try await call("PUT", "/v1/agent/service/register", #"{"ID": "\#(id)", "Name": "web", "Port": 80, "Check": {"TTL": "60s"}}"#).0 == 200)
            #expect(try await call("PUT", "/v1/agent/check/pass/service:\(id)").0 == 200)
        }
        let byID = try await call("GET", "/v1/agent/health/service/id/web1")
        #expect(byID.0 == 200)
        #expect(byID.1.hasPrefix(#"{"AggregatedStatus":"passing","Service":{"ID":"web1","Service":"web""#), "\(byID.1)")
        #expect(byID.1.contains(#""Checks":[{"Node":"relay-client","CheckID":"service:web1""#))
        #expect(try await call("GET", "/v1/agent/health/service/id/web1?format=text") == (200, "passing"))

        #expect(try await call("PUT", "/v1/agent/check/warn/service:web2").0 == 200)
        #expect(try await call("GET", "/v1/agent/health/service/id/web2?format=text") == (429, "warning"))
        let byName = try await call("GET", "/v1/agent/health/service/name/web")
        #expect(byName.0 == 429)
        #expect(byName.1.hasPrefix(#"[{"AggregatedStatus":"passing""#) && byName.1.contains(#"{"AggregatedStatus":"warning""#))

        #expect(try await call("PUT", "/v1/agent/check/fail/service:web1").0 == 200)
        #expect(try await call("GET", "/v1/agent/health/service/name/web?format=text") == (503, "critical"))
        #expect(try await call("PUT", "/v1/agent/service/maintenance/web2?enable=true").0 == 200)
        #expect(try await call("GET", "/v1/agent/health/service/id/web2?format=text") == (503, "maintenance"))

        #expect(try await call("GET", "/v1/agent/health/service/id/nope") == (404, "ServiceId nope not found"))
        #expect(try await call("GET", "/v1/agent/health/service/name/nope") == (404, "ServiceName nope Not Found"))
        #expect(try await call("GET", "/v1/agent/health/service/bogus/x").0 == 404)
        #expect(try await call("PUT", "/v1/agent/health/service/id/web1").0 == 405)
        #expect(try await call("PUT", "/v1/agent/token/default", #"{"Token": "x"}"#) == (401, "ACL support disabled"))
        try await group.shutdownGracefully()
    }
}
