import Foundation
import NIOPosix
import Testing

@testable import ConsulAgent

/// `/v1/agent/version`, `/v1/agent/host` and `/v1/agent/metrics`: Consul's shapes, filled from
/// what this agent and machine really report.
@Suite(.serialized) struct AgentInfoEndpointTests {
    private func json(_ text: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func versionHostAndMetricsShapes() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let runtime = RPCRelayTests.clientRuntime()
        let dispatcher = APIDispatcher(agent: runtime, seed: 1)
        let loop = group.next()
        func call(_ method: String, _ target: String) async throws -> (Int, String) {
            try await AgentLocalEndpointTests.call(dispatcher, loop, method, target)
        }

        #expect(try await call("GET", "/v1/agent/version") == (200, #"{"SHA":"","BuildDate":"","HumanVersion":"1.21.0","FIPS":""}"#))
        #expect(try await call("PUT", "/v1/agent/version").0 == 405)

        let host = try await call("GET", "/v1/agent/host")
        #expect(host.0 == 200)
        let hostObject = try json(host.1)
        #expect(Set(hostObject.keys) == ["Memory", "CPU", "Host", "Disk", "CollectionTime", "Errors"])
        let hostPart = try #require(hostObject["Host"] as? [String: Any])
        #expect(hostPart["os"] as? String == "linux")
        #expect(!(hostPart["hostname"] as? String ?? "").isEmpty && !(hostPart["kernelVersion"] as? String ?? "").isEmpty)
        let memory = try #require(hostObject["Memory"] as? [String: Any])
        #expect((memory["total"] as? Int ?? 0) > 0)
        #expect(((hostObject["CPU"] as? [Any]) ?? []).count >= 1)
        #expect(hostObject["Errors"] is NSNull)

        let metrics = try await call("GET", "/v1/agent/metrics")
        #expect(metrics.0 == 200)
        let metricsObject = try json(metrics.1)
        #expect(Set(metricsObject.keys) == ["Timestamp", "Gauges", "Points", "Counters", "Samples"])
        let gauges = try #require(metricsObject["Gauges"] as? [[String: Any]])
        #expect(gauges.contains { $0["Name"] as? String == "consul.runtime.sys_bytes" && ($0["Value"] as? Double ?? 0) > 0 })
        // The requests above were counted, by method.
        let counters = try #require(metricsObject["Counters"] as? [[String: Any]])
        let get = try #require(counters.first { ($0["Labels"] as? [String: String]) == ["method": "GET"] })
        #expect(get["Name"] as? String == "consul.http.requests" && (get["Count"] as? Int ?? 0) >= 3)
        #expect(Set(get.keys) == ["Name", "Count", "Rate", "Sum", "Min", "Max", "Mean", "Stddev", "Labels"])

        let prometheus = try await call("GET", "/v1/agent/metrics?format=prometheus")
        #expect(prometheus.0 == 200)
        #expect(prometheus.1.contains("# TYPE consul_runtime_sys_bytes gauge\nconsul_runtime_sys_bytes "))
        #expect(prometheus.1.contains("# TYPE consul_http_requests counter\nconsul_http_requests{method=\"GET\"} "))
        #expect(try await call("GET", "/v1/agent/metrics?format=xml").0 == 400)
        try await group.shutdownGracefully()
    }

