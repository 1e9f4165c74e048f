import Raft

/// One operation of a `/v1/txn` transaction: KV, catalog (node, service, check) or session.
enum TxnOperation: Equatable, Sendable {
    case kv(TxnKVOperation)
    /// `index` is the ModifyIndex that `cas` and `delete-cas` compare with. A node is found by
    /// its ID when it has one, else by name (Consul's rule).
    case node(TxnCatalogVerb, CatalogNode, index: UInt64)
    case service(TxnCatalogVerb, node: String, CatalogService, index: UInt64)
    /// The check names its node.
    case check(TxnCatalogVerb, HealthCheck, index: UInt64)
    /// Consul's only session verb, `delete`: ends the session as `/v1/session/destroy` does.
    case destroySession(id: String)

    /// What changes the store; a transaction of nothing else is a read (no Raft round).
    var isWrite: Bool {
        switch self {
        case .kv(let op): return op.verb.isWrite
        case .node(let verb, _, _), .service(let verb, _, _, _), .check(let verb, _, _): return verb != .get
        case .destroySession: return true
        }
    }
}

/// The verbs of node, service and check operations.
enum TxnCatalogVerb: String, CaseIterable, Sendable {
    case set, cas, get, delete
    case deleteCAS = "delete-cas"
}

/// One KV operation of a `/v1/txn` transaction, with Consul's verbs.
struct TxnKVOperation: Equatable, Sendable {
    enum Verb: String, CaseIterable, Sendable {
        case set, cas, lock, unlock, get
        case getOrEmpty = "get-or-empty"
        case getTree = "get-tree"
        case checkIndex = "check-index"
        case checkSession = "check-session"
        case checkNotExists = "check-not-exists"
        case delete
        case deleteTree = "delete-tree"
        case deleteCAS = "delete-cas"

        /// What changes the store; a transaction of nothing else is a read (no Raft round).
        var isWrite: Bool {
            switch self {
            case .set, .cas, .lock, .unlock, .delete, .deleteTree, .deleteCAS: return true
            case .get, .getOrEmpty, .getTree, .checkIndex, .checkSession, .checkNotExists: return false
            }
        }
    }

    var verb: Verb
    var key: String
    var value: [UInt8] = []
    var flags: UInt64 = 0
    /// The ModifyIndex that `cas`, `delete-cas` and `check-index` compare with.
    var index: UInt64 = 0
    var session: String = ""
}

struct TxnError: Error, Equatable, Sendable {
    var opIndex: Int
    var what: String
}

/// One entry of a transaction's `Results`.
enum TxnResult: Equatable, Sendable {
    case kv(KVEntry)
    case node(CatalogNode)
    case service(CatalogService)
    case check(HealthCheck)
}

/// What a transaction answers: its results when every operation succeeded, else only the errors
/// (and nothing was applied).
struct TxnOutcome: Equatable, Sendable {
    var results: [TxnResult] = []
    var errors: [TxnError] = []
}

extension StateStore {
    /// Runs the operations in order on a draft of this version; the draft replaces it only when no
    /// operation failed, so a transaction is all-or-nothing on every server. Like Consul, every
    /// operation is tried so that all failures are reported, each with its position.
    mutating func applyTxn(_ operations: [TxnOperation], at index: UInt64) -> StateCommandResult {
        var draft = self
        let outcome = draft.runTxn(operations, at: index)
        if outcome.errors.isEmpty { self = draft }
        return .txn(outcome)
    }

    /// A transaction of reads only, answered from this version without Raft.
    func readTxn(_ operations: [TxnOperation]) -> TxnOutcome {
        var draft = self
        return draft.runTxn(operations, at: lastIndex)
    }

    private mutating func runTxn(_ operations: [TxnOperation], at index: UInt64) -> TxnOutcome {
        var outcome = TxnOutcome()
        for (position, operation) in operations.enumerated() {
            let result: Result<[TxnResult], OperationFailed>
            switch operation {
            case .kv(let op): result = runTxnKV(op, at: index).map { $0.map(TxnResult.kv) }
            case .node(let verb, let node, let cas): result = runTxnNode(verb, node, cas: cas, at: index)
            case .service(let verb, let node, let service, let cas): result = runTxnService(verb, node: node, service, cas: cas, at: index)
            case .check(let verb, let check, let cas): result = runTxnCheck(verb, check, cas: cas, at: index)
            case .destroySession(let id):
                // Like `/v1/session/destroy`: an unknown session is no error.
                if sessions[id] != nil { invalidateSession(id, at: index) }
                result = .success([])
            }
            switch result {
            case .success(let entries): outcome.results += entries
            case .failure(let error): outcome.errors.append(TxnError(opIndex: position, what: error.what))
            }
        }
        if !outcome.errors.isEmpty { outcome.results = [] }
        return outcome
    }

