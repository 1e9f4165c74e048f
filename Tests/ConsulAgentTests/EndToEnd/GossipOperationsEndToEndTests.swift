import Foundation
import Testing

/// What operators do over the LAN gossip pool of real agents: rotate the gossip key with
/// `consul keyring` (127.0.0.161-162) and fire user events with `consul event` (127.0.0.163-164).
@Suite(.serialized) struct GossipOperationsEndToEndTests {
    static func keyringFile(_ cluster: LocalCluster, _ name: String) -> String {
        (try? String(contentsOfFile: cluster.nodes[name]!.dataDir + "/serf/local.keyring", encoding: .utf8)) ?? ""
    }

    @Test func keyRotationAcrossTwoServers() throws {
        let cluster = try LocalCluster()
        let oldKey = try AgentProcessHarness.cli(["keygen"]).1.trimmingCharacters(in: .whitespacesAndNewlines)
        let newKey = try AgentProcessHarness.cli(["keygen"]).1.trimmingCharacters(in: .whitespacesAndNewlines)
        let hosts = ["k1": "127.0.0.161", "k2": "127.0.0.162"]
        for (name, host) in hosts.sorted(by: { $0.key < $1.key }) {
            try cluster.start(name, host: host, server: true, extra: [
                "-bootstrap-expect", "2", "-encrypt", oldKey, "-retry-join", "127.0.0.161", "-retry-interval", "200ms",
            ])
        }
        let formed = AgentProcessHarness.eventually(30) { cluster.leader(asking: "k1") != nil && cluster.leader(asking: "k2") != nil }
        #expect(formed, "no leader:\n\(cluster.logs)")
        guard formed else { return }

        let listed = try AgentProcessHarness.cli(["keyring", "-list"] + cluster.addr("k1"))
        #expect(listed.0 == 0)
        #expect(listed.1 == "==> Gathering installed encryption keys...\n\ndc1 (LAN):\n  \(oldKey) [2/2]\n", "\(listed)")

        let installed = try AgentProcessHarness.cli(["keyring", "-install", newKey] + cluster.addr("k1"))
        #expect(installed.0 == 0 && installed.1 == "==> Installing new gossip encryption key...\n", "\(installed)")
        #expect(Self.keyringFile(cluster, "k2").contains(newKey))
        let both = try AgentProcessHarness.cli(["keyring", "-list"] + cluster.addr("k2")).1
        #expect(both.contains("  \(oldKey) [2/2]") && both.contains("  \(newKey) [2/2]"), "\(both)")

        #expect(try AgentProcessHarness.cli(["keyring", "-use", newKey] + cluster.addr("k2")).0 == 0)
        // The primary key may not be removed; every member says so.
        let refused = try AgentProcessHarness.cli(["keyring", "-remove", newKey] + cluster.addr("k1"))
        #expect(refused.0 == 1 && refused.2.contains("Removing the primary key is not allowed"), "\(refused)")
        let removed = try AgentProcessHarness.cli(["keyring", "-remove", oldKey] + cluster.addr("k1"))
        #expect(removed.0 == 0 && removed.1 == "==> Removing gossip encryption key...\n", "\(removed)")
        for name in ["k1", "k2"] {
            let file = Self.keyringFile(cluster, name)
            #expect(file.contains(newKey) && !file.contains(oldKey), "\(name): \(file)")
        }
        let primary = try AgentProcessHarness.cli(["keyring", "-list-primary"] + cluster.addr("k1")).1
        #expect(primary.hasSuffix("dc1 (LAN):\n  \(newKey) [2/2]\n"), "\(primary)")

        // Both still gossip under the new key alone: a KV write on k2 reaches the leader and back.
        #expect(try AgentProcessHarness.cli(["kv", "put"] + cluster.addr("k2") + ["rotated", "yes"]).0 == 0)
        let alive = try AgentProcessHarness.cli(["members"] + cluster.addr("k1")).1
        #expect(alive.components(separatedBy: "  alive  ").count == 3, "\(alive)")

        let badKey = try AgentProcessHarness.http("POST", host: "127.0.0.161", port: 8500, path: "/v1/operator/keyring", body: Array(#"{"Key": "nope"}"#.utf8))
        #expect(badKey.status == 400)
    }

    @Test func eventsFiredOnOneAgentAreListedOnTheOther() throws {
        let cluster = try LocalCluster()
        try cluster.start("e1", host: "127.0.0.163", server: true, extra: ["-bootstrap"])
        try cluster.start("e2", host: "127.0.0.164", server: false, extra: [
            "-retry-join", "127.0.0.163", "-retry-interval", "200ms",
            "-hcl", #"service { name = "web" id = "web1" tags = ["blue"] port = 80 }"#,
        ])
        let joined = AgentProcessHarness.eventually(30) {
            ((try? AgentProcessHarness.cli(["members"] + cluster.addr("e1")).1) ?? "").components(separatedBy: "  alive  ").count == 3
        }
        #expect(joined, "not joined:\n\(cluster.logs)")
        guard joined else { return }

        let fired = try AgentProcessHarness.cli(["event", "-name", "deploy"] + cluster.addr("e1") + ["v2"])
        #expect(fired.0 == 0)
        let id = fired.1.replacingOccurrences(of: "Event ID: ", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(fired.1.hasPrefix("Event ID: ") && id.count == 36, "\(fired)")
        // Filters are applied by each receiver: e2 runs web1 (tag blue) and is not e1.
        #expect(try AgentProcessHarness.cli(["event", "-name", "blue", "-service", "web", "-tag", "blue"] + cluster.addr("e1")).0 == 0)
        #expect(try AgentProcessHarness.cli(["event", "-name", "db", "-service", "db"] + cluster.addr("e1")).0 == 0)
        #expect(try AgentProcessHarness.cli(["event", "-name", "e1only", "-node", "^e1$"] + cluster.addr("e1")).0 == 0)

        var listed = ""
        let arrived = AgentProcessHarness.eventually(15) {
            listed = cluster.get("e2", "/v1/event/list")?.body ?? ""
            return listed.contains(#""Name":"blue""#)
        }
        #expect(arrived, "e2 events: \(listed)")
        #expect(listed.hasPrefix(#"[{"ID":"\#(id)","Name":"deploy","Payload":"djI=","NodeFilter":"","ServiceFilter":"","TagFilter":"","Version":1,"LTime":"#), "\(listed)")
        #expect(!listed.contains(#""Name":"db""#) && !listed.contains("e1only"))
        let e1 = cluster.get("e1", "/v1/event/list?name=e1only")?.body ?? ""
        #expect(e1.contains("e1only") && !e1.contains("deploy"), "\(e1)")

        // A blocking list on e2 returns when the next event arrives.
        let head = try AgentProcessHarness.http("GET", host: "127.0.0.164", port: 8500, path: "/v1/event/list?name=later")
        #expect(head.headers["x-consul-index"] == "1")
        let waiter = Thread { _ = try? AgentProcessHarness.cli(["event", "-name", "later"] + cluster.addr("e1")) }
        waiter.start()
        let blocked = try AgentProcessHarness.http("GET", host: "127.0.0.164", port: 8500, path: "/v1/event/list?name=later&index=1&wait=20s")
        #expect(blocked.body.contains(#""Name":"later""#), "\(blocked)")

        let missing = try AgentProcessHarness.cli(["event"] + cluster.addr("e1"))
        #expect(missing.0 == 1 && missing.2.hasPrefix("Event name must be specified"))
        let badTag = try AgentProcessHarness.http("PUT", host: "127.0.0.164", port: 8500, path: "/v1/event/fire/x?tag=a")
        #expect(badTag.status == 400 && badTag.body == "Cannot provide tag filter without service filter")
    }
}