    /// `/v1/agent/self` has exactly Consul's top-level keys (no `xDS`: this edition serves no
    /// service mesh) and Consul CE's `Config` keys, and `Config.Version` is a PEP 440 public
    /// version, which py-consul and other tooling parse.
    @Test func selfHasConsulsKeysAndAPEP440Version() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let dispatcher = APIDispatcher(agent: RPCRelayTests.clientRuntime(), seed: 1)
        let answer = try await AgentLocalEndpointTests.call(dispatcher, group.next(), "GET", "/v1/agent/self")
        try await group.shutdownGracefully()
        #expect(answer.0 == 200)
        let object = try json(answer.1)
        #expect(Set(object.keys) == ["Config", "DebugConfig", "Coord", "Member", "Stats", "Meta"])
        let config = try #require(object["Config"] as? [String: Any])
        #expect(Set(config.keys) == ["Datacenter", "PrimaryDatacenter", "NodeName", "NodeID", "Revision", "Server", "Version", "BuildDate"])
        let version = try #require(config["Version"] as? String)
        #expect(version == "1.21.0")
        #expect(Self.isPEP440PublicVersion(version), "\(version)")
        // The check itself: what PEP 440 refuses is refused.
        #expect(!Self.isPEP440PublicVersion("1.21.0-dev") && !Self.isPEP440PublicVersion("v1.21") && !Self.isPEP440PublicVersion("1.21.0+ent"))
        #expect(Self.isPEP440PublicVersion("1.21.0rc1") && Self.isPEP440PublicVersion("1.21.0.dev3"))
    }

    /// PEP 440's canonical public version: `[N!]N(.N)*[{a|b|rc}N][.postN][.devN]`.
    static func isPEP440PublicVersion(_ text: String) -> Bool {
        text.wholeMatch(of: /([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*((a|b|rc)(0|[1-9][0-9]*))?(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?/) != nil
    }

    @Test func metricsRenderingIsConsulsShape() {
        var metrics = AgentMetrics(timestamp: Date(timeIntervalSince1970: 1_700_000_007))
        metrics.gauges = [
            .init(name: "consul.serf.lan.members", value: 3, labels: ["status": "alive"]),
            .init(name: "consul.serf.lan.members", value: 1, labels: ["status": "failed"]),
        ]
        metrics.counters = [.init(name: "consul.memberlist.udp.sent", count: 4, sum: 400, rate: 2)]
        metrics.samples = [.init(name: "consul.memberlist.probeNode", count: 2, sum: 3, max: 2)]
        var writer = JSONWriter()
        metrics.write(into: &writer)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == """
            {"Timestamp":"2023-11-14 22:13:20 +0000 UTC","Gauges":[{"Name":"consul.serf.lan.members","Value":3,"Labels":{"status":"alive"}},\
            {"Name":"consul.serf.lan.members","Value":1,"Labels":{"status":"failed"}}],"Points":[],\
            "Counters":[{"Name":"consul.memberlist.udp.sent","Count":4,"Rate":2,"Sum":400,"Min":0,"Max":0,"Mean":100,"Stddev":0,"Labels":{}}],\
            "Samples":[{"Name":"consul.memberlist.probeNode","Count":2,"Rate":0,"Sum":3,"Min":0,"Max":2,"Mean":1.5,"Stddev":0,"Labels":{}}]}
            """)
        #expect(metrics.prometheus() == """
            # HELP consul_serf_lan_members consul_serf_lan_members
            # TYPE consul_serf_lan_members gauge
            consul_serf_lan_members{status="alive"} 3
            consul_serf_lan_members{status="failed"} 1
            # HELP consul_memberlist_udp_sent consul_memberlist_udp_sent
            # TYPE consul_memberlist_udp_sent counter
            consul_memberlist_udp_sent 400
            # HELP consul_memberlist_probeNode consul_memberlist_probeNode
            # TYPE consul_memberlist_probeNode summary
            consul_memberlist_probeNode_sum 3
            consul_memberlist_probeNode_count 2

            """)
    }

    @Test func procParsers() {
        let (memory, percent) = HostInfo.parseMeminfo("MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\nBuffers:          100 kB\nCached:           100 kB\nSReclaimable:     100 kB\n")
        let values = Dictionary(memory, uniquingKeysWith: { a, _ in a })
        #expect(values["total"] == 1_024_000 && values["cached"] == 204_800 && values["used"] == 512_000)
        #expect(percent == 50)
        let cpus = HostInfo.parseCPUInfo("processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n")
        #expect(cpus.count == 2 && cpus[1]["processor"] == "1" && cpus[0]["model name"] == "X")
        #expect(HostInfo.parseOSRelease("ID=debian\nVERSION_ID=\"12\"\n") == ["ID": "debian", "VERSION_ID": "12"])
        #expect(HostInfo.mountType(of: "/data/consul", mounts: "rootfs / ext4 rw 0 0\n/dev/x /data xfs rw 0 0\n/dev/y /dat btrfs rw 0 0\n") == "xfs")
    }
}
