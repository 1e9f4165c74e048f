import ConsulCore
import Synchronization

/// `/v1/coordinate/datacenters|nodes|node/:node|update`: network coordinates (serf's Vivaldi)
/// kept in the replicated `coordinates` table. Updates are queued on the leader and written in
/// batches (`CoordinateBatcher`), as Consul's Coordinate.Update does.
struct CoordinateEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        let agent = self.agent
        switch tail {
        case "datacenters":
            try APIRouter.requireMethod(request, "GET")
            // Until WAN federation exists this is the one datacenter, its servers' coordinates
            // named as the WAN pool names them (`node.dc`). They are LAN coordinates: there is
            // no WAN pool to measure across yet.
            return .read(.filteredList, tables: [.coordinates, .services]) { store throws(APIError) in
                let servers = Set(store.serviceInstances(named: "consul").map { StateStore.nodeKey($0.node) })
                let rows = store.allCoordinates(segment: "").filter { servers.contains(StateStore.nodeKey($0.node)) }
                return .json { writer in
                    writer.array { a in
                        a.object { o in
                            o.field("Datacenter") { $0.string(agent.datacenter) }
                            o.field("AreaID") { $0.string("wan") }
                            o.field("Coordinates") { c in
                                c.array { list in
                                    for row in rows {
                                        list.object { w in
                                            w.field("Node") { $0.string("\(row.node).\(agent.datacenter)") }
                                            w.field("Segment") { $0.string("") }
                                            w.field("Coord") { Self.write(row.coord, into: &$0) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        case "nodes":
            try APIRouter.requireMethod(request, "GET")
            let segment = request.query["segment"]
            return .read(.filteredList, tables: [.coordinates]) { store throws(APIError) in
                Self.render(store.allCoordinates(segment: segment))
            }
        case "update":
            try APIRouter.requireMethod(request, "PUT")
            let row = try Self.parseUpdate(request.body)
            return .write(.node(row.node)) { () async throws(APIError) -> APIResponse in
                guard agent.raft != nil else { throw .noServers }
                try agent.coordinateUpdates.enqueue(row)
                return APIResponse(body: [])
            }
        default:
            guard tail.hasPrefix("node/"), tail.count > 5 else { throw .notFound("404 page not found") }
            try APIRouter.requireMethod(request, "GET")
            let name = String(tail.dropFirst(5))
            let segment = request.query["segment"]
            return .read(.node(name), tables: [.coordinates]) { store throws(APIError) in
                let rows = store.coordinates(ofNode: name).filter { segment == nil || $0.segment == segment }
                // Consul answers an unknown node with an empty 404.
                guard !rows.isEmpty else { return APIResponse(status: 404, body: []) }
                return Self.render(rows)
            }
        }
    }

    static func render(_ rows: [NodeCoordinate]) -> APIResponse {
        .json { writer in
            writer.array { a in
                for row in rows {
                    a.object { w in
                        w.field("Node") { $0.string(row.node) }
                        w.field("Segment") { $0.string(row.segment) }
                        w.field("Coord") { write(row.coord, into: &$0) }
                    }
                }
            }
        }
    }

    static func write(_ coord: NetworkCoordinate, into writer: inout JSONWriter) {
        writer.object { o in
            o.field("Vec") { v in v.array { for value in coord.vec { $0.double(value) } } }
            o.field("Error") { $0.double(coord.error) }
            o.field("Adjustment") { $0.double(coord.adjustment) }
            o.field("Height") { $0.double(coord.height) }
        }
    }

    /// `{"Node": "n1", "Segment": "", "Coord": {"Vec": [8 numbers], "Error", "Adjustment", "Height"}}`.
    static func parseUpdate(_ bytes: [UInt8]) throws(APIError) -> NodeCoordinate {
        let body = try JSONBody.parse(bytes)
        guard body.isObject() else { throw .badRequest("Request decode failed: the body must be a JSON object") }
        guard let node = try body.string("Node"), !node.isEmpty else { throw .badRequest("Missing node name") }
        let segment = try body.string("Segment") ?? ""
        guard let coord = try body.object("Coord") else { throw .badRequest("Missing coordinate") }
        func number(_ key: String) throws(APIError) -> Double {
            guard let member = coord.member(key), !member.isNull else { return 0 }
            guard let value = member.doubleValue else { throw .badRequest("Request decode failed: Coord.\(key) must be a number") }
            return value
        }
        var vec: [Double] = []
        if let member = coord.member("Vec"), !member.isNull {
            guard let elements = member.arrayValue, elements.count <= NetworkCoordinate.dimensionality * 4 else {
                throw .badRequest("Request decode failed: Coord.Vec must be a list of numbers")
            }
            for element in elements {
                guard let value = element.doubleValue else { throw .badRequest("Request decode failed: Coord.Vec must be a list of numbers") }
                vec.append(value)
            }
        }
        let parsed = NetworkCoordinate(vec: vec, error: try number("Error"), adjustment: try number("Adjustment"), height: try number("Height"))
        guard parsed.isValid else {
            throw .badRequest("rejected bad coordinate: want \(NetworkCoordinate.dimensionality) finite dimensions, got \(vec.count)")
        }
        return NodeCoordinate(node: node, segment: segment, coord: parsed)
    }
}

/// Coordinate updates waiting on the leader for the next batch write (Consul: one Raft write per
/// `coordinate_update_period`, at most `batchSize` × `maxBatches` updates, the newest per node).
final class CoordinateBatcher: Sendable {
    static let batchSize = 128
    static let maxBatches = 5
    /// Consul's period between batch writes.
    static let defaultPeriod: Duration = .seconds(5)

    private let pending = Mutex<[StateStore.CoordinateKey: NodeCoordinate]>([:])

    init() {}

    func enqueue(_ row: NodeCoordinate) throws(APIError) {
        let accepted = pending.withLock { table -> Bool in
            let key = StateStore.CoordinateKey(node: StateStore.nodeKey(row.node), segment: row.segment)
            guard table[key] != nil || table.count < Self.batchSize * Self.maxBatches else { return false }
            table[key] = row
            return true
        }
        guard accepted else { throw .tooManyRequests("Coordinate update rate limit exceeded, increase SyncCoordinateRateTarget") }
    }

    /// Everything queued, in batches of `batchSize`, ordered by node (deterministic commands).
    func takeBatches() -> [[NodeCoordinate]] {
        let rows = pending.withLock { table -> [NodeCoordinate] in
            defer { table.removeAll() }
            return table.sorted { $0.key < $1.key }.map(\.value)
        }
        return stride(from: 0, to: rows.count, by: Self.batchSize).map { Array(rows[$0..<min($0 + Self.batchSize, rows.count)]) }
    }
}
