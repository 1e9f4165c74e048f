@testable import ConsulAgent
import Foundation
import Testing

/// `/v1/txn` with node, service, check and session operations through the request path: the JSON
/// Consul's clients send and read, its statuses (200, 409 with `OpIndex`, 400), and the read-only
/// fast path. The last test runs a real single-server agent in this process on 127.0.0.191 (the
/// address range this suite may use), so writes go through Raft.
@Suite(.serialized) struct TxnHTTPTests {
    // MARK: - Without sockets

    /// Routes a `PUT /v1/txn` and, when it is a read, renders it against `store`.
    private func renderRead(_ body: String, _ store: StateStore, query: String = "") throws(APIError) -> (Int, String) {
        let parsed = APIRequest.parseTarget("/v1/txn" + query)!
        let request = APIRequest(method: "PUT", path: parsed.path, query: parsed.query, headers: [], body: Array(body.utf8))
        let route = try APIRouter(agent: RPCRelayTests.clientRuntime()).route(request)
        guard case .read(_, let render) = route.action else {
            Issue.record("not a read: \(route.action)")
            return (0, "")
        }
        let response = try render(store)
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    @Test func resultsAreWrittenInConsulsShape() {
        var state = StateHarness()
        let outcome = TxnTests.outcome(state.run(.txn([
            TxnTests.op(.set, "app/config", "on"),
            .node(.set, CatalogTxnTests.node("web-node"), index: 0),
            .service(.set, node: "web-node", CatalogTxnTests.service("web1"), index: 0),
            .check(.set, CatalogTxnTests.check("web-check", node: "web-node", serviceID: "web1"), index: 0),
            .service(.delete, node: "web-node", CatalogTxnTests.service("gone"), index: 0),
        ])))
        let response = TxnEndpoint.response(outcome)
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self) == """
            {"Results":[\
            {"KV":{"LockIndex":0,"Key":"app/config","Flags":0,"Value":null,"CreateIndex":1,"ModifyIndex":1}},\
            {"Node":{"ID":"","Node":"web-node","Address":"10.0.0.1","Datacenter":"dc1","TaggedAddresses":{},"Meta":{},"CreateIndex":1,"ModifyIndex":1}},\
            {"Service":{"ID":"web1","Service":"web","Tags":["v1"],"Address":"","Meta":{},"Port":80,"Weights":{"Passing":1,"Warning":1},"EnableTagOverride":false,"CreateIndex":1,"ModifyIndex":1}},\
            {"Check":{"Node":"web-node","CheckID":"web-check","Name":"web-check","Status":"passing","Notes":"","Output":"","ServiceID":"web1","ServiceName":"web","ServiceTags":["v1"],"Type":"","Interval":"","Timeout":"","CreateIndex":1,"ModifyIndex":1}}\
            ],"Errors":null}
            """)
    }

    @Test func readOnlyTransactionsAreReadsAnsweredFromTheStore() throws {
        let state = CatalogTxnTests.registered()
        let body = """
            [{"Node": {"Verb": "get", "Node": {"Node": "n1"}}},
             {"Service": {"Verb": "get", "Node": "n1", "Service": {"ID": "web1"}}},
             {"Check": {"Verb": "get", "Check": {"Node": "n1", "CheckID": "alive"}}},
             {"KV": {"Verb": "get-or-empty", "Key": "none"}}]
            """
        let (status, json) = try renderRead(body, state.store, query: "?stale")
        #expect(status == 200)
        #expect(json.hasPrefix(#"{"Results":[{"Node":{"ID":"","Node":"n1""#), "\(json)")
        #expect(json.contains(#"{"Service":{"ID":"web1","Service":"web""#) && json.contains(#"{"Check":{"Node":"n1","CheckID":"alive""#))
        #expect(json.hasSuffix(#"{"KV":{"LockIndex":0,"Key":"none","Flags":0,"Value":null,"CreateIndex":0,"ModifyIndex":0}}],"Errors":null}"#))

        let missing = try renderRead(#"[{"Service": {"Verb": "get", "Node": "n1", "Service": {"ID": "nope"}}}]"#, state.store)
        #expect(missing == (409, #"{"Results":null,"Errors":[{"OpIndex":0,"What":"service \"nope\" on node \"n1\" doesn't exist"}]}"#))
    }

    @Test func writesNeedOperatorAccessUntilPerOperationACLs() throws {
        func resource(_ body: String) throws -> ACLResource {
            let request = APIRequest(method: "PUT", path: "/v1/txn", query: [:], headers: [], body: Array(body.utf8))
            return try APIRouter(agent: RPCRelayTests.clientRuntime()).route(request).resource
        }
        #expect(try resource(#"[{"KV": {"Verb": "set", "Key": "app/a"}}, {"KV": {"Verb": "get", "Key": "app/b"}}]"#) == .keyPrefix("app/"))
        #expect(try resource(#"[{"KV": {"Verb": "set", "Key": "app/a"}}, {"Node": {"Verb": "get", "Node": {"Node": "n1"}}}]"#) == .operator)
    }

    @Test func operationsConsulRefusesBeforeApplyingAreConflictsWithTheirPosition() async throws {
        let answer = try await TxnTests.call("PUT", """
            [{"Node": {"Verb": "frob", "Node": {"Node": "n1"}}},
             {"Node": {"Verb": "set", "Node": {"Address": "10.0.0.1"}}},
             {"Node": {"Verb": "set", "Node": {"Node": "n1", "ID": "not-a-uuid"}}},
             {"Service": {"Verb": "set", "Node": "n1", "Service": {"ID": "web1"}}},
             {"Service": {"Verb": "bad", "Node": "n1", "Service": {"Service": "web"}}},
             {"Check": {"Verb": "set", "Check": {"Node": "n1", "CheckID": "c", "Status": "fine"}}},
             {"Check": {"Verb": "nope", "Check": {"Node": "n1", "CheckID": "c"}}},
             {"Session": {"Verb": "renew", "Session": {"ID": "s"}}},
             {"KV": {"Verb": "get", "Key": "a"}}]
            """)
        #expect(answer.0 == 409)
        #expect(answer.1 == """
            {"Results":null,"Errors":[\
            {"OpIndex":0,"What":"unknown node operation: frob"},\
            {"OpIndex":1,"What":"Must provide node"},\
            {"OpIndex":2,"What":"Bad node ID: uuid string is wrong length"},\
            {"OpIndex":3,"What":"Must provide service name with ID"},\
            {"OpIndex":4,"What":"unknown service operation: bad"},\
            {"OpIndex":5,"What":"Invalid check status: \\"fine\\""},\
            {"OpIndex":6,"What":"unknown check operation: nope"},\
            {"OpIndex":7,"What":"unknown session operation: renew"}]}
            """)
    }

    @Test func malformedOperationsAreBadRequests() async throws {
        let notObject = try await TxnTests.call("PUT", #"[{"Node": {"Verb": "set", "Node": "n1"}}]"#)
        #expect(notObject.0 == 400 && notObject.1.contains("Node must be an object"), "\(notObject)")
        let badPort = try await TxnTests.call("PUT", #"[{"Service": {"Verb": "set", "Node": "n1", "Service": {"Service": "web", "Port": 70000}}}]"#)
        #expect(badPort.0 == 400 && badPort.1.contains("port 70000 out of range"), "\(badPort)")
        let badTags = try await TxnTests.call("PUT", #"[{"Service": {"Verb": "set", "Node": "n1", "Service": {"Service": "web", "Tags": "a"}}}]"#)
        #expect(badTags.0 == 400)
        let badIndex = try await TxnTests.call("PUT", #"[{"Check": {"Verb": "cas", "Check": {"Node": "n1", "CheckID": "c", "ModifyIndex": -1}}}]"#)
        #expect(badIndex.0 == 400 && badIndex.1.contains("ModifyIndex"), "\(badIndex)")
        let many = "[" + Array(repeating: #"{"Node": {"Verb": "get", "Node": {"Node": "n"}}}"#, count: 129).joined(separator: ",") + "]"
        #expect(try await TxnTests.call("PUT", many) == (413, "Transaction contains too many operations (129 > 128)"))
    }

    @Test func parsingFillsConsulsDefaults() throws {
        let parsed = try TxnEndpoint.parse(Array("""
            [{"Node": {"Verb": "cas", "Node": {"Node": "n1", "Address": "10.0.0.9", "Meta": {"rack": "r1"}, "ModifyIndex": 7}}},
             {"Service": {"Verb": "set", "Node": "n1", "Service": {"Service": "web", "Port": 8080, "Weights": {"Passing": 3}}}},
             {"Check": {"Verb": "set", "Check": {"Node": "n1", "Name": "ping", "Definition": {"Interval": "10s", "Timeout": "1s"}}}},
             {"Session": {"Verb": "delete", "Session": {"ID": "s1"}}}]
            """.utf8), datacenter: "dc7")
        #expect(parsed.errors.isEmpty)
        guard parsed.operations.count == 4,
              case .node(.cas, let node, index: 7) = parsed.operations[0],
              case .service(.set, node: "n1", let service, index: 0) = parsed.operations[1],
              case .check(.set, let check, index: 0) = parsed.operations[2]
        else { Issue.record("\(parsed.operations)"); return }
        #expect(node.datacenter == "dc7" && node.meta == ["rack": "r1"] && node.address == "10.0.0.9")
        #expect(service.id == "web" && service.port == 8080 && service.weights == ServiceWeights(passing: 3, warning: 1))
        #expect(check.id == "ping" && check.status == .critical && check.interval == "10s" && check.timeout == "1s")
        #expect(parsed.operations[3] == .destroySession(id: "s1"))
    }

    // MARK: - A real server

    static let host = "127.0.0.191"
    static let httpPort = 18_500

    static func http(_ method: String, _ path: String, body: String = "") async throws -> (status: Int, headers: [String: String], body: String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result {
                    try AgentProcessHarness.http(method, host: host, port: httpPort, path: path, body: Array(body.utf8))
                })
            }.start()
        }
    }

    @Test func aMixedTransactionGoesThroughRaftAtomically() async throws {
        let root = NSTemporaryDirectory() + "consul-txn-" + UUID().uuidString.lowercased()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var config = ForwardingClusterTests.config(node: "txn-server", host: Self.host, server: true, bootstrap: true, dataDir: root)
        config.ports.http = Self.httpPort
        let agent = try await Agent.start(config: config, logger: LoopbackRPCServer.quietLogger)
        do {
            guard await eventually(15, { agent.runtime.clusterView.isLeader }) else { throw HarnessError("the server did not elect itself") }

            let applied = try await Self.http("PUT", "/v1/txn", body: """
                [{"KV": {"Verb": "set", "Key": "app/config", "Value": "b24="}},
                 {"Node": {"Verb": "set", "Node": {"Node": "web-node", "Address": "10.1.0.1", "Meta": {"rack": "r1"}}}},
                 {"Service": {"Verb": "set", "Node": "web-node", "Service": {"ID": "web1", "Service": "web", "Port": 8080}}},
                 {"Check": {"Verb": "set", "Check": {"Node": "web-node", "CheckID": "web-check", "Name": "web", "Status": "passing", "ServiceID": "web1"}}},
                 {"KV": {"Verb": "get", "Key": "app/config"}}]
                """)
            #expect(applied.status == 200, "\(applied)")
            #expect(applied.body.hasPrefix(#"{"Results":[{"KV":{"LockIndex":0,"Key":"app/config","Flags":0,"Value":null,"#), "\(applied.body)")
            #expect(applied.body.contains(#"{"Node":{"ID":"","Node":"web-node","Address":"10.1.0.1","Datacenter":"dc1","TaggedAddresses":{},"Meta":{"rack":"r1"},"#))
            #expect(applied.body.contains(#"{"Service":{"ID":"web1","Service":"web","Tags":[],"#))
            #expect(applied.body.contains(#"{"Check":{"Node":"web-node","CheckID":"web-check","Name":"web","Status":"passing","#))
            #expect(applied.body.contains(#""Value":"b24=","#) && applied.body.hasSuffix(#"],"Errors":null}"#))
            let health = try await Self.http("GET", "/v1/health/service/web?passing")
            #expect(health.body.contains(#""Node":"web-node""#) && health.body.contains(#""CheckID":"web-check""#), "\(health)")

            // One stale CAS: 409, and the KV set before it is not applied either.
            let failed = try await Self.http("PUT", "/v1/txn", body: """
                [{"KV": {"Verb": "set", "Key": "app/other", "Value": "eA=="}},
                 {"Service": {"Verb": "cas", "Node": "web-node", "Service": {"ID": "web1", "Service": "web", "ModifyIndex": 1}}}]
                """)
            #expect(failed.status == 409)
            #expect(failed.body == #"{"Results":null,"Errors":[{"OpIndex":1,"What":"failed to set service \"web1\" on node \"web-node\", index is stale"}]}"#)
            #expect(try await Self.http("GET", "/v1/kv/app/other").status == 404)

            // Reads only: answered without Raft, with the read headers, ?stale honoured.
            let read = try await Self.http("PUT", "/v1/txn?stale", body: #"[{"Node": {"Verb": "get", "Node": {"Node": "web-node"}}}]"#)
            #expect(read.status == 200 && read.body.hasPrefix(#"{"Results":[{"Node":{"ID":"","Node":"web-node""#), "\(read)")
            #expect(read.headers["x-consul-knownleader"] == "true" && read.headers["x-consul-lastcontact"] != nil)

            // Deleting the node takes its service and checks with it.
            let deleted = try await Self.http("PUT", "/v1/txn", body: #"[{"Node": {"Verb": "delete", "Node": {"Node": "web-node"}}}]"#)
            #expect(deleted.status == 200 && deleted.body == #"{"Results":[],"Errors":null}"#, "\(deleted)")
            #expect(try await Self.http("GET", "/v1/catalog/service/web").body == "[]")
            #expect(try await Self.http("GET", "/v1/catalog/node/web-node").status == 404)

            // A session deleted in a transaction releases its lock, and the lock-delay holds the
            // key back from the next transaction's lock, as Consul's pre-apply check does.
            // (A session needs its node in the catalog: the leader registers itself shortly.)
            guard await eventually(15, { agent.runtime.watch.current.node(named: "txn-server") != nil }) else {
                throw HarnessError("the server never registered itself in the catalog")
            }
            let created = try await Self.http("PUT", "/v1/session/create", body: #"{"Node": "txn-server", "NodeChecks": []}"#)
            let session = String(created.body.split(separator: "\"")[3])
            let locked = try await Self.http("PUT", "/v1/txn", body: #"[{"KV": {"Verb": "lock", "Key": "app/lock", "Session": "\#(session)"}}]"#)
            #expect(locked.status == 200, "\(created) \(locked)")
            let ended = try await Self.http("PUT", "/v1/txn", body: #"[{"Session": {"Verb": "delete", "Session": {"ID": "\#(session)"}}}]"#)
            #expect(ended.status == 200 && ended.body == #"{"Results":[],"Errors":null}"#, "\(ended)")
            #expect(try await Self.http("GET", "/v1/session/info/\(session)").body == "null")
            let second = try await Self.http("PUT", "/v1/session/create", body: #"{"Node": "txn-server", "NodeChecks": []}"#)
            let next = String(second.body.split(separator: "\"")[3])
            let delayed = try await Self.http("PUT", "/v1/txn", body: #"[{"KV": {"Verb": "get-or-empty", "Key": "x"}}, {"KV": {"Verb": "lock", "Key": "app/lock", "Session": "\#(next)"}}]"#)
            #expect(delayed.status == 409 && delayed.body == #"{"Results":null,"Errors":[{"OpIndex":1,"What":"failed to lock key \"app/lock\" due to lock delay"}]}"#, "\(delayed)")

            let badJSON = try await Self.http("PUT", "/v1/txn", body: "[{")
            #expect(badJSON.status == 400 && badJSON.body.hasPrefix("Failed to parse body"))
        } catch {
            Issue.record("\(error)")
        }
        await agent.shutdown()
    }
}
