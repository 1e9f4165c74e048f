import Testing

@testable import ConsulAgent

/// `?node-meta=` (repeatable) and `?near=` on the catalog's node and service lists, and the
/// `consul catalog` flags that send them.
@Suite struct CatalogFiltersTests {
    private func render(_ target: String, _ store: StateStore) throws -> (Int, String) {
        let parsed = try #require(APIRequest.parseTarget(target))
        let request = APIRequest(method: "GET", path: parsed.path, query: parsed.query, headers: [], body: [])
        let route = try APIRouter(agent: RPCRelayTests.clientRuntime()).route(request)
        guard case .read(_, let render) = route.action else {
            Issue.record("not a read")
            return (0, "")
        }
        let response = try render(store)
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    private func names(_ json: String, _ field: String) -> [String] {
        json.components(separatedBy: "\"\(field)\":\"").dropFirst().map { String($0.prefix { $0 != "\"" }) }
    }

    private func harness() -> StateHarness {
        var state = StateHarness()
        for (name, rack, x) in [("a", "r1", 0.3), ("b", "r2", 0.1), ("c", "r1", 0.2), ("d", "r1", .nan)] {
            var node = state.node(name)
            node.meta = ["rack": rack, "env": name == "c" ? "prod" : "dev"]
            var service = state.service("web-\(name)", name: "web", tags: [name])
            service.node = name
            state.run(.register(.init(node: node, service: service, checks: [])))
            if !x.isNaN { state.run(.updateCoordinates([NodeCoordinate(node: name, segment: "", coord: CoordinateTests.coord(x))])) }
            if name == "a" {
                var db = state.service("db", name: "db", tags: ["x"])
                db.node = name
                state.run(.register(.init(node: node, service: db, checks: [])))
            }
        }
        return state
    }

    @Test func repeatedQueryParametersAreAllKept() throws {
        let parsed = try #require(APIRequest.parseTarget("/v1/x?node-meta=a:1&tag=t&node-meta=b:2&node-meta=c"))
        let request = APIRequest(method: "GET", path: parsed.path, query: parsed.query, headers: [], body: [])
        #expect(request.values("node-meta") == ["a:1", "b:2", "c"])
        #expect(request.query["node-meta"] == "a:1" && request.values("tag") == ["t"] && request.values("none").isEmpty)
    }

    @Test func nodeMetaFiltersAndNearSorts() throws {
        let state = harness()
        #expect(names(try render("/v1/catalog/nodes", state.store).1, "Node") == ["a", "b", "c", "d"])
        #expect(names(try render("/v1/catalog/nodes?node-meta=rack:r1", state.store).1, "Node") == ["a", "c", "d"])
        #expect(names(try render("/v1/catalog/nodes?node-meta=rack:r1&node-meta=env:prod", state.store).1, "Node") == ["c"])
        // Nearest first from b (x 0.1): c (0.2), a (0.3); d has no coordinate and comes last.
        #expect(names(try render("/v1/catalog/nodes?near=b", state.store).1, "Node") == ["b", "c", "a", "d"])
        #expect(names(try render("/v1/catalog/nodes?near=unknown", state.store).1, "Node") == ["a", "b", "c", "d"])
        #expect(names(try render("/v1/catalog/service/web?near=a&node-meta=rack:r1", state.store).1, "Node") == ["a", "c", "d"])
        #expect(names(try render("/v1/catalog/service/web?tag=b&tag=b", state.store).1, "Node") == ["b"])
        #expect(try render("/v1/catalog/services?node-meta=rack:r2", state.store).1 == #"{"web":["b"]}"#)
        #expect(try render("/v1/catalog/services?node-meta=env:dev&node-meta=rack:r1", state.store).1 == #"{"db":["x"],"web":["a","d"]}"#)
        #expect(try render("/v1/catalog/services", state.store).1 == #"{"db":["x"],"web":["a","b","c","d"]}"#)
        let parsed = try #require(APIRequest.parseTarget("/v1/catalog/nodes?node-meta="))
        let request = APIRequest(method: "GET", path: parsed.path, query: parsed.query, headers: [], body: [])
        #expect(throws: APIError.badRequest("Invalid node-meta filter: empty key")) {
            try APIRouter(agent: RPCRelayTests.clientRuntime()).route(request)
        }
    }

    @Test func catalogFlagsAreAcceptedAndBadMetaIsRefused() {
        let bad = CapturedIO.run(["catalog", "nodes", "-node-meta", "rack", "-http-addr", "127.0.0.1:1"])
        #expect(bad.code == 1 && bad.err.contains("-node-meta") && bad.err.contains("key=value"))
        let servicesBad = CapturedIO.run(["catalog", "services", "-node-meta=nope", "-http-addr", "127.0.0.1:1"])
        #expect(servicesBad.code == 1 && servicesBad.err.contains("key=value"))
        // Well-formed flags parse; the unreachable agent is the only failure.
        let unreachable = CapturedIO.run(["catalog", "nodes", "-near", "_agent", "-node-meta", "rack=r1", "-detailed", "-service", "web", "-http-addr", "127.0.0.1:1"])
        #expect(unreachable.code == 1 && !unreachable.err.contains("flag provided but not defined"))
        let services = CapturedIO.run(["catalog", "services", "-node", "n1", "-tags", "-node-meta", "a=b", "-http-addr", "127.0.0.1:1"])
        #expect(services.code == 1 && !services.err.contains("flag provided but not defined"))
    }
}