    private struct OperationFailed: Error { var what: String }

    /// The five verbs every catalog kind shares, with Consul's state store rules and words: `cas`
    /// with index 0 only creates, and `delete-cas` of a missing object fails (unlike KV's). `what`
    /// names the object as Consul's errors do (`service "web" on node "n1"`).
    private mutating func runCatalogVerb(
        _ verb: TxnCatalogVerb, what: String, existing: (result: TxnResult, indexes: RaftIndexes)?, cas: UInt64,
        set: (inout StateStore) -> Result<[TxnResult], OperationFailed>, delete: (inout StateStore) -> Void
    ) -> Result<[TxnResult], OperationFailed> {
        switch verb {
        case .get:
            guard let existing else { return .failure(OperationFailed(what: "\(what) doesn't exist")) }
            return .success([existing.result])
        case .set:
            return set(&self)
        case .cas:
            guard Self.casMatches(cas, existing?.indexes) else { return .failure(OperationFailed(what: "failed to set \(what), index is stale")) }
            return set(&self)
        case .delete:
            delete(&self)
            return .success([])
        case .deleteCAS:
            guard let existing, existing.indexes.modifyIndex == cas else {
                return .failure(OperationFailed(what: "failed to delete \(what), index is stale"))
            }
            delete(&self)
            return .success([])
        }
    }

    /// A node operation; deleting a node removes its services, checks, sessions and coordinates,
    /// as a catalog deregistration does.
    private mutating func runTxnNode(_ verb: TxnCatalogVerb, _ node: CatalogNode, cas: UInt64, at index: UInt64) -> Result<[TxnResult], OperationFailed> {
        let existing = node.id.isEmpty ? self.node(named: node.name) : nodes.values.first { $0.id == node.id }
        let name = existing?.name ?? node.name
        return runCatalogVerb(verb, what: "node \"\(node.name)\"", existing: existing.map { (.node($0), $0.indexes) }, cas: cas) { store in
            do throws(Refusal) {
                return .success([.node(try store.ensureNode(node, at: index))])
            } catch {
                return .failure(OperationFailed(what: error.message))
            }
        } delete: { store in
            store.deregister(node: name, serviceID: nil, checkID: nil, at: index)
        }
    }

    /// A service operation on the node named `nodeName`; setting one needs the node registered.
    private mutating func runTxnService(
        _ verb: TxnCatalogVerb, node nodeName: String, _ service: CatalogService, cas: UInt64, at index: UInt64
    ) -> Result<[TxnResult], OperationFailed> {
        let nodeKey = Self.nodeKey(nodeName)
        let existing = services[ServiceKey(node: nodeKey, id: service.id)]
        let what = "service \"\(service.id)\" on node \"\(nodeName)\""
        return runCatalogVerb(verb, what: what, existing: existing.map { (.service($0), $0.indexes) }, cas: cas) { store in
            guard let node = store.nodes[nodeKey] else { return .failure(OperationFailed(what: "Missing node registration")) }
            var service = service
            service.node = node.name
            return .success([.service(store.ensureService(service, nodeKey: nodeKey, at: index))])
        } delete: { store in
            store.deregister(node: nodeName, serviceID: service.id, checkID: nil, at: index)
        }
    }

    /// A check operation; setting one needs its node (and its service, when it names one).
    private mutating func runTxnCheck(_ verb: TxnCatalogVerb, _ check: HealthCheck, cas: UInt64, at index: UInt64) -> Result<[TxnResult], OperationFailed> {
        let nodeKey = Self.nodeKey(check.node)
        let key = CheckKey(node: nodeKey, id: check.id)
        let existing = checks[key]
        let what = "check \"\(check.id)\" on node \"\(check.node)\""
        return runCatalogVerb(verb, what: what, existing: existing.map { (.check($0), $0.indexes) }, cas: cas) { store in
            guard let node = store.nodes[nodeKey] else { return .failure(OperationFailed(what: "Missing node registration")) }
            var check = check
            check.node = node.name
            guard let attached = store.withServiceFields(check, nodeKey: nodeKey) else {
                return .failure(OperationFailed(what: "Missing service registration"))
            }
            store.putCheck(attached, nodeKey: nodeKey, at: index)
            return .success(store.checks[key].map { [.check($0)] } ?? [])
        } delete: { store in
            store.deregister(node: check.node, serviceID: nil, checkID: check.id, at: index)
        }
    }

    /// Consul's catalog CAS: index 0 writes only what does not exist yet; any other index only
    /// what exists with that ModifyIndex.
    private static func casMatches(_ cas: UInt64, _ existing: RaftIndexes?) -> Bool {
        guard let existing else { return cas == 0 }
        return cas != 0 && existing.modifyIndex == cas
    }

