import ConsulCore
import Raft

/// Autopilot's settings as Consul stores them in the replicated state (`/v1/operator/autopilot/
/// configuration`). Until one is stored, the servers use their agent configuration's `autopilot {}`
/// block; once stored it wins, as in Consul, so every server's leader acts alike.
struct StoredAutopilotConfig: Equatable, Sendable {
    var settings: AgentConfig.AutopilotConfig
    var indexes: RaftIndexes
}

/// A Vivaldi network coordinate (serf's `coordinate.Coordinate`) as Consul stores and shows it.
struct NetworkCoordinate: Equatable, Sendable {
    /// Always `Self.dimensionality` long in stored coordinates.
    var vec: [Double]
    var error: Double
    var adjustment: Double
    var height: Double

    /// serf's default dimensionality; coordinates of other lengths are refused (Consul: "rejected bad coordinate").
    static let dimensionality = 8

    /// Finite components and the expected length (serf's `IsValid` plus `IsCompatibleWith`).
    var isValid: Bool {
        vec.count == Self.dimensionality && (vec + [error, adjustment, height]).allSatisfy(\.isFinite)
    }
}

/// One row of the `coordinates` table: a node's coordinate in one network segment ("" is the default).
struct NodeCoordinate: Equatable, Sendable {
    var node: String
    var segment: String
    var coord: NetworkCoordinate
}

extension StoredAutopilotConfig {
    func encode(into writer: inout ByteWriter) {
        writer.flag(settings.cleanupDeadServers)
        writer.u64(UInt64(max(settings.lastContactThreshold.totalNanoseconds, 0)))
        writer.u64(UInt64(max(settings.maxTrailingLogs, 0)))
        writer.u64(UInt64(max(settings.minQuorum, 0)))
        writer.u64(UInt64(max(settings.serverStabilizationTime.totalNanoseconds, 0)))
        writer.indexes(indexes)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> StoredAutopilotConfig {
        var settings = AgentConfig.AutopilotConfig()
        settings.cleanupDeadServers = try reader.flag()
        settings.lastContactThreshold = .nanoseconds(Int64(clamping: try reader.u64()))
        settings.maxTrailingLogs = Int(clamping: try reader.u64())
        settings.minQuorum = Int(clamping: try reader.u64())
        settings.serverStabilizationTime = .nanoseconds(Int64(clamping: try reader.u64()))
        return StoredAutopilotConfig(settings: settings, indexes: try reader.indexes())
    }
}

extension NodeCoordinate {
    func encode(into writer: inout ByteWriter) {
        writer.text(node); writer.text(segment)
        writer.u32(UInt32(coord.vec.count))
        for value in coord.vec { writer.u64(value.bitPattern) }
        writer.u64(coord.error.bitPattern); writer.u64(coord.adjustment.bitPattern); writer.u64(coord.height.bitPattern)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> NodeCoordinate {
        let node = try reader.text(), segment = try reader.text()
        let start = reader.offset
        let count = try reader.count()
        guard count == NetworkCoordinate.dimensionality else { throw .invalid("coordinate of \(count) dimensions", at: start) }
        var vec: [Double] = []
        for _ in 0..<count { vec.append(Double(bitPattern: try reader.u64())) }
        let coord = NetworkCoordinate(
            vec: vec, error: Double(bitPattern: try reader.u64()), adjustment: Double(bitPattern: try reader.u64()),
            height: Double(bitPattern: try reader.u64()))
        return NodeCoordinate(node: node, segment: segment, coord: coord)
    }
}
