import ConsulCore
import Foundation
import Gossip

/// What `/v1/agent/metrics` reports: values the agent already keeps (memory, gossip pool, Raft,
/// gossip traffic, HTTP requests), in Consul's JSON shape or Prometheus text. Counters are totals
/// since the agent started, not per-interval like go-metrics' in-memory sink: we keep no history.
struct AgentMetrics: Sendable {
    struct Gauge: Sendable, Equatable {
        var name: String
        var value: Double
        var labels: [String: String] = [:]
    }

    /// A counter or a sample (timer): Consul gives both the same fields.
    struct Aggregate: Sendable, Equatable {
        var name: String
        var count: Int
        var sum: Double
        /// Unknown extremes and spread stay 0: we keep totals, not every observation.
        var min: Double = 0
        var max: Double = 0
        var stddev: Double = 0
        var rate: Double = 0
        var labels: [String: String] = [:]
        var mean: Double { count == 0 ? 0 : sum / Double(count) }
    }

    var timestamp: Date
    var gauges: [Gauge] = []
    var counters: [Aggregate] = []
    var samples: [Aggregate] = []

    static func collect(_ agent: AgentRuntime) -> AgentMetrics {
        let now = Date()
        var metrics = AgentMetrics(timestamp: now)
        let elapsed = max(1, Double((ContinuousClock.now - agent.startedAt).components.seconds))

        // Resident memory of the process: the closest to Go's sys_bytes (memory taken from the OS).
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count >= 2, let pages = Double(fields[1]) {
                metrics.gauges.append(Gauge(name: "consul.runtime.sys_bytes", value: pages * Double(sysconf(Int32(_SC_PAGESIZE)))))
            }
        }
        // No alloc_bytes: glibc's heap statistics (mallinfo2) are not visible to Swift here, and RSS is not them.

        if let lan = agent.lan {
            let members = lan.members
            let alive = members.filter { $0.status == .alive }
            metrics.gauges.append(Gauge(name: "consul.members.servers", value: Double(alive.filter { $0.tags["role"] == "consul" }.count)))
            metrics.gauges.append(Gauge(name: "consul.members.clients", value: Double(alive.filter { $0.tags["role"] != "consul" }.count)))
            for status in [SerfMemberStatus.alive, .leaving, .left, .failed] {
                let count = members.filter { $0.status == status }.count
                metrics.gauges.append(Gauge(name: "consul.serf.lan.members", value: Double(count), labels: ["status": "\(status)"]))
            }
            metrics.gauges.append(Gauge(name: "consul.memberlist.health.score", value: Double(lan.node.healthScore)))

            let gossip = lan.node.metrics
            func counter(_ name: String, _ count: Int, _ sum: Int) {
                metrics.counters.append(Aggregate(name: name, count: count, sum: Double(sum), rate: Double(sum) / elapsed))
            }
            // memberlist counts bytes per packet: Count is packets, Sum is bytes.
            counter("consul.memberlist.udp.received", gossip.packetsIn, gossip.bytesIn)
            counter("consul.memberlist.udp.sent", gossip.packetsOut, gossip.bytesOut)
            counter("consul.memberlist.tcp.accept", gossip.streamsIn, gossip.streamsIn)
            counter("consul.memberlist.tcp.connect", gossip.streamsOut, gossip.streamsOut)
            counter("consul.memberlist.tcp.sent", gossip.streamsOut, gossip.streamBytesOut)
            if gossip.probes > 0 {
                let total = Self.milliseconds(gossip.probeRTTTotal)
                metrics.samples.append(
                    Aggregate(
                        name: "consul.memberlist.probeNode", count: gossip.probes, sum: total,
                        max: Self.milliseconds(gossip.probeRTTMax), rate: total / elapsed))
            }
        }

