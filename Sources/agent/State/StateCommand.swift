import Raft

/// A change to the state store: what a write endpoint proposes to Raft and every server applies.
/// Anything that must be the same on every server (session IDs, timestamps) is decided before
/// proposing and carried in the command.
enum StateCommand: Equatable, Sendable {
    /// Consul's catalog register: upsert a node, optionally one service and some checks.
    case register(Registration)
    /// Removes a check, a service (with its checks) or, when both are nil, the node with everything on it.
    case deregister(node: String, serviceID: String?, checkID: String?)
    case kv(KVOperation)
    case createSession(Session)
    case destroySession(id: String)
    /// `/v1/txn`: every operation applied in order on one version, kept only if none fails.
    /// Logged with the `txn` tag when all operations are KV (the format older servers read), else
    /// with `mixedTxn`.
    case txn([TxnOperation])
    /// Stores autopilot's settings; with `cas`, only if the stored ones' ModifyIndex is that (0:
    /// only when none are stored), as Consul's `?cas=`.
    case setAutopilot(AgentConfig.AutopilotConfig, cas: UInt64?)
    /// A batch of node coordinates (the leader flushes what agents sent since the last batch).
    case updateCoordinates([NodeCoordinate])
    /// `PUT /v1/snapshot`: replaces the whole state with a state-store snapshot's data (as
    /// `writeSnapshot` writes it). One log entry, so every server swaps at the same index.
    case restoreState([UInt8])
    /// Creates a prepared query, or replaces the one with its ID when `isUpdate` (refused when
    /// that ID is unknown). Names are checked for uniqueness when applied.
    case setPreparedQuery(PreparedQuery, isUpdate: Bool)
    case deletePreparedQuery(id: String)

    struct Registration: Equatable, Sendable {
        var node: CatalogNode
        var service: CatalogService?
        var checks: [HealthCheck]
    }

    enum KVVerb: Equatable, Sendable {
        case set
        /// Write only if the entry's ModifyIndex equals this (0: only if the key does not exist).
        case cas(UInt64)
        case lock(session: String)
        case unlock(session: String)
        case delete
        case deleteTree
        case deleteCAS(UInt64)
    }

    struct KVOperation: Equatable, Sendable {
        var verb: KVVerb
        var key: String
        var value: [UInt8] = []
        var flags: UInt64 = 0
    }
}

/// What applying a command answers to the client that proposed it.
enum StateCommandResult: Equatable, Sendable {
    case done
    /// CAS and lock operations: whether the write happened.
    case applied(Bool)
    /// The command was valid to propose but refused by the state (e.g. unknown session, node of a
    /// check that is not registered): a client error, answered as 500 with the message like Consul.
    case refused(String)
    /// A transaction's answer: results when it was applied, else every failed operation.
    case txn(TxnOutcome)
}

// MARK: - Binary encoding (the Raft log and snapshots carry these)

/// Named limits for decoding commands from the log; a bad record is an error, never a trap.
enum StateCodecLimits {
    static let maxString = 1 << 20
    static let maxValue = 1 << 20
    static let maxItems = 1 << 16
}

extension ByteWriter {
    mutating func text(_ value: String) { blob(Array(value.utf8)) }

    mutating func texts(_ values: [String]) {
        u32(UInt32(values.count))
        for value in values { text(value) }
    }

    /// Maps are written sorted by key, so equal maps encode to equal bytes.
    mutating func textMap(_ map: [String: String]) {
        u32(UInt32(map.count))
        for key in map.keys.sorted() {
            text(key)
            text(map[key]!)
        }
    }

    mutating func flag(_ value: Bool) { u8(value ? 1 : 0) }

    mutating func indexes(_ value: RaftIndexes) {
        u64(value.createIndex)
        u64(value.modifyIndex)
    }
}

extension ByteReader {
    mutating func text() throws(DecodeError) -> String {
        let start = offset
        let bytes = try blob(limit: StateCodecLimits.maxString)
        guard let value = String(validating: bytes, as: UTF8.self) else { throw .invalid("string is not UTF-8", at: start) }
        return value
    }

