import Raft

/// The replicated state machine: Raft hands it committed commands in log order; it applies them to
/// the state store and publishes each new version to readers.
struct ConsulStateMachine: RaftStateMachine {
    private(set) var store: StateStore
    let watch: StateWatch
    let lockDelays: LockDelays

    init(datacenter: String, lockDelays: LockDelays = LockDelays()) {
        store = StateStore(datacenter: datacenter)
        watch = StateWatch(store)
        self.lockDelays = lockDelays
    }

    mutating func apply(_ command: [UInt8], at index: LogIndex) -> [UInt8] {
        let result: StateCommandResult
        do {
            result = store.apply(try StateCommand.decode(command), at: index)
        } catch {
            // Deterministic on every server: an entry this version cannot read changes nothing.
            store.noteApplied(index)
            result = .refused("log entry \(index) is not a command this server understands: \(error)")
        }
        if !store.releasedLocks.isEmpty {
            lockDelays.record(store.releasedLocks)
            store.releasedLocks.removeAll()
        }
        watch.publish(store)
        return result.encoded()
    }

    func snapshot(into sink: SnapshotSink) { store.writeSnapshot(into: sink) }

    mutating func restore(from source: inout SnapshotSource) throws(RaftNodeError) {
        do {
            store = try StateStore(snapshot: &source, datacenter: store.datacenter)
        } catch {
            throw .badSnapshot("state store snapshot: \(error)")
        }
        watch.publish(store)
    }
}

extension StateStore {
    /// 4 added the prepared-queries table, 3 the autopilot and coordinates tables; 2 and 3 are
    /// still read, so a data dir written by an earlier version restores. Anything else is refused.
    static let snapshotVersion: UInt8 = 4
    /// Per readable version: how many table indexes and how many row counts its header holds.
    private static let headerShape: [UInt8: (tables: Int, counts: Int)] = [2: (5, 5), 3: (7, 6), 4: (8, 7)]

    /// A header piece (version, applied index, table indexes, row counts, whether autopilot
    /// settings are stored), then every row of every table as a piece of its own, tables in a
    /// fixed order and rows in key order, the autopilot settings last.
    func writeSnapshot(into sink: SnapshotSink) {
        sink.write { header in
            header.u8(Self.snapshotVersion)
            header.u64(lastIndex)
            header.u32(UInt32(tableIndexes.count))
            for index in tableIndexes { header.u64(index) }
            for count in [nodes.count, services.count, checks.count, kv.count, sessions.count, coordinates.count, preparedQueries.count] {
                header.u32(UInt32(count))
            }
            header.flag(autopilot != nil)
        }
        nodes.forEach { _, node in sink.write { node.encode(into: &$0) }; return true }
        services.forEach { _, service in sink.write { service.encode(into: &$0) }; return true }
        checks.forEach { _, check in sink.write { check.encode(into: &$0) }; return true }
        kv.forEach { _, entry in sink.write { entry.encode(into: &$0) }; return true }
        sessions.forEach { _, session in sink.write { session.encode(into: &$0) }; return true }
        coordinates.forEach { _, row in sink.write { row.encode(into: &$0) }; return true }
        preparedQueries.forEach { _, query in sink.write { query.encode(into: &$0) }; return true }
        if let autopilot { sink.write { autopilot.encode(into: &$0) } }
    }

    init(snapshot source: inout SnapshotSource, datacenter: String) throws(DecodeError) {
        self.init(datacenter: datacenter)
        var header = try source.expect()
        let version = try header.u8()
        guard let shape = Self.headerShape[version] else { throw .invalid("unknown snapshot version \(version)", at: 0) }
        let last = try header.u64()
        let tableCount = Int(try header.u32())
        guard tableCount == shape.tables, tableCount <= StateTable.allCases.count else { throw .invalid("snapshot has \(tableCount) tables", at: 9) }
        var indexes: [UInt64] = []
        for _ in 0..<tableCount { indexes.append(try header.u64()) }
        // Tables an older snapshot did not have start empty, at index 0.
        indexes += [UInt64](repeating: 0, count: StateTable.allCases.count - tableCount)
        var counts: [UInt32] = []
        for _ in 0..<shape.counts { counts.append(try header.u32()) }
        let hasAutopilot = version == 2 ? false : try header.flag()
        guard header.isAtEnd else { throw .invalid("trailing bytes in the snapshot header", at: header.offset) }
        /// Each row is one whole piece.
        func rows<Row>(_ count: UInt32, _ decode: (inout ByteReader) throws(DecodeError) -> Row, into restore: (Row) -> Void) throws(DecodeError) {
            for _ in 0..<count {
                var piece = try source.expect()
                restore(try decode(&piece))
                guard piece.isAtEnd else { throw .invalid("trailing bytes in a snapshot row", at: piece.offset) }
            }
        }
        try rows(counts[0], CatalogNode.decode(from:)) { restoreNode($0) }
        try rows(counts[1], CatalogService.decode(from:)) { restoreService($0) }
        try rows(counts[2], HealthCheck.decode(from:)) { restoreCheck($0) }
        try rows(counts[3], KVEntry.decode(from:)) { restoreKV($0) }
        try rows(counts[4], Session.decode(from:)) { restoreSession($0) }
        if counts.count > 5 { try rows(counts[5], NodeCoordinate.decode(from:)) { restoreCoordinate($0) } }
        if counts.count > 6 { try rows(counts[6], PreparedQuery.decode(from:)) { restorePreparedQuery($0) } }
        if hasAutopilot { try rows(1, StoredAutopilotConfig.decode(from:)) { autopilot = $0 } }
        guard source.isAtEnd else { throw .invalid("rows left over after the snapshot's tables", at: 0) }
        restoreIndexes(indexes, last: last)
    }
}
