@testable import ConsulAgent
import ConsulCore
import NIOCore
import NIOPosix
import Testing

/// Alias checks: Consul's aggregation as a pure function, the local state following its own
/// services at once, and the agent endpoints showing it.
@Suite struct AliasCheckTests {
    static func check(_ id: String, _ status: HealthStatus, service: String = "", output: String = "") -> HealthCheck {
        HealthCheck(
            node: "n1", id: id, name: id, status: status, notes: "", output: output, serviceID: service, serviceName: "",
            serviceTags: [], type: "", interval: "", timeout: "", indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
    }

    @Test func nodeAliasFollowsNodeChecksOnly() {
        let node = AliasCheck.Target(node: "n1", serviceID: "")
        #expect(AliasCheck.evaluate(node, checks: []) { true } == .init(status: .passing, output: "No checks found."))
        let checks = [Self.check("serfHealth", .passing), Self.check("web-check", .critical, service: "web")]
        #expect(AliasCheck.evaluate(node, checks: checks) { true } == .init(status: .passing, output: "All checks passing."))
        let warned = checks + [Self.check("disk", .warning, output: "80%")]
        #expect(AliasCheck.evaluate(node, checks: warned) { true } == .init(status: .warning, output: "Aliased check \"disk\" failing: 80%"))
        let failed = [Self.check("disk", .warning), Self.check("mem", .critical, output: "oom"), Self.check("z", .passing)]
        #expect(AliasCheck.evaluate(node, checks: failed) { true } == .init(status: .critical, output: "Aliased check \"mem\" failing: oom"))
    }

    @Test func serviceAliasCountsTheServiceAndItsNode() {
        let web = AliasCheck.Target(node: "n1", serviceID: "web")
        let healthy = [Self.check("serfHealth", .passing), Self.check("web-check", .passing, service: "web"), Self.check("db-check", .critical, service: "db")]
        #expect(AliasCheck.evaluate(web, checks: healthy) { true }.status == .passing)
        let nodeDown = [Self.check("serfHealth", .critical, output: "Agent not live or unreachable"), Self.check("web-check", .passing, service: "web")]
        #expect(AliasCheck.evaluate(web, checks: nodeDown) { true }.status == .critical)
        let maintenance = [Self.check("_service_maintenance:web", .critical, service: "web")]
        #expect(AliasCheck.evaluate(web, checks: maintenance) { true }.status == .critical)
        // A service without checks: passing if it exists, critical if it does not.
        #expect(AliasCheck.evaluate(web, checks: [Self.check("serfHealth", .passing)]) { true }.status == .passing)
        let missing = AliasCheck.evaluate(web, checks: [Self.check("serfHealth", .passing)]) { false }
        #expect(missing == .init(status: .critical, output: "Service web could not be found on node n1"))
    }

    @Test func definitionsParseAndNeedNoInterval() throws {
        let parser = DefinitionParser(strict: true)
        let check = try parser.check(try JSONConfigParser.parseValue(bytes: Array(#"{"name": "a", "alias_service": "web"}"#.utf8), file: "t"))
        #expect(check.kind == .alias(.init(node: "", serviceID: "web")) && check.kind.typeName == "alias")
        let api = DefinitionParser(strict: false)
        let node = try api.check(try JSONConfigParser.parseValue(bytes: Array(#"{"Name": "a", "AliasNode": "n2"}"#.utf8), file: "t"))
        #expect(node.kind == .alias(.init(node: "n2", serviceID: "")))
        #expect(throws: DefinitionError.self) {
            try parser.check(try JSONConfigParser.parseValue(bytes: Array(#"{"name": "a", "alias_node": "n2", "ttl": "5s"}"#.utf8), file: "t"))
        }
    }

    @Test func localStateFollowsItsOwnServices() throws {
        var state = LocalState(nodeName: "n1")
        let now = Timestamp(nanoseconds: 0)
        try state.addService(ServiceDefinition(name: "web", checks: [CheckDefinition(kind: .ttl(.seconds(30)))]), source: .api, now: now)
        try state.addCheck(CheckDefinition(name: "web-alias", kind: .alias(.init(node: "", serviceID: "web"))), source: .api, now: now)
        try state.addCheck(CheckDefinition(name: "db-alias", kind: .alias(.init(node: "n1", serviceID: "db"))), source: .api, now: now)
        try state.addCheck(CheckDefinition(name: "other-node", kind: .alias(.init(node: "n2", serviceID: ""))), source: .api, now: now)
        state.refreshLocalAliases(now: now)
        #expect(state.checks["web-alias"]?.record.status == .critical)
        #expect(state.checks["db-alias"]?.record.output == "Service db could not be found on node n1")
        // Aliases of other nodes are the runner's business.
        #expect(state.checks["other-node"]?.record.output == "")

        try state.updateTTL("service:web", status: .warning, output: "slow", now: now)
        let changed = state.refreshLocalAliases(now: now)
        #expect(changed)
        #expect(state.checks["web-alias"]?.record.status == .warning)
        #expect(state.checks["web-alias"]?.record.output == "Aliased check \"Service 'web' check\" failing: slow")
        try state.updateTTL("service:web", status: .passing, output: "", now: now)
        state.refreshLocalAliases(now: now)
        #expect(state.checks["web-alias"]?.record.status == .passing)
        let unchanged = !state.refreshLocalAliases(now: now)
        #expect(unchanged)
        state.removeService("web")
        state.refreshLocalAliases(now: now)
        #expect(state.checks["web-alias"]?.record.status == .critical)
    }

    /// Through `/v1/agent/*`: an alias registered over the API follows a TTL check fed over the API.
    @Test func agentEndpointsShowTheAliasFollowingItsService() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let runtime = RPCRelayTests.clientRuntime()
        let dispatcher = APIDispatcher(agent: runtime, seed: 1)
        let loop = group.next()
        let call = { (method: String, target: String, body: String) in try await AgentLocalEndpointTests.call(dispatcher, loop, method, target, body) }

        #expect(try await call("PUT", "/v1/agent/service/register", #"{"ID": "api1", "Name": "api", "Check": {"TTL": "30s"}}"#).0 == 200)
        #expect(try await call("PUT", "/v1/agent/check/register", #"{"Name": "api-alias", "AliasService": "api1"}"#).0 == 200)
        func alias() async throws -> String { try await call("GET", "/v1/agent/checks", "").1 }
        #expect(try await alias().contains(#""CheckID":"api-alias","Name":"api-alias","Status":"critical","Notes":"","Output":"Aliased check \"Service 'api' check\" failing: ","ServiceID":"","ServiceName":"","ServiceTags":[],"Type":"alias""#))
        #expect(try await call("PUT", "/v1/agent/check/pass/service:api1", "").0 == 200)
        #expect(try await alias().contains(#""CheckID":"api-alias","Name":"api-alias","Status":"passing","Notes":"","Output":"All checks passing.""#))
        #expect(try await call("PUT", "/v1/agent/service/maintenance/api1?enable=true", "").0 == 200)
        #expect(try await alias().contains(#""CheckID":"api-alias","Name":"api-alias","Status":"critical""#))
        try await group.shutdownGracefully()
    }
}