    /// One KV operation; its results carry no value except for reads (Consul blanks them for writes).
    private mutating func runTxnKV(_ op: TxnKVOperation, at index: UInt64) -> Result<[KVEntry], OperationFailed> {
        let existing = kv[op.key]
        func fail(_ what: String) -> Result<[KVEntry], OperationFailed> { .failure(OperationFailed(what: what)) }
        func written() -> Result<[KVEntry], OperationFailed> {
            guard var entry = kv[op.key] else { return .success([]) }
            entry.value = []
            return .success([entry])
        }
        switch op.verb {
        case .set:
            put(op, existing: existing, session: existing?.session, lockIndex: existing?.lockIndex ?? 0, at: index)
            return written()
        case .cas:
            guard (existing?.indexes.modifyIndex ?? 0) == op.index else { return fail("failed to set key \"\(op.key)\", index is stale") }
            put(op, existing: existing, session: existing?.session, lockIndex: existing?.lockIndex ?? 0, at: index)
            return written()
        case .lock:
            guard !op.session.isEmpty else { return fail("missing session") }
            guard sessions[op.session] != nil else { return fail("invalid session \"\(op.session)\"") }
            if let holder = existing?.session {
                guard holder == op.session else { return fail("failed to lock key \"\(op.key)\", lock is already held") }
                put(op, existing: existing, session: holder, lockIndex: existing?.lockIndex ?? 0, at: index)
            } else {
                put(op, existing: existing, session: op.session, lockIndex: (existing?.lockIndex ?? 0) + 1, at: index)
            }
            return written()
        case .unlock:
            guard !op.session.isEmpty else { return fail("missing session") }
            guard let existing, existing.session == op.session else {
                return fail("failed to unlock key \"\(op.key)\", lock isn't held, or is held by another session")
            }
            put(op, existing: existing, session: nil, lockIndex: existing.lockIndex, at: index)
            return written()
        case .get:
            guard let existing else { return fail("key \"\(op.key)\" doesn't exist") }
            return .success([existing])
        case .getOrEmpty:
            return .success([existing ?? KVEntry(key: op.key, flags: op.flags, value: [], lockIndex: 0, session: nil, indexes: RaftIndexes(createIndex: 0, modifyIndex: 0))])
        case .getTree:
            return .success(kvEntries(prefix: op.key))
        case .checkIndex:
            guard var existing else { return fail("key \"\(op.key)\" doesn't exist") }
            guard existing.indexes.modifyIndex == op.index else {
                return fail("current modify index \(existing.indexes.modifyIndex) != \(op.index)")
            }
            existing.value = []
            return .success([existing])
        case .checkSession:
            guard var existing else { return fail("key \"\(op.key)\" doesn't exist") }
            guard (existing.session ?? "") == op.session else {
                return fail("failed session check for key \"\(op.key)\", current session \"\(existing.session ?? "")\" != \"\(op.session)\"")
            }
            existing.value = []
            return .success([existing])
        case .checkNotExists:
            guard existing == nil else { return fail("key \"\(op.key)\" exists") }
            return .success([])
        case .delete:
            if kv.remove(op.key) != nil { touch(.kv, at: index) }
            return .success([])
        case .deleteTree:
            let doomed = kvEntries(prefix: op.key)
            for entry in doomed { kv.remove(entry.key) }
            if !doomed.isEmpty { touch(.kv, at: index) }
            return .success([])
        case .deleteCAS:
            // Consul: deleting a key that is already gone succeeds whatever the index.
            guard let existing else { return .success([]) }
            guard existing.indexes.modifyIndex == op.index else { return fail("failed to delete key \"\(op.key)\", index is stale") }
            kv.remove(op.key)
            touch(.kv, at: index)
            return .success([])
        }
    }

    private mutating func put(_ op: TxnKVOperation, existing: KVEntry?, session: String?, lockIndex: UInt64, at index: UInt64) {
        let indexes = RaftIndexes(createIndex: existing?.indexes.createIndex ?? index, modifyIndex: index)
        kv.set(op.key, KVEntry(key: op.key, flags: op.flags, value: op.value, lockIndex: lockIndex, session: session, indexes: indexes))
        touch(.kv, at: index)
    }
}

// MARK: - Binary encoding (Raft log and results)

extension TxnKVOperation {
    /// A verb is logged as its position here: append new verbs, never reorder.
    private static let verbs = Verb.allCases

