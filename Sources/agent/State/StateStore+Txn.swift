import Raft

/// One KV operation of a `/v1/txn` transaction, with Consul's verbs.
struct TxnOperation: Equatable, Sendable {
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

struct TxnError: Equatable, Sendable {
    var opIndex: Int
    var what: String
}

/// What a transaction answers: its results when every operation succeeded, else only the errors
/// (and nothing was applied).
struct TxnOutcome: Equatable, Sendable {
    var results: [KVEntry] = []
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
            switch runTxnOperation(operation, at: index) {
            case .success(let entries): outcome.results += entries
            case .failure(let error): outcome.errors.append(TxnError(opIndex: position, what: error.what))
            }
        }
        if !outcome.errors.isEmpty { outcome.results = [] }
        return outcome
    }

    private struct OperationFailed: Error { var what: String }

    /// One operation; its results carry no value except for reads (Consul blanks them for writes).
    private mutating func runTxnOperation(_ op: TxnOperation, at index: UInt64) -> Result<[KVEntry], OperationFailed> {
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

    private mutating func put(_ op: TxnOperation, existing: KVEntry?, session: String?, lockIndex: UInt64, at index: UInt64) {
        let indexes = RaftIndexes(createIndex: existing?.indexes.createIndex ?? index, modifyIndex: index)
        kv.set(op.key, KVEntry(key: op.key, flags: op.flags, value: op.value, lockIndex: lockIndex, session: session, indexes: indexes))
        touch(.kv, at: index)
    }
}

// MARK: - Binary encoding (Raft log and results)

extension TxnOperation {
    /// A verb is logged as its position here: append new verbs, never reorder.
    private static let verbs = Verb.allCases

    func encode(into writer: inout ByteWriter) {
        writer.u8(UInt8(Self.verbs.firstIndex(of: verb)!))
        writer.text(key); writer.blob(value); writer.u64(flags); writer.u64(index); writer.text(session)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> TxnOperation {
        let verbStart = reader.offset
        let code = Int(try reader.u8())
        guard code < verbs.count else { throw .invalid("unknown transaction verb", at: verbStart) }
        return TxnOperation(
            verb: verbs[code], key: try reader.text(), value: try reader.blob(limit: StateCodecLimits.maxValue),
            flags: try reader.u64(), index: try reader.u64(), session: try reader.text())
    }
}

extension TxnOutcome {
    func encode(into writer: inout ByteWriter) {
        writer.u32(UInt32(results.count))
        for entry in results { entry.encode(into: &writer) }
        writer.u32(UInt32(errors.count))
        for error in errors {
            writer.u32(UInt32(error.opIndex))
            writer.text(error.what)
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> TxnOutcome {
        var outcome = TxnOutcome()
        for _ in 0..<(try reader.count()) { outcome.results.append(try KVEntry.decode(from: &reader)) }
        for _ in 0..<(try reader.count()) {
            outcome.errors.append(TxnError(opIndex: Int(try reader.u32()), what: try reader.text()))
        }
        return outcome
    }
}
