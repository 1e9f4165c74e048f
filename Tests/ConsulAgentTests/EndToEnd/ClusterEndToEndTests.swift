import Foundation
import Testing

/// A datacenter of real `consul` processes, as the seed tutorials build it: servers started with
/// `-bootstrap-expect`, a client joined with `consul join`, then failures and leaves. Each agent
/// has its own loopback address (127.0.0.8x) and data directory; gossip timings are shortened
/// through `gossip_lan` so failure detection takes about a second.
final class LocalCluster: @unchecked Sendable {
    struct Node {
        var name: String
        var host: String
        var server: Bool
        var dataDir: String
        var process: AgentProcessHarness?
    }

    let root: String
    var nodes: [String: Node] = [:]
    static let fastGossip = "gossip_lan { probe_interval = \"200ms\" probe_timeout = \"100ms\" gossip_interval = \"50ms\" suspicion_mult = 2 }"

    init() throws {
        root = NSTemporaryDirectory() + "consul-cluster-" + UUID().uuidString.lowercased()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func start(_ name: String, host: String, server: Bool, extra: [String] = []) throws {
        let dataDir = nodes[name]?.dataDir ?? root + "/" + name
        var arguments = ["agent", "-node", name, "-bind", host, "-client", host, "-data-dir", dataDir, "-hcl", Self.fastGossip]
        if server { arguments += ["-server"] }
        // A restart right after SIGKILL can find the port still held for a moment (seen under
        // heavy parallel load): the agent then exits naming the port; try again, a few times.
        var process = try AgentProcessHarness(arguments: arguments + extra)
        for _ in 0..<5 {
            usleep(300_000)
            guard !process.process.isRunning, process.log.contains("Address already in use") else { break }
            usleep(500_000)
            process = try AgentProcessHarness(arguments: arguments + extra)
        }
        nodes[name] = Node(name: name, host: host, server: server, dataDir: dataDir, process: process)
    }

    func kill9(_ name: String) {
        _ = nodes[name]?.process?.stop(signal: SIGKILL)
        nodes[name]?.process = nil
    }

    func host(_ name: String) -> String { nodes[name]!.host }
    func addr(_ name: String) -> [String] { ["-http-addr", "\(host(name)):8500"] }

    func get(_ name: String, _ path: String) -> (status: Int, body: String)? {
        guard let answer = try? AgentProcessHarness.http("GET", host: host(name), port: 8500, path: path) else { return nil }
        return (answer.status, answer.body)
    }

    func leader(asking name: String) -> String? {
        guard let answer = get(name, "/v1/status/leader"), answer.status == 200, answer.body.count > 2 else { return nil }
        return String(answer.body.dropFirst().dropLast())
    }

    /// Every process's output, for a failing test's report.
    var logs: String {
        nodes.values.sorted { $0.name < $1.name }.map { "---- \($0.name)\n\($0.process?.log ?? "(not running)")" }.joined(separator: "\n")
    }

    deinit {
        for node in nodes.values { _ = node.process?.stop(signal: SIGKILL) }
        try? FileManager.default.removeItem(atPath: root)
    }
}

@Suite(.serialized) struct ClusterEndToEndTests {
    /// Seed 000/002: servers with -bootstrap-expect find each other (here through -retry-join),
    /// elect a leader; a client joins with `consul join`; `consul members` lists everyone; the
    /// leader's catalog holds every node with serfHealth; kill -9 of the leader → a new leader,
    /// the dead one marked failed; `consul leave` on the client → left.
    @Test func serversBootstrapClientJoinsLeaderFailsOver() throws {
        let cluster = try LocalCluster()
        let servers = ["s1": "127.0.0.81", "s2": "127.0.0.82", "s3": "127.0.0.83"]
        for (name, host) in servers.sorted(by: { $0.key < $1.key }) {
            try cluster.start(name, host: host, server: true, extra: ["-bootstrap-expect", "3", "-retry-join", "127.0.0.81", "-retry-interval", "200ms"])
        }
        try cluster.start("c1", host: "127.0.0.84", server: false)

        let elected = AgentProcessHarness.eventually(30) { servers.keys.allSatisfy { cluster.leader(asking: $0) != nil } }
        #expect(elected, "no leader:\n\(cluster.logs)")
        guard elected else { return }

        let join = try AgentProcessHarness.cli(["join"] + cluster.addr("c1") + ["127.0.0.81"])
        #expect(join.0 == 0)
        #expect(join.1 == "Successfully joined cluster by contacting 1 nodes.\n")
        let allAlive = AgentProcessHarness.eventually(15) {
            guard let members = try? AgentProcessHarness.cli(["members"] + cluster.addr("c1")) else { return false }
            return members.1.components(separatedBy: "  alive  ").count == 5
        }
        #expect(allAlive, "members:\n\((try? AgentProcessHarness.cli(["members"] + cluster.addr("c1")).1) ?? "")")
        let members = try AgentProcessHarness.cli(["members"] + cluster.addr("s2")).1
        #expect(members.contains("c1    127.0.0.84:8301  alive   client"))
        #expect(members.contains("s3    127.0.0.83:8301  alive   server"))

        // The leader registers every member in the catalog with a passing serfHealth check.
        let leaderAddress = try #require(cluster.leader(asking: "s1"))
        let leaderName = try #require(servers.first { leaderAddress.hasPrefix($0.value + ":") }?.key)
        let registered = AgentProcessHarness.eventually(15) {
            guard let nodes = cluster.get(leaderName, "/v1/health/state/passing")?.body else { return false }
            return ["s1", "s2", "s3", "c1"].allSatisfy { nodes.contains("\"Node\":\"\($0)\"") }
        }
        #expect(registered, "catalog: \(cluster.get(leaderName, "/v1/catalog/nodes")?.body ?? "")")
        let peers = try AgentProcessHarness.cli(["operator", "raft", "list-peers"] + cluster.addr(leaderName))
        #expect(peers.1.components(separatedBy: "\n").filter { $0.contains(" true ") }.count == 3, "list-peers:\n\(peers.1)")

        // A write on the leader replicates to every server (read locally with ?stale).
        let put = try AgentProcessHarness.cli(["kv", "put"] + cluster.addr(leaderName) + ["seed/000", "replicated"])
        #expect(put.0 == 0)
        for name in servers.keys {
            let replicated = AgentProcessHarness.eventually(10) { cluster.get(name, "/v1/kv/seed/000?stale&raw")?.body == "replicated" }
            #expect(replicated, "\(name) never saw the write")
        }

        // Written through the client (forwarded to a server, then the leader), read on a
        // follower with default consistency (forwarded to the leader) and with ?stale (local).
        let follower = servers.keys.sorted().first { $0 != leaderName }!
        let viaClient = try AgentProcessHarness.cli(["kv", "put"] + cluster.addr("c1") + ["seed/client", "forwarded"])
        #expect(viaClient.0 == 0, "client write: \(viaClient.2)")
        let onFollower = try AgentProcessHarness.cli(["kv", "get"] + cluster.addr(follower) + ["seed/client"])
        #expect(onFollower.1 == "forwarded\n", "follower read: \(onFollower.2)")
        let onClient = try AgentProcessHarness.cli(["kv", "get"] + cluster.addr("c1") + ["seed/000"])
        #expect(onClient.1 == "replicated\n", "client read: \(onClient.2)")
        let followerInfo = try AgentProcessHarness.cli(["info"] + cluster.addr("c1"))
        #expect(followerInfo.1.contains("known_servers = 3"), "client info:\n\(followerInfo.1)")

        // kill -9 the leader: the others elect a new one and mark the old one failed.
        cluster.kill9(leaderName)
        let survivors = servers.keys.filter { $0 != leaderName }
        let newLeader = AgentProcessHarness.eventually(30) {
            survivors.allSatisfy { name in cluster.leader(asking: name).map { !$0.hasPrefix(servers[leaderName]! + ":") } ?? false }
        }
        #expect(newLeader, "no new leader:\n\(cluster.logs)")
        let afterFailover = AgentProcessHarness.eventually(15) {
            (try? AgentProcessHarness.cli(["kv", "put"] + cluster.addr("c1") + ["seed/after", "failover"]).0) == 0
        }
        #expect(afterFailover, "writes through the client continue after the leader dies")
        #expect(try AgentProcessHarness.cli(["kv", "get"] + cluster.addr("c1") + ["seed/000"]).1 == "replicated\n", "nothing acknowledged is lost")
        let markedFailed = AgentProcessHarness.eventually(20) {
            guard let members = try? AgentProcessHarness.cli(["members"] + cluster.addr("c1")).1 else { return false }
            return members.contains("\(leaderName)    \(servers[leaderName]!):8301  failed")
        }
        #expect(markedFailed)
        let survivor = survivors.sorted()[0]
        let critical = AgentProcessHarness.eventually(20) {
            cluster.get(survivor, "/v1/health/node/\(leaderName)?stale")?.body.contains("\"Status\":\"critical\"") ?? false
        }
        #expect(critical, "the failed server's serfHealth should turn critical")

        // force-leave moves the failed server to left: it leaves Raft and the catalog.
        let unknown = try AgentProcessHarness.cli(["force-leave"] + cluster.addr(survivor) + ["no-such-node"])
        #expect(unknown.0 == 1)
        #expect(unknown.2.contains("No node found with name 'no-such-node'"), "stderr: \(unknown.2)")
        let forced = try AgentProcessHarness.cli(["force-leave"] + cluster.addr(survivor) + [leaderName])
        #expect(forced.0 == 0, "force-leave: \(forced.2)")
        let forcedOut = AgentProcessHarness.eventually(15) {
            let members = (try? AgentProcessHarness.cli(["members"] + cluster.addr(survivor)).1) ?? ""
            let peers = (try? AgentProcessHarness.cli(["operator", "raft", "list-peers", "-stale"] + cluster.addr(survivor)).1) ?? ""
            return members.contains("\(leaderName)    \(servers[leaderName]!):8301  left") && !peers.contains(servers[leaderName]! + ":8300")
        }
        #expect(forcedOut, "the force-left server should be left and out of Raft")

        // A graceful leave is recorded as left, and the leader deregisters the node.
        let leave = try AgentProcessHarness.cli(["leave"] + cluster.addr("c1"))
        #expect(leave.0 == 0 && leave.1 == "Graceful leave complete\n")
        let left = AgentProcessHarness.eventually(15) {
            guard let members = try? AgentProcessHarness.cli(["members"] + cluster.addr(survivor)).1 else { return false }
            return members.contains("c1    127.0.0.84:8301  left")
        }
        #expect(left)
        let deregistered = AgentProcessHarness.eventually(15) {
            cluster.get(survivor, "/v1/catalog/node/c1?stale").map { $0.body == "null" } ?? false
        }
        #expect(deregistered, "c1 should leave the catalog: \(cluster.get(survivor, "/v1/catalog/node/c1?stale")?.body ?? "")")
    }

