import Foundation
import Testing

/// A server s1 and a client c1: an alias check on the client follows a node it only knows
/// through the catalog (blocking queries through the client's request path to the server), and
/// API registrations survive the client's restart from `services/` and `checks/` in its data dir.
/// Addresses 127.0.0.145-146 belong to this suite.
@Suite(.serialized) struct LocalAgentEndToEndTests {
    static let s1 = "127.0.0.145"
    static let c1 = "127.0.0.146"

    static func put(_ host: String, _ path: String, _ body: String) throws -> (status: Int, headers: [String: String], body: String) {
        try AgentProcessHarness.http("PUT", host: host, port: 8500, path: path, body: Array(body.utf8))
    }

    /// md5 hex, as Consul names the files (computed with the system's tool, not our code).
    static func md5(_ text: String) throws -> String {
        let file = NSTemporaryDirectory() + "consul-md5-" + UUID().uuidString
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let output = try AgentProcessHarness.run("/usr/bin/md5sum", [file]).1
        return String(output.prefix(32))
    }

    @Test func aliasFollowsARemoteNodeAndRegistrationsSurviveRestart() throws {
        let cluster = try LocalCluster()
        let join = ["-retry-join", Self.s1, "-retry-interval", "200ms"]
        try cluster.start("s1", host: Self.s1, server: true, extra: ["-bootstrap-expect", "1"])
        try cluster.start("c1", host: Self.c1, server: false, extra: join)
        let ready = AgentProcessHarness.eventually(30) { (cluster.get("c1", "/v1/catalog/nodes")?.body ?? "").contains(#""Node":"c1""#) }
        #expect(ready, "cluster not ready:\n\(cluster.logs)")
        guard ready else { return }

        // A node known only to the catalog, with a failing check.
        let external = #"{"Node": "ext1", "Address": "10.1.1.1", "Check": {"CheckID": "ext-health", "Name": "ext health", "Status": "critical", "Output": "down"}}"#
        #expect(try Self.put(Self.s1, "/v1/catalog/register", external).status == 200)

        // On the client: a service with a TTL check, an alias of ext1 and an alias of the service.
        #expect(try Self.put(Self.c1, "/v1/agent/service/register", #"{"ID": "web1", "Name": "web", "Port": 80, "Check": {"TTL": "1h"}}"#).status == 200)
        #expect(try Self.put(Self.c1, "/v1/agent/check/register", #"{"Name": "ext-alias", "AliasNode": "ext1"}"#).status == 200)
        #expect(try Self.put(Self.c1, "/v1/agent/check/register", #"{"Name": "web-alias", "AliasService": "web1"}"#).status == 200)

        func checks() -> String { cluster.get("c1", "/v1/agent/checks")?.body ?? "" }
        let failing = AgentProcessHarness.eventually(15) { checks().contains(#""CheckID":"ext-alias","Name":"ext-alias","Status":"critical","Notes":"","Output":"Aliased check \"ext health\" failing: down""#) }
        #expect(failing, "\(checks())\n\(cluster.logs)")
        #expect(try Self.put(Self.s1, "/v1/catalog/register", external.replacingOccurrences(of: #""Status": "critical""#, with: #""Status": "passing""#)).status == 200)
        let passing = AgentProcessHarness.eventually(15) { checks().contains(#""CheckID":"ext-alias","Name":"ext-alias","Status":"passing","Notes":"","Output":"All checks passing.""#) }
        #expect(passing, "\(checks())")
        // The local alias follows the TTL check at once, and reaches the catalog.
        #expect(try Self.put(Self.c1, "/v1/agent/check/pass/service:web1", "").status == 200)
        #expect(checks().contains(#""CheckID":"web-alias","Name":"web-alias","Status":"passing""#), "\(checks())")
        #expect(AgentProcessHarness.eventually(10) { (cluster.get("s1", "/v1/health/checks/web") ?? (0, "")).body.contains(#""Status":"passing""#) })

        // Consul's layout in the data dir.
        let dataDir = cluster.root + "/c1"
        let serviceFile = dataDir + "/services/" + (try Self.md5("web1"))
        let aliasFile = dataDir + "/checks/" + (try Self.md5("ext-alias"))
        #expect(AgentProcessHarness.eventually(5) { FileManager.default.fileExists(atPath: serviceFile) && FileManager.default.fileExists(atPath: aliasFile) })
        let persisted = (try? String(contentsOfFile: aliasFile, encoding: .utf8)) ?? ""
        #expect(persisted.contains(#""AliasNode":"ext1""#), "\(persisted)")

        // Restart: everything registered over the API is back.
        _ = cluster.nodes["c1"]?.process?.stop(signal: SIGTERM)
        try cluster.start("c1", host: Self.c1, server: false, extra: join)
        let restored = AgentProcessHarness.eventually(20) { (cluster.get("c1", "/v1/agent/services")?.body ?? "").contains(#""web1":{"ID":"web1","Service":"web""#) }
        #expect(restored, "\(cluster.logs)")
        #expect(checks().contains(#""CheckID":"ext-alias""#) && checks().contains(#""CheckID":"web-alias""#) && checks().contains(#""CheckID":"service:web1""#), "\(checks())")
        #expect(AgentProcessHarness.eventually(15) { checks().contains(#""CheckID":"ext-alias","Name":"ext-alias","Status":"passing""#) }, "\(checks())")

        // Deregistering removes the files.
        #expect(try Self.put(Self.c1, "/v1/agent/service/deregister/web1", "").status == 200)
        #expect(AgentProcessHarness.eventually(5) { !FileManager.default.fileExists(atPath: serviceFile) }, "service file left behind")
        #expect(!FileManager.default.fileExists(atPath: dataDir + "/checks/" + (try Self.md5("service:web1"))))
    }
}
