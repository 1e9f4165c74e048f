import ConsulCore
import NIOCore
import NIOPosix
import Testing
@testable import ConsulAgent

/// `/v1/operator/usage`: the counts from the state store, Consul's JSON shape, and bad requests
/// refused through the request path.
@Suite struct OperatorUsageTests {
    @Test func countsServicesInstancesBillableInstancesAndNodes() {
        var state = StateHarness()
        #expect(state.store.serviceUsage() == ServiceUsage())
        state.run(.register(.init(node: state.node("s1"), service: state.service("consul", name: "consul"), checks: [])))
        state.run(.register(.init(node: state.node("n1"), service: state.service("web1", name: "web"), checks: [])))
        state.run(.register(.init(node: state.node("n2", address: "10.0.0.2"), service: state.service("web2", name: "Web"), checks: [])))
        state.run(.register(.init(node: state.node("n2", address: "10.0.0.2"), service: state.service("db", name: "db"), checks: [])))
        state.registerNode("bare")
        let usage = state.store.serviceUsage()
        // Service names are case-insensitive ("web" and "Web" are one service); the servers'
        // `consul` instances are not billable; no instance is a mesh one in this edition.
        #expect(usage.services == 3)
        #expect(usage.serviceInstances == 4)
        #expect(usage.billableServiceInstances == 3)
        #expect(usage.nodes == 4)
        #expect(usage.connectServiceInstances == [0, 0, 0, 0, 0])

        state.run(.deregister(node: "n2", serviceID: "db", checkID: nil))
        #expect(state.store.serviceUsage().services == 2)
        #expect(state.store.serviceUsage().serviceInstances == 3)
    }

    @Test func rendersConsulsShapeWithTheQueryMetaInTheBody() {
        var usage = ServiceUsage()
        usage.services = 2
        usage.serviceInstances = 3
        usage.billableServiceInstances = 2
        usage.nodes = 1
        let meta = OperatorUsageEndpoint.QueryMeta(index: 13, lastContact: .milliseconds(2), knownLeader: true, consistencyLevel: "stale")
        let body = String(decoding: OperatorUsageEndpoint.render([("dc1", usage)], meta: meta).body, as: UTF8.self)
        #expect(body == #"{"Usage":{"dc1":{"Services":2,"ServiceInstances":3,"ConnectServiceInstances":{"connect-native":0,"connect-proxy":0,"ingress-gateway":0,"mesh-gateway":0,"terminating-gateway":0},"BillableServiceInstances":2,"Nodes":1}},"Index":13,"LastContact":2000000,"KnownLeader":true,"ConsistencyLevel":"stale","NotModified":false,"Backend":0,"ResultsFilteredByACLs":false}"#)
    }

    @Test func badRequestsAreRefusedThroughTheRequestPath() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let dispatcher = APIDispatcher(agent: RPCRelayTests.clientRuntime(), seed: 1)
        func call(_ method: String, _ target: String) async throws -> (Int, String) {
            try await AgentLocalEndpointTests.call(dispatcher, group.next(), method, target)
        }
        #expect(try await call("GET", "/v1/operator/usage?index=abc") == (400, "Invalid index"))
        #expect(try await call("GET", "/v1/operator/usage?index=-1") == (400, "Invalid index"))
        #expect(try await call("GET", "/v1/operator/usage?index=5&wait=soon") == (400, "Invalid wait time"))
        #expect(try await call("GET", "/v1/operator/usage?stale&consistent").0 == 400)
        #expect(try await call("PUT", "/v1/operator/usage").0 == 405)
        // A good request from a client goes on to a server; with none known, the answer says so.
        #expect(try await call("GET", "/v1/operator/usage?global") == (500, "No known Consul servers"))
        try await group.shutdownGracefully()
    }
}
