import Raft

/// Autopilot settings and network coordinates: their writes (called by `apply`) and reads.
extension StateStore {
    mutating func setAutopilot(_ settings: AgentConfig.AutopilotConfig, cas: UInt64?, at index: UInt64) -> StateCommandResult {
        // Consul's CAS: the stored ModifyIndex must match; 0 matches only "nothing stored yet".
        if let cas, (autopilot?.indexes.modifyIndex ?? 0) != cas { return .applied(false) }
        let created = autopilot?.indexes.createIndex ?? index
        autopilot = StoredAutopilotConfig(settings: settings, indexes: RaftIndexes(createIndex: created, modifyIndex: index))
        touch(.autopilot, at: index)
        return cas == nil ? .done : .applied(true)
    }

    /// Coordinates of nodes not (or no longer) in the catalog are skipped, as Consul does: updates
    /// are batched, and the node may have been deregistered meanwhile.
    mutating func updateCoordinates(_ rows: [NodeCoordinate], at index: UInt64) -> StateCommandResult {
        var changed = false
        for row in rows where row.coord.isValid {
            guard let node = nodes[Self.nodeKey(row.node)] else { continue }
            var row = row
            row.node = node.name
            let key = CoordinateKey(node: Self.nodeKey(row.node), segment: row.segment)
            guard coordinates[key] != row else { continue }
            coordinates.set(key, row)
            changed = true
        }
        if changed { touch(.coordinates, at: index) }
        return .done
    }

    /// Deregistering a node deletes its coordinates (every segment).
    mutating func removeCoordinates(nodeKey: String, at index: UInt64) {
        var doomed: [CoordinateKey] = []
        coordinates.forEach(from: CoordinateKey(node: nodeKey, segment: "")) { key, _ in
            guard key.node == nodeKey else { return false }
            doomed.append(key)
            return true
        }
        for key in doomed { coordinates.remove(key) }
        if !doomed.isEmpty { touch(.coordinates, at: index) }
    }

    /// Replaces everything with a snapshot's state. Records keep the indexes they had; every
    /// table's index moves to this entry's, so blocking queries wake and `X-Consul-Index` never
    /// goes back. Data that does not restore changes nothing (the endpoint checked it already).
    mutating func restoreState(_ data: [UInt8], at index: UInt64) -> StateCommandResult {
        var source = SnapshotSource(data)
        do {
            var restored = try StateStore(snapshot: &source, datacenter: datacenter)
            for table in StateTable.allCases { restored.touch(table, at: index) }
            restored.lastIndex = max(lastIndex, index)
            self = restored
            return .done
        } catch {
            return .refused("snapshot state does not restore: \(error)")
        }
    }

    /// Every coordinate, ordered by node then segment; `segment` nil: all segments.
    func allCoordinates(segment: String? = nil) -> [NodeCoordinate] {
        coordinates.values.filter { segment == nil || $0.segment == segment }
    }

    func coordinates(ofNode name: String) -> [NodeCoordinate] {
        let key = Self.nodeKey(name)
        var result: [NodeCoordinate] = []
        coordinates.forEach(from: CoordinateKey(node: key, segment: "")) { rowKey, row in
            guard rowKey.node == key else { return false }
            result.append(row)
            return true
        }
        return result
    }
}
