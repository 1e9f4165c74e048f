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
}
