import Foundation
import Testing

/// `dns_config.allow_stale` and `max_stale` with real processes: two datacenters of two servers
/// each lose one server (and with it their leader). Stale answers go on where Consul gives them
/// and stop where the configuration forbids them (SERVFAIL: no leader to ask).
/// Addresses 127.0.0.201-206 belong to this suite.
@Suite(.serialized) struct DNSStalenessEndToEndTests {
    static let hosts = [
        "a1": "127.0.0.201", "a2": "127.0.0.202", "c1": "127.0.0.203", "c2": "127.0.0.204",
        "b1": "127.0.0.205", "b2": "127.0.0.206",
    ]

    /// The `dig` status and the `+short` lines for `consul.service.consul A` asked of `node`.
    static func consulService(_ dig: String, on node: String) -> (status: String, addresses: [String]) {
        guard let output = try? AgentProcessHarness.run(dig, ["@" + hosts[node]!, "-p", "8600", "+time=2", "+tries=1", "consul.service.consul", "A"]).1 else {
            return ("", [])
        }
        let status = output.split(separator: "\n").first { $0.contains("status: ") }
            .flatMap { $0.split(separator: ",").first { $0.contains("status: ") } }
            .map { String($0.split(separator: " ").last ?? "") } ?? ""
        let addresses = output.split(separator: "\n").filter { !$0.hasPrefix(";") && $0.contains("\tA\t") }
            .compactMap { $0.split(separator: "\t").last.map(String.init) }.sorted()
        return (status, addresses)
    }

    @Test func staleAnswersFollowAllowStaleAndMaxStale() throws {
        let dig = try AgentProcessHarness.ensureTool("dig", package: "bind9-dnsutils")
        let cluster = try LocalCluster()
        // Datacenter "dc1": a1, a2 with Consul's defaults; client c1 takes stale answers only from
        // a server that heard from its leader within 1s, client c2 has the defaults.
        let joinA = ["-retry-join", Self.hosts["a1"]!, "-retry-interval", "200ms"]
        for name in ["a1", "a2"] {
            try cluster.start(name, host: Self.hosts[name]!, server: true, extra: ["-bootstrap-expect", "2"] + joinA)
        }
        try cluster.start("c1", host: Self.hosts["c1"]!, server: false, extra: joinA + ["-hcl", #"dns_config { max_stale = "1s" }"#])
        try cluster.start("c2", host: Self.hosts["c2"]!, server: false, extra: joinA)
        // Datacenter "dc2" (its own pool): servers that never answer stale.
        let joinB = ["-retry-join", Self.hosts["b1"]!, "-retry-interval", "200ms", "-datacenter", "dc2", "-hcl", "dns_config { allow_stale = false }"]
        for name in ["b1", "b2"] {
            try cluster.start(name, host: Self.hosts[name]!, server: true, extra: ["-bootstrap-expect", "2"] + joinB)
        }

        // With leaders, every agent answers, followers and clients included (b's follower asks
        // its leader; the clients ask a server).
        let dc1 = [Self.hosts["a1"]!, Self.hosts["a2"]!]
        let dc2 = [Self.hosts["b1"]!, Self.hosts["b2"]!]
        for (node, servers) in [("a1", dc1), ("a2", dc1), ("c1", dc1), ("c2", dc1), ("b1", dc2), ("b2", dc2)] {
            let answered = AgentProcessHarness.eventually(45) { Self.consulService(dig, on: node) == ("NOERROR", servers) }
            #expect(answered, "\(node): \(Self.consulService(dig, on: node))\n\(cluster.logs)")
            guard answered else { return }
        }

        // One server of each datacenter dies: the other loses its leader (no quorum of two).
        cluster.kill9("a2")
        cluster.kill9("b2")
        for survivor in ["a1", "b1"] {
            let leaderless = AgentProcessHarness.eventually(20) { cluster.get(survivor, "/v1/status/leader")?.body == #""""# }
            #expect(leaderless, "\(survivor) still reports a leader\n\(cluster.logs)")
        }

        // a1 answers from its own catalog (stale, within the default max_stale); so does c2
        // through it, three times running (so c2 reaches a1, not the dead a2).
        #expect(Self.consulService(dig, on: "a1") == ("NOERROR", dc1))
        let c2Stale = AgentProcessHarness.eventually(20) {
            (0..<3).allSatisfy { _ in Self.consulService(dig, on: "c2") == ("NOERROR", dc1) }
        }
        #expect(c2Stale, "c2: \(Self.consulService(dig, on: "c2"))\n\(cluster.logs)")
        // c1 gets the same stale answer, sees it is over a second old, asks for the leader: none.
        let c1Refused = AgentProcessHarness.eventually(20) { (0..<3).allSatisfy { _ in Self.consulService(dig, on: "c1").status == "SERVFAIL" } }
        #expect(c1Refused, "c1: \(Self.consulService(dig, on: "c1"))\n\(cluster.logs)")
        #expect(Self.consulService(dig, on: "c2") == ("NOERROR", dc1))
        // b1 may not answer stale at all.
        #expect(Self.consulService(dig, on: "b1").status == "SERVFAIL", "b1: \(Self.consulService(dig, on: "b1"))")
    }
}
