import ConsulCore
import NIOCore
import NIOPosix
import Raft
import Testing
@testable import ConsulAgent

/// Prepared queries: the state store's rules (unique names, sessions, cascade, snapshots), the
/// executor's filters, and the endpoint's parsing and answers.
@Suite struct PreparedQueryTests {
    static func query(_ id: String, name: String, service: String = "web", session: String = "", tags: [String] = [], template: Bool = false) -> PreparedQuery {
        PreparedQuery(
            id: id, name: name, session: session, token: "", service: PreparedQueryService(service: service, tags: tags), dnsTTL: "",
            template: template ? PreparedQueryTemplate(type: "name_prefix_match", regexp: "", removeEmptyTags: false) : nil,
            indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))
    }

    @Test func createUpdateDeleteAndUniqueNames() {
        var state = StateHarness()
        #expect(state.run(.setPreparedQuery(Self.query("q1", name: "web-q"), isUpdate: false)) == .done)
        #expect(state.store.preparedQuery(id: "q1")?.indexes == RaftIndexes(createIndex: 1, modifyIndex: 1))
        #expect(state.run(.setPreparedQuery(Self.query("q2", name: "WEB-Q"), isUpdate: false)) == .refused(#"A prepared query with name "WEB-Q" already exists"#))
        // Unnamed queries do not clash with one another.
        #expect(state.run(.setPreparedQuery(Self.query("q3", name: ""), isUpdate: false)) == .done)
        #expect(state.run(.setPreparedQuery(Self.query("q4", name: ""), isUpdate: false)) == .done)
        var changed = Self.query("q1", name: "web-q", service: "api")
        #expect(state.run(.setPreparedQuery(changed, isUpdate: true)) == .done)
        #expect(state.store.preparedQuery(id: "q1")?.service.service == "api")
        #expect(state.store.preparedQuery(id: "q1")?.indexes == RaftIndexes(createIndex: 1, modifyIndex: 5))
        changed.id = "missing"
        guard case .refused(let message) = state.run(.setPreparedQuery(changed, isUpdate: true)) else { Issue.record("update of a missing ID applied"); return }
        #expect(message.hasPrefix(StateStore.preparedQueryNotFound))
        #expect(state.run(.deletePreparedQuery(id: "q1")) == .done)
        #expect(state.store.preparedQuery(id: "q1") == nil)
        #expect(state.store.index(of: .preparedQueries) == 7)
        guard case .refused = state.run(.deletePreparedQuery(id: "q1")) else { Issue.record("delete of a missing ID applied"); return }
        // The name is free again.
        #expect(state.run(.setPreparedQuery(Self.query("q5", name: "web-q"), isUpdate: false)) == .done)
    }

    @Test func sessionMustExistAndItsEndDeletesTheQuery() {
        var state = StateHarness()
        #expect(state.run(.setPreparedQuery(Self.query("q1", name: "a", session: "s1"), isUpdate: false)) == .refused(#"invalid session "s1""#))
        state.registerNode("n1")
        state.run(.createSession(state.session("s1", node: "n1")))
        #expect(state.run(.setPreparedQuery(Self.query("q1", name: "a", session: "s1"), isUpdate: false)) == .done)
        #expect(state.run(.setPreparedQuery(Self.query("q2", name: "b"), isUpdate: false)) == .done)
        state.run(.destroySession(id: "s1"))
        #expect(state.store.allPreparedQueries.map(\.id) == ["q2"])
        #expect(state.store.index(of: .preparedQueries) == state.index)
    }

    @Test func lookupByIDNameAndLongestTemplatePrefix() {
        var state = StateHarness()
        state.run(.setPreparedQuery(Self.query("q1", name: "geo", template: true), isUpdate: false))
        state.run(.setPreparedQuery(Self.query("q2", name: "geo-db", template: true), isUpdate: false))
        state.run(.setPreparedQuery(Self.query("q3", name: "exact"), isUpdate: false))
        #expect(state.run(.setPreparedQuery(Self.query("q4", name: "", template: true), isUpdate: false)) == .done)
        #expect(state.run(.setPreparedQuery(Self.query("q5", name: "", template: true), isUpdate: false)) == .refused("a query template with an empty name already exists"))
        #expect(state.store.preparedQuery(resolving: "q3")?.id == "q3")
        #expect(state.store.preparedQuery(resolving: "EXACT")?.id == "q3")
        #expect(state.store.preparedQuery(resolving: "geo-db-mysql")?.id == "q2")
        #expect(state.store.preparedQuery(resolving: "geo-web")?.id == "q1")
        #expect(state.store.preparedQuery(resolving: "other")?.id == "q4")
    }

    @Test func commandsAndSnapshotsRoundTrip() throws {
        var full = Self.query("q1", name: "t", template: true)
        full.service = PreparedQueryService(
            service: "${name.suffix}", failoverNearestN: 2, failoverDatacenters: ["dc2"], onlyPassing: true, ignoreCheckIDs: ["c"],
            near: "_agent", tags: ["a", "!b"], nodeMeta: ["k": "v"], serviceMeta: ["x": "y"])
        full.dnsTTL = "10s"
        let command = StateCommand.setPreparedQuery(full, isUpdate: true)
        #expect(try StateCommand.decode(command.encoded()) == command)
        #expect(try StateCommand.decode(StateCommand.deletePreparedQuery(id: "q").encoded()) == .deletePreparedQuery(id: "q"))

        var state = StateHarness()
        state.run(.setPreparedQuery(full, isUpdate: false))
        state.run(StateHarness.kv(.set, "k", "v"))
        let bytes = state.machine.snapshotData()
        var restored = ConsulStateMachine(datacenter: "dc1")
        try restored.restore(snapshotData: bytes)
        #expect(restored.store.allPreparedQueries == state.store.allPreparedQueries)
        #expect(restored.store.index(of: .preparedQueries) == 1)
        #expect(restored.snapshotData() == bytes)
    }

    /// Version-3 snapshots (no prepared-queries table) still restore, with the table empty.
    @Test func versionThreeSnapshotsRestore() throws {
        var data: [UInt8] = []
        let sink = SnapshotSink { chunk throws(WALError) in data += chunk }
        sink.write { header in
            header.u8(3); header.u64(7); header.u32(7)
            for _ in 0..<7 { header.u64(3) }
            for _ in 0..<6 { header.u32(0) }
            header.flag(false)
        }
        try sink.finish()
        var machine = ConsulStateMachine(datacenter: "dc1")
        try machine.restore(snapshotData: data)
        #expect(machine.store.lastIndex == 7 && machine.store.index(of: .coordinates) == 3 && machine.store.index(of: .preparedQueries) == 0)
    }

    static func registered() -> StateHarness {
        var state = StateHarness()
        for (number, (tags, status)) in [(["v1", "primary"], HealthStatus.passing), (["v1"], .warning), (["v2"], .critical), (["v1", "canary"], .passing)].enumerated() {
            let node = "n\(number)"
            state.run(.register(.init(
                node: state.node(node, address: "10.0.0.\(number)"), service: state.service("web\(number)", name: "web", tags: tags),
                checks: [state.check("chk", status: status, serviceID: "web\(number)")])))
        }
        return state
    }

    @Test func executionFiltersByHealthAndTagsAndLimits() {
        let state = Self.registered()
        var random = SeededRandom(seed: 3)
        func run(_ service: PreparedQueryService, limit: Int? = nil) -> [String] {
            var query = Self.query("q", name: "q")
            query.service = service
            return PreparedQueryExecutor.execute(query, lookupName: "q", in: state.store, near: "", limit: limit, random: &random)
                .nodes.map(\.node.name).sorted()
        }
        #expect(run(PreparedQueryService(service: "web")) == ["n0", "n1", "n3"])
        #expect(run(PreparedQueryService(service: "web", onlyPassing: true)) == ["n0", "n3"])
        #expect(run(PreparedQueryService(service: "web", ignoreCheckIDs: ["chk"])) == ["n0", "n1", "n2", "n3"])
        #expect(run(PreparedQueryService(service: "web", tags: ["V1", "!canary"])) == ["n0", "n1"])
        #expect(run(PreparedQueryService(service: "web"), limit: 2).count == 2)
        #expect(run(PreparedQueryService(service: "nope")) == [])
    }

    @Test func nearSortsByEstimatedRoundTripTime() {
        var state = Self.registered()
        func at(_ x: Double) -> NetworkCoordinate { NetworkCoordinate(vec: [x] + Array(repeating: 0, count: 7), error: 1.5, adjustment: 0, height: 0.0001) }
        state.run(.updateCoordinates([
            NodeCoordinate(node: "n0", segment: "", coord: at(0.05)), NodeCoordinate(node: "n1", segment: "", coord: at(0.01)),
            NodeCoordinate(node: "n3", segment: "", coord: at(0.2)),
        ]))
        var random = SeededRandom(seed: 9)
        let query = Self.query("q", name: "q")
        for _ in 0..<5 {
            let order = PreparedQueryExecutor.execute(query, lookupName: "q", in: state.store, near: "n3", limit: nil, random: &random).nodes.map(\.node.name)
            #expect(order == ["n3", "n0", "n1"])
        }
        let limited = PreparedQueryExecutor.execute(query, lookupName: "q", in: state.store, near: "n1", limit: 1, random: &random)
        #expect(limited.nodes.map(\.node.name) == ["n1"])
    }

    @Test func templatesRenderNamePartsAndRegexpMatches() {
        var template = Self.query("t", name: "geo-", service: "${name.suffix}", tags: ["${match(1)}"], template: true)
        template.template?.regexp = "^geo-([a-z]+)-"
        let rendered = PreparedQueryExecutor.render(template, for: "geo-db-x")
        #expect(rendered.service.service == "db-x")
        #expect(rendered.service.tags == ["db"])
        #expect(PreparedQueryExecutor.render(Self.query("q", name: "n", service: "${name.full}"), for: "n").service.service == "${name.full}")
    }

    @Test func executeAndExplainAnswerConsulsShapes() throws {
        var state = Self.registered()
        var query = Self.query("q1", name: "webq", tags: ["primary"])
        query.dnsTTL = "5s"
        state.run(.setPreparedQuery(query, isUpdate: false))
        let runtime = RPCRelayTests.clientRuntime()
        func render(_ target: String) throws -> (Int, String) {
            let parsed = APIRequest.parseTarget(target)!
            let request = APIRequest(method: "GET", path: parsed.path, query: parsed.query, headers: [], body: [])
            let route = try APIRouter(agent: runtime).route(request)
            guard case .read(_, let render) = route.action else { Issue.record("not a read"); return (0, "") }
            do {
                let response = try render(state.store)
                return (response.status, String(decoding: response.body, as: UTF8.self))
            } catch {
                return (error.status, error.message)
            }
        }
        let executed = try render("/v1/query/webq/execute")
        #expect(executed.0 == 200)
        #expect(executed.1.hasPrefix(#"{"Service":"web","Nodes":[{"Node":{"ID":"","Node":"n0""#), "\(executed.1)")
        #expect(executed.1.hasSuffix(#"],"DNS":{"TTL":"5s"},"Datacenter":"dc1","Failovers":0}"#), "\(executed.1)")
        #expect(try render("/v1/query/q1/execute?limit=0").1.contains(#""Node":"n0""#))
        #expect(try render("/v1/query/nope/execute") == (404, "Query not found"))
        #expect(try render("/v1/query/nope") == (404, "Query not found"))
        let read = try render("/v1/query/q1")
        #expect(read.1 == #"[{"ID":"q1","Name":"webq","Session":"","Token":"","Template":{"Type":"","Regexp":"","RemoveEmptyTags":false},"Service":{"Service":"web","Failover":{"NearestN":0,"Datacenters":null},"OnlyPassing":false,"IgnoreCheckIDs":null,"Near":"","Tags":["primary"],"NodeMeta":null,"ServiceMeta":null},"DNS":{"TTL":"5s"},"CreateIndex":5,"ModifyIndex":5}]"#)
        #expect(try render("/v1/query").1.hasPrefix(#"[{"ID":"q1""#))
        #expect(try render("/v1/query/webq/explain").1.hasPrefix(#"{"Query":{"ID":"q1""#))
    }

    static func call(_ method: String, _ target: String, _ body: String) async throws -> (Int, String) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let dispatcher = APIDispatcher(agent: RPCRelayTests.clientRuntime(), seed: 1)
        let answer = try await AgentLocalEndpointTests.call(dispatcher, group.next(), method, target, body)
        try await group.shutdownGracefully()
        return answer
    }

    @Test func badBodiesAreRefusedWithAMessage() async throws {
        #expect(try await Self.call("POST", "/v1/query", "{nope").0 == 400)
        #expect(try await Self.call("POST", "/v1/query", "") == (400, "Request decode failed: missing request body"))
        #expect(try await Self.call("POST", "/v1/query", "[1]") == (400, "Request decode failed: body must be a JSON object"))
        #expect(try await Self.call("POST", "/v1/query", #"{"Name": "a"}"#) == (400, "Must provide a Service name to query"))
        #expect(try await Self.call("POST", "/v1/query", #"{"Service": {"Service": "web", "OnlyPassing": "yes"}}"#).0 == 400)
        #expect(try await Self.call("POST", "/v1/query", #"{"Service": {"Service": "w", "Failover": {"NearestN": -1}}}"#) == (400, "Bad NearestN '-1', must be >= 0"))
        #expect(try await Self.call("POST", "/v1/query", #"{"Service": {"Service": "w"}, "DNS": {"TTL": "soon"}}"#) == (400, "Bad DNS TTL 'soon': not a duration"))
        #expect(try await Self.call("POST", "/v1/query", #"{"Service": {"Service": "w"}, "Template": {"Type": "regex"}}"#) == (400, "Bad Template.Type 'regex'"))
        #expect(try await Self.call("POST", "/v1/query", #"{"Service": {"Service": "w"}, "Template": {"Type": "name_prefix_match", "Regexp": "("}}"#).0 == 400)
        #expect(try await Self.call("PUT", "/v1/query/q1", #"{"Service": {}}"#) == (400, "Must provide a Service name to query"))
        #expect(try await Self.call("GET", "/v1/query/q1/execute?limit=x", "") == (400, "Bad limit: x"))
        #expect(try await Self.call("PATCH", "/v1/query", "").0 == 405)
    }

    @Test func stateRefusalsMapToStatuses() {
        #expect(throws: APIError.badRequest("invalid session \"s\"")) { try PreparedQueryEndpoint.check(.refused("invalid session \"s\"")) }
        #expect(throws: APIError.notFound("Query not found: x")) { try PreparedQueryEndpoint.check(.refused("Query not found: x")) }
        #expect(throws: Never.self) { try PreparedQueryEndpoint.check(.done) }
    }

    @Test func dnsAnswersQueryNamesByExecutingTheQuery() throws {
        var state = Self.registered()
        var query = Self.query("q1", name: "webq", tags: ["v1"])
        query.dnsTTL = "5s"
        state.run(.setPreparedQuery(query, isUpdate: false))
        func ask(_ name: String, _ type: DNSType) throws -> DNSTestResponse {
            var random = SeededRandom(seed: 1)
            let resolution = DNSResolver(settings: DNSResolverSettings()).resolve(
                DNSTestQuery.packet(name, type), transport: .udp, catalog: state.store, serial: 1, random: &random)
            guard case .respond(let bytes, _) = resolution else { throw DNSParseError.noQuestion }
            return try DNSTestResponse(bytes)
        }
        // n0, n1 (warning) and n3 carry v1; n2 is critical.
        let answer = try ask("webq.query.consul", .a)
        #expect(Set(answer.answers.map(\.data)) == [.a("10.0.0.0"), .a("10.0.0.1"), .a("10.0.0.3")])
        #expect(answer.answers.allSatisfy { $0.ttl == 5 })
        #expect(try ask("q1.query.dc1.consul", .a).answers.count == 3)
        #expect(try ask("webq.query.consul", .srv).answers.count == 3)
        #expect(try ask("nope.query.consul", .a).code == DNSResponseCode.nameError.rawValue)
    }
}