    func encode(into writer: inout ByteWriter) {
        writer.u8(UInt8(Self.verbs.firstIndex(of: verb)!))
        writer.text(key); writer.blob(value); writer.u64(flags); writer.u64(index); writer.text(session)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> TxnKVOperation {
        let verbStart = reader.offset
        let code = Int(try reader.u8())
        guard code < verbs.count else { throw .invalid("unknown transaction verb", at: verbStart) }
        return TxnKVOperation(
            verb: verbs[code], key: try reader.text(), value: try reader.blob(limit: StateCodecLimits.maxValue),
            flags: try reader.u64(), index: try reader.u64(), session: try reader.text())
    }
}

extension TxnCatalogVerb {
    /// Logged as its position here: append new verbs, never reorder.
    private static let codes = allCases

    func encode(into writer: inout ByteWriter) { writer.u8(UInt8(Self.codes.firstIndex(of: self)!)) }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> TxnCatalogVerb {
        let start = reader.offset
        let code = Int(try reader.u8())
        guard code < codes.count else { throw .invalid("unknown catalog transaction verb", at: start) }
        return codes[code]
    }
}

extension TxnOperation {
    /// Each operation of a mixed transaction is logged after a byte naming its kind: append new
    /// kinds, never renumber.
    private enum Kind: UInt8 { case kv = 0, node, service, check, destroySession }

    /// Whether every operation is a KV one: such transactions are logged in the format that came
    /// first, which servers of an older version still read.
    static func areAllKV(_ operations: [TxnOperation]) -> Bool {
        operations.allSatisfy { if case .kv = $0 { return true } else { return false } }
    }

    func encode(into writer: inout ByteWriter) {
        switch self {
        case .kv(let op):
            writer.u8(Kind.kv.rawValue)
            op.encode(into: &writer)
        case .node(let verb, let node, let cas):
            writer.u8(Kind.node.rawValue)
            verb.encode(into: &writer); node.encode(into: &writer); writer.u64(cas)
        case .service(let verb, let node, let service, let cas):
            writer.u8(Kind.service.rawValue)
            verb.encode(into: &writer); writer.text(node); service.encode(into: &writer); writer.u64(cas)
        case .check(let verb, let check, let cas):
            writer.u8(Kind.check.rawValue)
            verb.encode(into: &writer); check.encode(into: &writer); writer.u64(cas)
        case .destroySession(let id):
            writer.u8(Kind.destroySession.rawValue)
            writer.text(id)
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> TxnOperation {
        let start = reader.offset
        guard let kind = Kind(rawValue: try reader.u8()) else { throw .invalid("unknown transaction operation kind", at: start) }
        switch kind {
        case .kv:
            return .kv(try TxnKVOperation.decode(from: &reader))
        case .node:
            return .node(try TxnCatalogVerb.decode(from: &reader), try CatalogNode.decode(from: &reader), index: try reader.u64())
        case .service:
            return .service(
                try TxnCatalogVerb.decode(from: &reader), node: try reader.text(), try CatalogService.decode(from: &reader), index: try reader.u64())
        case .check:
            return .check(try TxnCatalogVerb.decode(from: &reader), try HealthCheck.decode(from: &reader), index: try reader.u64())
        case .destroySession:
            return .destroySession(id: try reader.text())
        }
    }
}

extension TxnResult {
    private enum Kind: UInt8 { case kv = 0, node, service, check }

    func encode(into writer: inout ByteWriter) {
        switch self {
        case .kv(let entry): writer.u8(Kind.kv.rawValue); entry.encode(into: &writer)
        case .node(let node): writer.u8(Kind.node.rawValue); node.encode(into: &writer)
        case .service(let service): writer.u8(Kind.service.rawValue); service.encode(into: &writer)
        case .check(let check): writer.u8(Kind.check.rawValue); check.encode(into: &writer)
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> TxnResult {
        let start = reader.offset
        guard let kind = Kind(rawValue: try reader.u8()) else { throw .invalid("unknown transaction result kind", at: start) }
        switch kind {
        case .kv: return .kv(try KVEntry.decode(from: &reader))
        case .node: return .node(try CatalogNode.decode(from: &reader))
        case .service: return .service(try CatalogService.decode(from: &reader))
        case .check: return .check(try HealthCheck.decode(from: &reader))
        }
    }
}

/// Results are never stored: they go from the state machine to the request that proposed the
/// transaction on the same server, so their format may change between versions.
extension TxnOutcome {
    func encode(into writer: inout ByteWriter) {
        writer.u32(UInt32(results.count))
        for result in results { result.encode(into: &writer) }
        writer.u32(UInt32(errors.count))
        for error in errors {
            writer.u32(UInt32(error.opIndex))
            writer.text(error.what)
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> TxnOutcome {
        var outcome = TxnOutcome()
        for _ in 0..<(try reader.count()) { outcome.results.append(try TxnResult.decode(from: &reader)) }
        for _ in 0..<(try reader.count()) {
            outcome.errors.append(TxnError(opIndex: Int(try reader.u32()), what: try reader.text()))
        }
        return outcome
    }
}
