@testable import ConsulAgent
import ConsulCore
import NIOCore
import NIOPosix
import Testing

/// `/v1/agent/service|check|maintenance` through the request path of an agent without sockets:
/// Consul's JSON shapes and its error statuses and messages.
@Suite(.serialized) struct AgentLocalEndpointTests {
    static func call(_ dispatcher: APIDispatcher, _ loop: any EventLoop, _ method: String, _ target: String, _ body: String = "") async throws -> (Int, String) {
        let parsed = APIRequest.parseTarget(target)!
        let request = APIRequest(method: method, path: parsed.path, query: parsed.query, headers: [], body: Array(body.utf8))
        let response = try await dispatcher.handle(request, on: loop).get()
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    @Test func registerListUpdateAndDeregister() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let runtime = RPCRelayTests.clientRuntime()
        let dispatcher = APIDispatcher(agent: runtime, seed: 1)
        let loop = group.next()

        let registered = try await Self.call(dispatcher, loop, "PUT", "/v1/agent/service/register", """
            {"ID": "web1", "Name": "web", "Tags": ["v1"], "Port": 8080, "Meta": {"a": "b"},
             "Checks": [{"TTL": "30s"}, {"Name": "tcp", "TCP": "127.0.0.1:1", "Interval": "10s"}]}
            """)
        #expect(registered.0 == 200)
        let services = try await Self.call(dispatcher, loop, "GET", "/v1/agent/services")
        #expect(services.1 == #"{"web1":{"ID":"web1","Service":"web","Tags":["v1"],"Meta":{"a":"b"},"Port":8080,"Address":"","Weights":{"Passing":1,"Warning":1},"EnableTagOverride":false,"Datacenter":"dc1"}}"#)
        let one = try await Self.call(dispatcher, loop, "GET", "/v1/agent/service/web1")
        #expect(one.0 == 200 && one.1.contains(#""ContentHash":""#))
        #expect(try await Self.call(dispatcher, loop, "GET", "/v1/agent/service/nope").0 == 404)

        #expect(try await Self.call(dispatcher, loop, "PUT", "/v1/agent/check/pass/service:web1:1?note=up").0 == 200)
        let notTTL = try await Self.call(dispatcher, loop, "PUT", "/v1/agent/check/pass/service:web1:2")
        #expect(notTTL == (400, #"CheckID "service:web1:2" does not have associated TTL"#))
        let badStatus = try await Self.call(dispatcher, loop, "PUT", "/v1/agent/check/update/service:web1:1", #"{"Status": "fine"}"#)
        #expect(badStatus == (400, "Invalid check status: 'fine'"))
        #expect(try await Self.call(dispatcher, loop, "PUT", "/v1/agent/check/update/service:web1:1", #"{"Status": "warning", "Output": "slow"}"#).0 == 200)
        let checks = try await Self.call(dispatcher, loop, "GET", "/v1/agent/checks")
        #expect(checks.1.contains(#""service:web1:1":{"Node":"relay-client","CheckID":"service:web1:1","Name":"Service 'web' check","Status":"warning","Notes":"","Output":"slow","ServiceID":"web1","ServiceName":"web","ServiceTags":["v1"],"Type":"ttl","Interval":"","Timeout":"","ExposedPort":0,"Definition":{},"CreateIndex":0,"ModifyIndex":0}"#), "\(checks.1)")

        #expect(try await Self.call(dispatcher, loop, "PUT", "/v1/agent/maintenance") == (400, "Missing value for enable"))
        #expect(try await Self.call(dispatcher, loop, "PUT", "/v1/agent/service/maintenance/web1?enable=true").0 == 200)
        #expect(runtime.local.snapshot.checks["_service_maintenance:web1"]?.record.status == .critical)
        #expect(try await Self.call(dispatcher, loop, "PUT", "/v1/agent/service/maintenance/nope?enable=true").0 == 404)

        let missingName = try await Self.call(dispatcher, loop, "PUT", "/v1/agent/service/register", #"{"Port": 1}"#)
        #expect(missingName == (400, "Missing service name"))
        #expect(try await Self.call(dispatcher, loop, "PUT", "/v1/agent/check/deregister/nope").0 == 404)
        #expect(try await Self.call(dispatcher, loop, "PUT", "/v1/agent/service/deregister/web1").0 == 200)
        #expect(runtime.local.snapshot.checks.isEmpty)
        #expect(try await Self.call(dispatcher, loop, "GET", "/v1/agent/services").1 == "{}")
        try await group.shutdownGracefully()
    }
}
