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

    func snapshot() -> [UInt8] { store.snapshotBytes() }

    mutating func restore(_ data: [UInt8]) throws(RaftNodeError) {
        do {
            store = try StateStore(snapshot: data, datacenter: store.datacenter)
        } catch {
            throw .badSnapshot("state store snapshot: \(error)")
        }
        watch.publish(store)
    }
}

extension StateStore {
    private static let snapshotVersion: UInt8 = 1

    /// Every table, written in key order, with the table indexes.
    func snapshotBytes() -> [UInt8] {
        var writer = ByteWriter()
        writer.u8(Self.snapshotVersion)
        writer.u64(lastIndex)
        writer.u32(UInt32(tableIndexes.count))
        for index in tableIndexes { writer.u64(index) }
        writer.u32(UInt32(nodes.count))
        nodes.forEach { _, node in node.encode(into: &writer); return true }
        writer.u32(UInt32(services.count))
        services.forEach { _, service in service.encode(into: &writer); return true }
        writer.u32(UInt32(checks.count))
        checks.forEach { _, check in check.encode(into: &writer); return true }
        writer.u32(UInt32(kv.count))
        kv.forEach { _, entry in entry.encode(into: &writer); return true }
        writer.u32(UInt32(sessions.count))
        sessions.forEach { _, session in session.encode(into: &writer); return true }
        return writer.bytes
    }

    init(snapshot bytes: [UInt8], datacenter: String) throws(DecodeError) {
        self.init(datacenter: datacenter)
        var reader = ByteReader(bytes)
        guard try reader.u8() == Self.snapshotVersion else { throw .invalid("unknown snapshot version", at: 0) }
        let last = try reader.u64()
        let tableCount = Int(try reader.u32())
        guard tableCount == StateTable.allCases.count else { throw .invalid("snapshot has \(tableCount) tables", at: 9) }
        var indexes: [UInt64] = []
        for _ in 0..<tableCount { indexes.append(try reader.u64()) }
        for _ in 0..<(try reader.u32()) { restoreNode(try CatalogNode.decode(from: &reader)) }
        for _ in 0..<(try reader.u32()) { restoreService(try CatalogService.decode(from: &reader)) }
        for _ in 0..<(try reader.u32()) { restoreCheck(try HealthCheck.decode(from: &reader)) }
        for _ in 0..<(try reader.u32()) { restoreKV(try KVEntry.decode(from: &reader)) }
        for _ in 0..<(try reader.u32()) { restoreSession(try Session.decode(from: &reader)) }
        guard reader.isAtEnd else { throw .invalid("trailing bytes after snapshot", at: reader.offset) }
        restoreIndexes(indexes, last: last)
    }
}
