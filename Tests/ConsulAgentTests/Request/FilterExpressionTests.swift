import ConsulCore
import NIOPosix
import Testing
@testable import ConsulAgent

@Suite struct FilterExpressionTests {
    static func json(_ text: String) throws -> ConfigValue {
        try JSONConfigParser.parseValue(bytes: Array(text.utf8), file: "test")
    }

    static let instance = #"""
        {"Node":"n1","Address":"10.0.0.1","ServiceName":"web","ServiceTags":["v1","primary"],"ServicePort":8080,
         "ServiceMeta":{"version":"1.2","team name":"core"},"ServiceEnableTagOverride":false,"Empty":"",
         "Checks":[{"CheckID":"serfHealth","Status":"passing"},{"CheckID":"service:web","Status":"critical"}]}
        """#

    func holds(_ expression: String) throws -> Bool {
        try FilterExpression(parsing: expression).matches(Self.json(Self.instance))
    }

    @Test func matchingOperators() throws {
        #expect(try holds(#"ServiceName == "web""#))
        #expect(try holds("ServiceName == web"))
        #expect(try holds("ServiceName == `web`"))
        #expect(try !holds(#"ServiceName != "web""#))
        #expect(try holds("ServicePort == 8080"))
        #expect(try !holds("ServicePort == 8081"))
        #expect(try holds("ServiceEnableTagOverride == false"))
        #expect(try holds(#""primary" in ServiceTags"#))
        #expect(try holds(#""v2" not in ServiceTags"#))
        #expect(try holds("v1 in ServiceTags"))
        #expect(try holds(#"ServiceTags contains "v1""#))
        #expect(try holds(#"ServiceTags not contains "v9""#))
        #expect(try holds(#"Address contains "10.0""#))
        #expect(try holds(#""version" in ServiceMeta"#))
        #expect(try holds(#"ServiceMeta.version == "1.2""#))
        #expect(try holds(#"ServiceMeta["team name"] == core"#))
        #expect(try holds("Empty is empty"))
        #expect(try holds("ServiceTags is not empty"))
        #expect(try holds("Missing is empty"))
        #expect(try !holds(#"Missing == "x""#))
        #expect(try holds(#"Missing != "x""#))
        #expect(try holds(#"Node matches "^n[0-9]+$""#))
        #expect(try holds(#"Node not matches "^web""#))
    }

    /// A selector through a list matches when any element does; the negated forms when none does.
    @Test func selectorsThroughLists() throws {
        #expect(try holds("Checks.Status == critical"))
        #expect(try holds("Checks.Status == passing"))
        #expect(try !holds("Checks.Status == warning"))
        #expect(try holds("Checks.Status != warning"))
        #expect(try !holds("Checks.Status != critical"))
        #expect(try holds(#"Checks.CheckID contains "web""#))
    }

    @Test func booleanLogicAndPrecedence() throws {
        #expect(try holds(#"ServiceName == web and ServicePort == 8080"#))
        #expect(try !holds(#"ServiceName == web and ServicePort == 1"#))
        #expect(try holds(#"ServiceName == db or ServicePort == 8080"#))
        #expect(try holds(#"not ServiceName == db"#))
        // not binds tighter than and, and tighter than or.
        #expect(try holds(#"ServiceName == db and not ServicePort == 1 or Node == n1"#))
        #expect(try !holds(#"ServiceName == db and (not ServicePort == 1 or Node == n1)"#))
        #expect(try holds(#"((ServiceName == web))"#))
    }

    @Test func badExpressionsAreA400WithAMessage() {
        for bad in ["", "ServiceName ==", "== web", #"ServiceName = "web""#, "ServiceName is full", "(ServiceName == web",
                    #"ServiceName == "web"#, "ServiceName == web extra", #"Node matches "[""#, "Service.", #"ServiceMeta[version] == x"#,
                    String(repeating: "(", count: 100) + "A == b" + String(repeating: ")", count: 100)] {
            #expect(throws: APIError.self, "\(bad)") { _ = try FilterExpression(parsing: bad) }
        }
    }

    @Test func listAndMapAnswersAreFiltered() throws {
        let list = APIResponse(body: Array(#"[{"Node":"a","Port":1},{"Node":"b","Port":2.50}]"#.utf8))
        let filtered = ResponseFilter.apply(try FilterExpression(parsing: "Node == b"), shape: .list, to: list)
        #expect(String(decoding: filtered.body, as: UTF8.self) == #"[{"Node":"b","Port":2.50}]"#)
        let map = APIResponse(body: Array(#"{"web-1":{"Service":"web"},"db-1":{"Service":"db"}}"#.utf8))
        let kept = ResponseFilter.apply(try FilterExpression(parsing: "Service == db"), shape: .mapValues, to: map)
        #expect(String(decoding: kept.body, as: UTF8.self) == #"{"db-1":{"Service":"db"}}"#)
        let error = APIResponse(status: 500, contentType: "text/plain; charset=utf-8", body: Array("boom".utf8))
        #expect(ResponseFilter.apply(try FilterExpression(parsing: "Node == b"), shape: .list, to: error).body == error.body)
        #expect(ResponseFilter.shape(of: "/v1/health/service/web") != nil)
        #expect(ResponseFilter.shape(of: "/v1/kv/x") == nil)
    }

    /// Through the request path: a bad expression is a 400 before anything runs, a good one
    /// filters the agent's own services.
    @Test func theRequestPathFiltersAndRefusesBadExpressions() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let dispatcher = APIDispatcher(agent: RPCRelayTests.clientRuntime(), seed: 1)
        let loop = group.next()
        for id in ["a", "b"] {
            let body = #"{"ID": "\#(id)", "Name": "svc-\#(id)", "Port": 1}"#
            #expect(try await AgentLocalEndpointTests.call(dispatcher, loop, "PUT", "/v1/agent/service/register", body).0 == 200)
        }
        let kept = try await AgentLocalEndpointTests.call(dispatcher, loop, "GET", "/v1/agent/services?filter=Service%20%3D%3D%20svc-b")
        #expect(kept.0 == 200 && kept.1.hasPrefix(#"{"b":"#) && !kept.1.contains(#""a":"#), "\(kept)")
        let bad = try await AgentLocalEndpointTests.call(dispatcher, loop, "GET", "/v1/agent/services?filter=Service%20%3D")
        #expect(bad.0 == 400 && bad.1.hasPrefix("Failed to create boolean expression evaluator"), "\(bad)")
        try await group.shutdownGracefully()
    }
}