        if agent.raft != nil {
            let view = agent.clusterView
            metrics.gauges.append(Gauge(name: "consul.server.isLeader", value: view.isLeader ? 1 : 0))
            metrics.gauges.append(Gauge(name: "consul.raft.applied_index", value: Double(view.appliedIndex)))
            metrics.gauges.append(Gauge(name: "consul.raft.commit_index", value: Double(view.commitIndex)))
            metrics.gauges.append(Gauge(name: "consul.raft.last_index", value: Double(view.lastIndex)))
            metrics.gauges.append(Gauge(name: "consul.raft.term", value: Double(view.term)))
            if let text = view.raftStats["last_contact"], let contact = try? GoDuration.parse(text) {
                let ms = Self.milliseconds(contact)
                metrics.samples.append(Aggregate(name: "consul.raft.leader.lastContact", count: 1, sum: ms, min: ms, max: ms))
            }
        }

        for (method, count) in agent.httpRequestCounts.sorted(by: { $0.key < $1.key }) {
            metrics.counters.append(
                Aggregate(name: "consul.http.requests", count: count, sum: Double(count), rate: Double(count) / elapsed, labels: ["method": method]))
        }
        return metrics
    }

    static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }

    /// Go's `time.Time.String()` of the 10-second interval the snapshot falls in, as Consul shows it.
    static func goTimestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970)
        seconds -= seconds % 10
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000 UTC"
    }

    func write(into writer: inout JSONWriter) {
        func labels(_ map: [String: String], _ w: inout JSONWriter) { w.stringMap(map) }
        func aggregates(_ list: [Aggregate], _ w: inout JSONWriter) {
            w.array { a in
                for item in list {
                    a.object { o in
                        o.field("Name") { $0.string(item.name) }
                        o.field("Count") { $0.int(item.count) }
                        o.field("Rate") { $0.double(item.rate) }
                        o.field("Sum") { $0.double(item.sum) }
                        o.field("Min") { $0.double(item.min) }
                        o.field("Max") { $0.double(item.max) }
                        o.field("Mean") { $0.double(item.mean) }
                        o.field("Stddev") { $0.double(item.stddev) }
                        o.field("Labels") { labels(item.labels, &$0) }
                    }
                }
            }
        }
        writer.object { w in
            w.field("Timestamp") { $0.string(Self.goTimestamp(timestamp)) }
            w.field("Gauges") { g in
                g.array { a in
                    for gauge in gauges {
                        a.object { o in
                            o.field("Name") { $0.string(gauge.name) }
                            o.field("Value") { $0.double(gauge.value) }
                            o.field("Labels") { labels(gauge.labels, &$0) }
                        }
                    }
                }
            }
            w.field("Points") { $0.array { _ in } }
            w.field("Counters") { aggregates(counters, &$0) }
            w.field("Samples") { aggregates(samples, &$0) }
        }
    }

    /// Prometheus text exposition (0.0.4): dots become underscores; counters carry their total;
    /// samples become summaries with `_sum` and `_count` (no quantiles: we keep none).
    func prometheus() -> String {
        var out = ""
        var typed: Set<String> = []
        func name(_ dotted: String) -> String {
            String(dotted.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
        }
        func labelText(_ labels: [String: String]) -> String {
            guard !labels.isEmpty else { return "" }
            let pairs = labels.sorted { $0.key < $1.key }.map { key, value in
                let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                    .replacingOccurrences(of: "\n", with: "\\n")
                return "\(name(key))=\"\(escaped)\""
            }
            return "{" + pairs.joined(separator: ",") + "}"
        }
        func header(_ metric: String, _ type: String) {
            guard typed.insert(metric).inserted else { return }
            out += "# HELP \(metric) \(metric)\n# TYPE \(metric) \(type)\n"
        }
        func number(_ value: Double) -> String { JSONWriter.goFloat(value) }
        for gauge in gauges {
            let metric = name(gauge.name)
            header(metric, "gauge")
            out += "\(metric)\(labelText(gauge.labels)) \(number(gauge.value))\n"
        }
        for counter in counters {
            let metric = name(counter.name)
            header(metric, "counter")
            out += "\(metric)\(labelText(counter.labels)) \(number(counter.sum))\n"
        }
        for sample in samples {
            let metric = name(sample.name)
            header(metric, "summary")
            out += "\(metric)_sum\(labelText(sample.labels)) \(number(sample.sum))\n"
            out += "\(metric)_count\(labelText(sample.labels)) \(sample.count)\n"
        }
        return out
    }
}