    /// Seed 000/002/003 outage recovery: all servers of a 3-server cluster are lost; the operator
    /// writes `raft/peers.json` naming the one survivor and starts it: it leads alone, with the data.
    @Test func peersJSONRecoversASingleSurvivor() throws {
        let cluster = try LocalCluster()
        let servers = ["r1": "127.0.0.85", "r2": "127.0.0.86", "r3": "127.0.0.87"]
        let flags = ["-bootstrap-expect", "3", "-retry-join", "127.0.0.85", "-retry-interval", "200ms"]
        for (name, host) in servers.sorted(by: { $0.key < $1.key }) { try cluster.start(name, host: host, server: true, extra: flags) }
        let elected = AgentProcessHarness.eventually(30) { servers.keys.allSatisfy { cluster.leader(asking: $0) != nil } }
        #expect(elected, "no leader:\n\(cluster.logs)")
        guard elected, let leaderAddress = cluster.leader(asking: "r1"),
              let leaderName = servers.first(where: { leaderAddress.hasPrefix($0.value + ":") })?.key
        else { return }
        let put = try AgentProcessHarness.cli(["kv", "put"] + cluster.addr(leaderName) + ["outage/survives", "yes"])
        #expect(put.0 == 0)
        // r1 must have the write before the outage (it is acknowledged once a majority has it).
        #expect(AgentProcessHarness.eventually(10) { cluster.get("r1", "/v1/kv/outage/survives?stale&raw")?.body == "yes" })

        for name in servers.keys { cluster.kill9(name) }
        let dataDir = cluster.nodes["r1"]!.dataDir
        let nodeID = try String(contentsOfFile: dataDir + "/node-id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let peersPath = dataDir + "/raft/peers.json"
        try "[{\"id\": \"\(nodeID)\", \"address\": \"127.0.0.85:8300\", \"non_voter\": false}]\n".write(toFile: peersPath, atomically: true, encoding: .utf8)
        try cluster.start("r1", host: "127.0.0.85", server: true, extra: flags)

        let leads = AgentProcessHarness.eventually(20) { cluster.leader(asking: "r1") == "127.0.0.85:8300" }
        #expect(leads, "r1 should lead alone after peers.json:\n\(cluster.logs)")
        #expect(cluster.get("r1", "/v1/kv/outage/survives?raw")?.body == "yes")
        #expect(!FileManager.default.fileExists(atPath: peersPath), "peers.json is removed once ingested")
        let peers = try AgentProcessHarness.cli(["operator", "raft", "list-peers"] + cluster.addr("r1"))
        #expect(peers.1.components(separatedBy: "\n").filter { $0.contains("127.0.0.8") }.count == 1, "list-peers:\n\(peers.1)")
    }

    /// Seed 002: a server restarted with the same data dir rejoins the members it knew (serf's
    /// snapshot) and catches up; after a graceful leave it stays out unless started with -rejoin.
    @Test func restartedServersRejoinFromTheirSnapshot() throws {
        let cluster = try LocalCluster()
        let servers = ["j1": "127.0.0.91", "j2": "127.0.0.92", "j3": "127.0.0.93"]
        let expect = ["-bootstrap-expect", "3"]
        for (name, host) in servers.sorted(by: { $0.key < $1.key }) {
            try cluster.start(name, host: host, server: true, extra: expect + ["-retry-join", "127.0.0.91", "-retry-interval", "200ms"])
        }
        let elected = AgentProcessHarness.eventually(30) { servers.keys.allSatisfy { cluster.leader(asking: $0) != nil } }
        #expect(elected, "no leader:\n\(cluster.logs)")
        guard elected, let leaderAddress = cluster.leader(asking: "j1"),
              let leaderName = servers.first(where: { leaderAddress.hasPrefix($0.value + ":") })?.key
        else { return }
        let follower = servers.keys.sorted().first { $0 != leaderName }!
        func aliveMembers(_ name: String) -> Int {
            let members = (try? AgentProcessHarness.cli(["members"] + cluster.addr(name)).1) ?? ""
            return members.components(separatedBy: "  alive  ").count - 1
        }

        // Crash and restart without any join address: the snapshot brings it back, and Raft catches it up.
        cluster.kill9(follower)
        #expect(try AgentProcessHarness.cli(["kv", "put"] + cluster.addr(leaderName) + ["rejoin/after-crash", "1"]).0 == 0)
        try cluster.start(follower, host: servers[follower]!, server: true, extra: expect)
        let rejoined = AgentProcessHarness.eventually(20) {
            aliveMembers(follower) == 3 && cluster.get(follower, "/v1/kv/rejoin/after-crash?stale&raw")?.body == "1"
        }
        #expect(rejoined, "the restarted server should rejoin and catch up:\n\(cluster.nodes[follower]?.process?.log ?? "")")

        // A graceful leave empties the snapshot's members: a plain restart stays alone...
        #expect(try AgentProcessHarness.cli(["leave"] + cluster.addr(follower)).0 == 0)
        #expect(AgentProcessHarness.eventually(10) { !(cluster.nodes[follower]?.process?.process.isRunning ?? false) })
        try cluster.start(follower, host: servers[follower]!, server: true, extra: expect)
        #expect(AgentProcessHarness.eventually(10) { aliveMembers(follower) == 1 })
        Thread.sleep(forTimeInterval: 1)
        #expect(aliveMembers(follower) == 1, "without -rejoin a server that left must not rejoin by itself")
        // ...and with -rejoin it rejoins.
        cluster.kill9(follower)
        try cluster.start(follower, host: servers[follower]!, server: true, extra: expect + ["-rejoin"])
        #expect(AgentProcessHarness.eventually(20) { aliveMembers(follower) == 3 }, "-rejoin:\n\(cluster.nodes[follower]?.process?.log ?? "")")
    }

    /// Issue 5: 3 servers, then 2 more started later (also with -bootstrap-expect 3, as operators
    /// copy their flags): they ask the others for Raft peers and do not start a cluster of their
    /// own; the leader adds them as non-voters and autopilot promotes them: 5 voters.
    @Test func lateServersJoinAsNonVotersAndAutopilotPromotesThem() throws {
        let cluster = try LocalCluster()
        let hosts = ["a1": "127.0.0.111", "a2": "127.0.0.112", "a3": "127.0.0.113", "a4": "127.0.0.114", "a5": "127.0.0.115"]
        let flags = ["-bootstrap-expect", "3", "-retry-join", "127.0.0.111", "-retry-interval", "200ms",
                     "-hcl", "autopilot { server_stabilization_time = \"2s\" }"]
        for name in ["a1", "a2", "a3"] { try cluster.start(name, host: hosts[name]!, server: true, extra: flags) }
        let elected = AgentProcessHarness.eventually(30) { ["a1", "a2", "a3"].allSatisfy { cluster.leader(asking: $0) != nil } }
        #expect(elected, "no leader:\n\(cluster.logs)")
        guard elected else { return }
        for name in ["a4", "a5"] { try cluster.start(name, host: hosts[name]!, server: true, extra: flags) }
        func voters() -> Int {
            let peers = (try? AgentProcessHarness.cli(["operator", "raft", "list-peers"] + cluster.addr("a4")).1) ?? ""
            return peers.components(separatedBy: "\n").filter { $0.contains(" true ") }.count
        }
        let promoted = AgentProcessHarness.eventually(30) { voters() == 5 }
        #expect(promoted, "list-peers:\n\((try? AgentProcessHarness.cli(["operator", "raft", "list-peers"] + cluster.addr("a1")).1) ?? "")\n\(cluster.logs)")
        #expect(cluster.nodes["a4"]?.process?.log.contains("Existing Raft peers reported by server, disabling bootstrap mode") == true
            || cluster.nodes["a5"]?.process?.log.contains("Existing Raft peers reported by server, disabling bootstrap mode") == true)
        let health = cluster.get("a1", "/v1/operator/autopilot/health")
        #expect(health?.status == 200 && health?.body.contains("\"FailureTolerance\":2") == true, "autopilot health: \(health?.body ?? "")")
    }
}