    mutating func count() throws(DecodeError) -> Int {
        let start = offset
        let count = Int(try u32())
        guard count <= StateCodecLimits.maxItems else { throw .invalid("\(count) items over limit", at: start) }
        return count
    }

    mutating func texts() throws(DecodeError) -> [String] {
        var result: [String] = []
        for _ in 0..<(try count()) { result.append(try text()) }
        return result
    }

    mutating func textMap() throws(DecodeError) -> [String: String] {
        var result: [String: String] = [:]
        for _ in 0..<(try count()) {
            let key = try text()
            result[key] = try text()
        }
        return result
    }

    mutating func flag() throws(DecodeError) -> Bool { try u8() != 0 }

    mutating func indexes() throws(DecodeError) -> RaftIndexes {
        RaftIndexes(createIndex: try u64(), modifyIndex: try u64())
    }
}

extension CatalogNode {
    func encode(into writer: inout ByteWriter) {
        writer.text(id); writer.text(name); writer.text(address); writer.text(datacenter)
        writer.textMap(taggedAddresses); writer.textMap(meta); writer.indexes(indexes)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> CatalogNode {
        CatalogNode(
            id: try reader.text(), name: try reader.text(), address: try reader.text(), datacenter: try reader.text(),
            taggedAddresses: try reader.textMap(), meta: try reader.textMap(), indexes: try reader.indexes())
    }
}

extension CatalogService {
    func encode(into writer: inout ByteWriter) {
        writer.text(node); writer.text(id); writer.text(name); writer.texts(tags); writer.text(address)
        writer.u32(UInt32(truncatingIfNeeded: port)); writer.textMap(meta)
        writer.u32(UInt32(truncatingIfNeeded: weights.passing)); writer.u32(UInt32(truncatingIfNeeded: weights.warning))
        writer.flag(enableTagOverride); writer.indexes(indexes)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> CatalogService {
        CatalogService(
            node: try reader.text(), id: try reader.text(), name: try reader.text(), tags: try reader.texts(),
            address: try reader.text(), port: Int(try reader.u32()), meta: try reader.textMap(),
            weights: ServiceWeights(passing: Int(try reader.u32()), warning: Int(try reader.u32())),
            enableTagOverride: try reader.flag(), indexes: try reader.indexes())
    }
}

extension HealthCheck {
    func encode(into writer: inout ByteWriter) {
        writer.text(node); writer.text(id); writer.text(name); writer.text(status.rawValue); writer.text(notes)
        writer.text(output); writer.text(serviceID); writer.text(serviceName); writer.texts(serviceTags)
        writer.text(type); writer.text(interval); writer.text(timeout); writer.indexes(indexes)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> HealthCheck {
        let node = try reader.text(), id = try reader.text(), name = try reader.text()
        let statusStart = reader.offset
        guard let status = HealthStatus(rawValue: try reader.text()) else { throw .invalid("unknown check status", at: statusStart) }
        return HealthCheck(
            node: node, id: id, name: name, status: status, notes: try reader.text(), output: try reader.text(),
            serviceID: try reader.text(), serviceName: try reader.text(), serviceTags: try reader.texts(),
            type: try reader.text(), interval: try reader.text(), timeout: try reader.text(), indexes: try reader.indexes())
    }
}

extension KVEntry {
    func encode(into writer: inout ByteWriter) {
        writer.text(key); writer.u64(flags); writer.blob(value); writer.u64(lockIndex)
        writer.flag(session != nil); writer.text(session ?? ""); writer.indexes(indexes)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> KVEntry {
        let key = try reader.text(), flags = try reader.u64(), value = try reader.blob(limit: StateCodecLimits.maxValue)
        let lockIndex = try reader.u64(), hasSession = try reader.flag(), session = try reader.text()
        return KVEntry(key: key, flags: flags, value: value, lockIndex: lockIndex, session: hasSession ? session : nil, indexes: try reader.indexes())
    }
}

extension Session {
    func encode(into writer: inout ByteWriter) {
        writer.text(id); writer.text(name); writer.text(node); writer.texts(nodeChecks)
        writer.u64(UInt64(max(lockDelay.totalNanoseconds, 0))); writer.text(behavior.rawValue); writer.text(ttl)
        writer.indexes(indexes)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> Session {
        let id = try reader.text(), name = try reader.text(), node = try reader.text(), nodeChecks = try reader.texts()
        let lockDelay = Duration.nanoseconds(Int64(clamping: try reader.u64()))
        let behaviorStart = reader.offset
        guard let behavior = SessionBehavior(rawValue: try reader.text()) else { throw .invalid("unknown session behavior", at: behaviorStart) }
        return Session(id: id, name: name, node: node, nodeChecks: nodeChecks, lockDelay: lockDelay, behavior: behavior, ttl: try reader.text(), indexes: try reader.indexes())
    }
}

extension StateCommand {
    private enum Tag: UInt8 {
        case register = 1, deregister, kv, createSession, destroySession, txn, setAutopilot, updateCoordinates, restoreState, setPreparedQuery, deletePreparedQuery
        /// A transaction with catalog or session operations: each operation carries its kind.
        case mixedTxn
    }

