@testable import ConsulAgent
import Testing

/// The request target's path and query, as Go's net/url decodes them for Consul.
@Suite struct RequestTargetTests {
    @Test func pathAndQueryAreSplitAndDecoded() throws {
        let plain = try #require(APIRequest.parseTarget("/v1/kv/bench/read?stale"))
        #expect(plain.path == "/v1/kv/bench/read" && plain.query == ["stale": ""])

        let decoded = try #require(APIRequest.parseTarget("/v1/kv/a%20b%2Fc+d?key=x%3Dy&sp=a+b&pct=100%25&empty=&=v"))
        // '+' is a space in the query only; an empty name is kept as Go keeps it.
        #expect(decoded.path == "/v1/kv/a b/c+d")
        #expect(decoded.query == ["key": "x=y", "sp": "a b", "pct": "100%", "empty": "", "": "v"])

        let bare = try #require(APIRequest.parseTarget("/v1/status/leader"))
        #expect(bare.path == "/v1/status/leader" && bare.query.isEmpty)
        let emptyQuery = try #require(APIRequest.parseTarget("/v1/agent/self?&&"))
        #expect(emptyQuery.path == "/v1/agent/self" && emptyQuery.query.isEmpty)
        let unicode = try #require(APIRequest.parseTarget("/v1/kv/caf%C3%A9?tag=é"))
        #expect(unicode.path == "/v1/kv/café" && unicode.query == ["tag": "é"])
    }

    @Test func repeatedParametersAreAllKeptInOrder() throws {
        let request = APIRequest(method: "GET", path: "", query: try #require(APIRequest.parseTarget("/v1/catalog/nodes?node-meta=a:1&node-meta=b:2&x=1&node-meta=c:3")).query, headers: [], body: [])
        #expect(request.values("node-meta") == ["a:1", "b:2", "c:3"])
        #expect(request.query["x"] == "1")
    }

    @Test func brokenEscapesAreRefused() {
        #expect(APIRequest.parseTarget("/v1/kv/%zz") == nil)
        #expect(APIRequest.parseTarget("/v1/kv/a%2") == nil)
        #expect(APIRequest.parseTarget("/v1/kv/a?x=%") == nil)
        #expect(APIRequest.parseTarget("/v1/kv/a?%ff=1") == nil, "an escape that decodes to invalid UTF-8")
    }

    @Test func headerNamesMatchWithoutRegardToASCIICase() {
        let request = APIRequest(method: "GET", path: "/", query: [:], headers: [("x-consul-TOKEN", "t1")], body: [])
        #expect(request.header("X-Consul-Token") == "t1")
        #expect(request.header("X-Consul-Tokem") == nil)
        #expect("Content-Type".equalsIgnoringCase("content-type"))
        #expect(!"[".equalsIgnoringCase("{"), "only letters fold")
        #expect(!"ab".equalsIgnoringCase("abc"))
    }
}
