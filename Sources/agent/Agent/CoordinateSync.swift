import ConsulCore
import Gossip

/// Every agent's duty of sending its own network coordinate to the servers (Consul's
/// `sendCoordinate`): its serf Vivaldi coordinate, through the agent's own request path as
/// `PUT /v1/coordinate/update`, so it travels to the leader like any write. The interval grows with
/// the cluster so the servers see about `rateTarget` updates a second, never less than
/// `sync_coordinate_interval_min`, plus a random stagger.
struct CoordinateSync: Sendable {
    /// Consul's `sync_coordinate_rate_target` (updates per second across the cluster).
    static let rateTarget = 64.0

    let runtime: AgentRuntime
    let logger: AgentLogger
    let send: @Sendable (APIRequest) async -> APIResponse

    /// Consul's `lib.RateScaledInterval`: the minimum, or cluster size / rate when that is longer.
    static func interval(minimum: Duration, clusterSize: Int) -> Duration {
        let scaled = Duration.milliseconds(Int64(Double(clusterSize) / rateTarget * 1000))
        return max(minimum, scaled)
    }

    func run(seed: UInt64) async {
        guard !runtime.config.disableCoordinates else { return }
        var random = SeededRandom(seed: seed)
        while !Task.isCancelled {
            let base = Self.interval(minimum: runtime.config.syncCoordinateIntervalMin, clusterSize: runtime.lan?.members.count ?? 1)
            let stagger = Duration.nanoseconds(Int64(random.next() % UInt64(max(base.totalNanoseconds, 1))))
            try? await Task.sleep(for: base + stagger)
            guard !Task.isCancelled, let coordinate = runtime.lan?.node.coordinate, coordinate.isValid,
                  coordinate.vector.count == NetworkCoordinate.dimensionality
            else { continue }
            var writer = JSONWriter()
            writer.object { o in
                o.field("Node") { $0.string(runtime.nodeName) }
                o.field("Segment") { $0.string("") }
                o.field("Coord") {
                    CoordinateEndpoint.write(
                        NetworkCoordinate(vec: coordinate.vector, error: coordinate.error, adjustment: coordinate.adjustment, height: coordinate.height),
                        into: &$0)
                }
            }
            var headers: [(name: String, value: String)] = []
            if let token = runtime.config.acl.agentToken ?? runtime.config.acl.defaultToken, !token.isEmpty { headers.append(("X-Consul-Token", token)) }
            let response = await send(APIRequest(method: "PUT", path: "/v1/coordinate/update", query: [:], headers: headers, body: writer.bytes))
            if response.status != 200 {
                logger.warn("agent", "Coordinate update error", ["error": String(decoding: response.body, as: UTF8.self)])
            }
        }
    }
}