    func encoded() -> [UInt8] {
        var writer = ByteWriter()
        switch self {
        case .register(let registration):
            writer.u8(Tag.register.rawValue)
            registration.node.encode(into: &writer)
            writer.flag(registration.service != nil)
            registration.service?.encode(into: &writer)
            writer.u32(UInt32(registration.checks.count))
            for check in registration.checks { check.encode(into: &writer) }
        case .deregister(let node, let serviceID, let checkID):
            writer.u8(Tag.deregister.rawValue)
            writer.text(node)
            writer.flag(serviceID != nil); writer.text(serviceID ?? "")
            writer.flag(checkID != nil); writer.text(checkID ?? "")
        case .kv(let operation):
            writer.u8(Tag.kv.rawValue)
            switch operation.verb {
            case .set: writer.u8(0); writer.u64(0)
            case .cas(let index): writer.u8(1); writer.u64(index)
            case .lock(let session): writer.u8(2); writer.text(session)
            case .unlock(let session): writer.u8(3); writer.text(session)
            case .delete: writer.u8(4); writer.u64(0)
            case .deleteTree: writer.u8(5); writer.u64(0)
            case .deleteCAS(let index): writer.u8(6); writer.u64(index)
            }
            writer.text(operation.key); writer.blob(operation.value); writer.u64(operation.flags)
        case .createSession(let session):
            writer.u8(Tag.createSession.rawValue)
            session.encode(into: &writer)
        case .destroySession(let id):
            writer.u8(Tag.destroySession.rawValue)
            writer.text(id)
        case .txn(let operations) where TxnOperation.areAllKV(operations):
            writer.u8(Tag.txn.rawValue)
            writer.u32(UInt32(operations.count))
            for case .kv(let operation) in operations { operation.encode(into: &writer) }
        case .txn(let operations):
            writer.u8(Tag.mixedTxn.rawValue)
            writer.u32(UInt32(operations.count))
            for operation in operations { operation.encode(into: &writer) }
        case .setAutopilot(let settings, let cas):
            writer.u8(Tag.setAutopilot.rawValue)
            StoredAutopilotConfig(settings: settings, indexes: RaftIndexes(createIndex: 0, modifyIndex: 0)).encode(into: &writer)
            writer.flag(cas != nil); writer.u64(cas ?? 0)
        case .updateCoordinates(let coordinates):
            writer.u8(Tag.updateCoordinates.rawValue)
            writer.u32(UInt32(coordinates.count))
            for coordinate in coordinates { coordinate.encode(into: &writer) }
        case .restoreState(let data):
            writer.u8(Tag.restoreState.rawValue)
            writer.blob(data)
        case .setPreparedQuery(let query, let isUpdate):
            writer.u8(Tag.setPreparedQuery.rawValue)
            query.encode(into: &writer)
            writer.flag(isUpdate)
        case .deletePreparedQuery(let id):
            writer.u8(Tag.deletePreparedQuery.rawValue)
            writer.text(id)
        }
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(DecodeError) -> StateCommand {
        var reader = ByteReader(bytes)
        guard let tag = Tag(rawValue: try reader.u8()) else { throw .invalid("unknown command tag", at: 0) }
        let command: StateCommand
        switch tag {
        case .register:
            let node = try CatalogNode.decode(from: &reader)
            let service = try reader.flag() ? try CatalogService.decode(from: &reader) : nil
            var checks: [HealthCheck] = []
            for _ in 0..<(try reader.count()) { checks.append(try HealthCheck.decode(from: &reader)) }
            command = .register(Registration(node: node, service: service, checks: checks))
        case .deregister:
            let node = try reader.text()
            let hasService = try reader.flag(), serviceID = try reader.text()
            let hasCheck = try reader.flag(), checkID = try reader.text()
            command = .deregister(node: node, serviceID: hasService ? serviceID : nil, checkID: hasCheck ? checkID : nil)
        case .kv:
            let verbStart = reader.offset
            let verb: KVVerb
            switch try reader.u8() {
            case 0: _ = try reader.u64(); verb = .set
            case 1: verb = .cas(try reader.u64())
            case 2: verb = .lock(session: try reader.text())
            case 3: verb = .unlock(session: try reader.text())
            case 4: _ = try reader.u64(); verb = .delete
            case 5: _ = try reader.u64(); verb = .deleteTree
            case 6: verb = .deleteCAS(try reader.u64())
            default: throw .invalid("unknown KV verb", at: verbStart)
            }
            command = .kv(KVOperation(verb: verb, key: try reader.text(), value: try reader.blob(limit: StateCodecLimits.maxValue), flags: try reader.u64()))
        case .createSession:
            command = .createSession(try Session.decode(from: &reader))
        case .destroySession:
            command = .destroySession(id: try reader.text())
        case .txn:
            var operations: [TxnOperation] = []
            for _ in 0..<(try reader.count()) { operations.append(.kv(try TxnKVOperation.decode(from: &reader))) }
            command = .txn(operations)
        case .mixedTxn:
            var operations: [TxnOperation] = []
            for _ in 0..<(try reader.count()) { operations.append(try TxnOperation.decode(from: &reader)) }
            command = .txn(operations)
        case .setAutopilot:
            let stored = try StoredAutopilotConfig.decode(from: &reader)
            let hasCAS = try reader.flag(), cas = try reader.u64()
            command = .setAutopilot(stored.settings, cas: hasCAS ? cas : nil)
        case .updateCoordinates:
            var coordinates: [NodeCoordinate] = []
            for _ in 0..<(try reader.count()) { coordinates.append(try NodeCoordinate.decode(from: &reader)) }
            command = .updateCoordinates(coordinates)
        case .restoreState:
            command = .restoreState(try reader.blob(limit: SnapshotArchive.maxStateBytes))
        case .setPreparedQuery:
            command = .setPreparedQuery(try PreparedQuery.decode(from: &reader), isUpdate: try reader.flag())
        case .deletePreparedQuery:
            command = .deletePreparedQuery(id: try reader.text())
        }
        guard reader.isAtEnd else { throw .invalid("trailing bytes after command", at: reader.offset) }
        return command
    }
}

extension StateCommandResult {
    func encoded() -> [UInt8] {
        switch self {
        case .done: return [0]
        case .applied(let value): return [1, value ? 1 : 0]
        case .refused(let message): return [2] + Array(message.utf8)
        case .txn(let outcome):
            var writer = ByteWriter()
            writer.u8(3)
            outcome.encode(into: &writer)
            return writer.bytes
        }
    }

    static func decode(_ bytes: [UInt8]) -> StateCommandResult {
        switch bytes.first {
        case 0: return .done
        case 1: return .applied(bytes.count > 1 && bytes[1] == 1)
        case 2: return .refused(String(decoding: bytes.dropFirst(), as: UTF8.self))
        case 3:
            var reader = ByteReader(bytes)
            do {
                _ = try reader.u8()
                return .txn(try TxnOutcome.decode(from: &reader))
            } catch {
                return .refused("unreadable transaction result: \(error)")
            }
        default: return .refused("unreadable result from the state machine")
        }
    }
}
