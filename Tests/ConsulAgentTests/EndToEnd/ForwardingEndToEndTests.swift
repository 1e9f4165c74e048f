import Foundation
import Testing

/// Forwarding between real `consul` processes: three servers (-bootstrap-expect 3) and a client
/// that finds them through gossip. Writes and default reads from the client and from a follower
/// reach the leader over agent RPC; `?stale` is answered by the server asked; after kill -9 of the
/// leader the client's requests reach the new one and no acknowledged write is lost.
@Suite(.serialized) struct ForwardingEndToEndTests {
    @Test func clientsAndFollowersForwardToTheLeaderAcrossProcesses() throws {
        let cluster = try LocalCluster()
        let servers = ["f1": "127.0.0.111", "f2": "127.0.0.112", "f3": "127.0.0.113"]
        let join = ["-retry-join", "127.0.0.111", "-retry-interval", "200ms"]
        for (name, host) in servers.sorted(by: { $0.key < $1.key }) {
            try cluster.start(name, host: host, server: true, extra: ["-bootstrap-expect", "3"] + join)
        }
        try cluster.start("fc", host: "127.0.0.114", server: false, extra: join)

        let elected = AgentProcessHarness.eventually(30) { servers.keys.allSatisfy { cluster.leader(asking: $0) != nil } }
        #expect(elected, "no leader:\n\(cluster.logs)")
        guard elected, let leaderAddress = cluster.leader(asking: "f1"),
              let leaderName = servers.first(where: { leaderAddress.hasPrefix($0.value + ":") })?.key
        else { return }
        let follower = servers.keys.sorted().first { $0 != leaderName }!

        // The client writes as soon as gossip told it about a server: client → server → leader.
        let written = AgentProcessHarness.eventually(20) {
            (try? AgentProcessHarness.cli(["kv", "put"] + cluster.addr("fc") + ["fwd/client", "from-client"]))?.0 == 0
        }
        #expect(written, "the client could not write:\n\(cluster.logs)")
        let clientRead = try AgentProcessHarness.cli(["kv", "get"] + cluster.addr("fc") + ["fwd/client"])
        #expect(clientRead.0 == 0 && clientRead.1 == "from-client\n", "\(clientRead)")

        // A follower forwards a write and a default read to the leader.
        let followerPut = try AgentProcessHarness.cli(["kv", "put"] + cluster.addr(follower) + ["fwd/follower", "from-follower"])
        #expect(followerPut.0 == 0, "\(followerPut)")
        let followerRead = try AgentProcessHarness.http("GET", host: cluster.host(follower), port: 8500, path: "/v1/kv/fwd/follower?raw")
        #expect(followerRead.status == 200 && followerRead.body == "from-follower")
        #expect(followerRead.headers["x-consul-knownleader"] == "true")
        #expect(Int(followerRead.headers["x-consul-index"] ?? "") ?? 0 > 0)
        // ?stale is answered by whichever server the client reached, from what it has applied.
        #expect(AgentProcessHarness.eventually(10) { cluster.get("fc", "/v1/kv/fwd/follower?stale&raw")?.body == "from-follower" })

        // The leader dies: the client's requests reach the new leader (past a dead server, if it
        // was asking that one), and the acknowledged writes are all there.
        cluster.kill9(leaderName)
        let afterFailover = AgentProcessHarness.eventually(30) {
            (try? AgentProcessHarness.cli(["kv", "put"] + cluster.addr("fc") + ["fwd/after", "failover"]))?.0 == 0
        }
        #expect(afterFailover, "no write through the client after failover:\n\(cluster.logs)")
        #expect(try AgentProcessHarness.cli(["kv", "get"] + cluster.addr("fc") + ["fwd/client"]).1 == "from-client\n")
        #expect(try AgentProcessHarness.cli(["kv", "get"] + cluster.addr("fc") + ["fwd/follower"]).1 == "from-follower\n")
        #expect(try AgentProcessHarness.cli(["kv", "get"] + cluster.addr("fc") + ["fwd/after"]).1 == "failover\n")
    }
}
