import Foundation
import Testing

/// Network coordinates across real agents (127.0.0.166-168): each agent sends its serf Vivaldi
/// coordinate to the leader, which writes them in batches; every agent then reads all of them.
/// (Deleting a coordinate with its node is covered by `CoordinateTests`: here the leader would
/// re-register the live node at once.) `sync_coordinate_interval_min` (a Consul setting) is shortened so this takes seconds.
@Suite(.serialized) struct CoordinateEndToEndTests {
    @Test func agentsSeeEachOthersCoordinates() throws {
        let cluster = try LocalCluster()
        let fast = ["-hcl", #"sync_coordinate_interval_min = "300ms""#]
        try cluster.start("co-s1", host: "127.0.0.166", server: true, extra: ["-bootstrap"] + fast)
        try cluster.start("co-c1", host: "127.0.0.167", server: false, extra: ["-retry-join", "127.0.0.166", "-retry-interval", "200ms"] + fast)
        try cluster.start("co-c2", host: "127.0.0.168", server: false, extra: ["-retry-join", "127.0.0.166", "-retry-interval", "200ms"] + fast)
        let all = AgentProcessHarness.eventually(30) {
            guard let answer = cluster.get("co-c2", "/v1/coordinate/nodes"), answer.status == 200 else { return false }
            return ["co-s1", "co-c1", "co-c2"].allSatisfy { answer.body.contains(#""Node":"\#($0)""#) }
        }
        #expect(all, "\(cluster.get("co-c2", "/v1/coordinate/nodes").map { "\($0)" } ?? "")\n\(cluster.logs)")
        let one = cluster.get("co-s1", "/v1/coordinate/node/co-c1")
        #expect(one?.status == 200 && one?.body.hasPrefix(#"[{"Node":"co-c1","Segment":"","Coord":{"Vec":["#) == true, "\(String(describing: one))")
        #expect(cluster.get("co-s1", "/v1/coordinate/node/nobody")?.status == 404)
        let datacenters = cluster.get("co-c1", "/v1/coordinate/datacenters")
        #expect(datacenters?.body.hasPrefix(#"[{"Datacenter":"dc1","AreaID":"wan","Coordinates":[{"Node":"co-s1.dc1""#) == true, "\(String(describing: datacenters))")
    }
}
