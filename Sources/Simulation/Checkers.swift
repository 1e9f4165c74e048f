import ConsulCore
import Raft

/// A safety property that failed, with enough detail to start debugging from the trace.
package struct Violation: Error, Equatable, CustomStringConvertible {
    package var property: String
    package var detail: String

    package init(_ property: String, _ detail: String) {
        self.property = property
        self.detail = detail
    }

    package var description: String { "\(property): \(detail)" }
}

/// Raft's safety properties (Figure 3 of the paper), checked incrementally as servers act, so a
/// check after every simulation step stays cheap.
package struct SafetyChecker {
    /// Election safety: the one leader seen for each term.
    private var leaders: [Term: ServerID] = [:]
    /// Log matching: every entry ever written anywhere, with the term of the entry before it. Two
    /// logs holding the same (index, term) must agree on it and, by induction, on everything before.
    private var written: [LogPosition: (previousTerm: Term?, payload: EntryPayload)] = [:]
    /// Committed entries (state machine safety: never lost, never changed).
    private(set) var committed: [LogIndex: LogEntry] = [:]
    /// The earliest term in which each committed index was known committed. Leader completeness
    /// speaks of leaders of *later* terms only: a leader elected in term 4 by votes cast before an
    /// entry was committed in term 5 need not hold it (it can commit nothing, its followers have
    /// moved on), and a delayed or paused candidate can legitimately win such an election.
    private var committedInTerm: [LogIndex: Term] = [:]
    package private(set) var highestCommitted: LogIndex = 0
    /// State machine digest after applying each index: every replica must pass through the same states.
    private var digests: [LogIndex: UInt64] = [:]

    package init() {}

    /// Election safety: at most one leader per term.
    package mutating func observeLeader(_ server: ServerID, term: Term) throws(Violation) {
        if let existing = leaders[term], existing != server {
            throw Violation("election safety", "term \(term) has two leaders: \(existing) and \(server)")
        }
        leaders[term] = server
    }

    /// Log matching, checked on every entry a server writes.
    package mutating func observeWrite(_ entry: LogEntry, previousTerm: Term?, by server: ServerID) throws(Violation) {
        let position = LogPosition(index: entry.index, term: entry.term)
        if let seen = written[position] {
            if seen.payload != entry.payload {
                throw Violation("log matching", "\(server) wrote \(position) with a different payload than before")
            }
            if let previousTerm, let earlier = seen.previousTerm, previousTerm != earlier {
                throw Violation("log matching", "\(server) has \(position) after term \(previousTerm), another server after term \(earlier)")
            }
            if seen.previousTerm == nil, let previousTerm { written[position] = (previousTerm, entry.payload) }
        } else {
            written[position] = (previousTerm, entry.payload)
        }
    }

    /// Called with an entry a server considers committed (its commit index covers it) while in `term`.
    package mutating func observeCommitted(_ entry: LogEntry, by server: ServerID, inTerm term: Term) throws(Violation) {
        committedInTerm[entry.index] = min(committedInTerm[entry.index] ?? term, term)
        if let known = committed[entry.index] {
            if known != entry {
                throw Violation(
                    "state machine safety",
                    "\(server) committed \(entry.index)@\(entry.term) but \(known.index)@\(known.term) was committed there before")
            }
        } else {
            committed[entry.index] = entry
            highestCommitted = max(highestCommitted, entry.index)
        }
    }

    /// Called after a server applied `index` (or restored a snapshot ending there).
    package mutating func observeApplied(index: LogIndex, digest: UInt64, by server: ServerID) throws(Violation) {
        if let known = digests[index] {
            if known != digest {
                throw Violation("state machine safety", "\(server)'s state after applying \(index) differs from another server's")
            }
        } else {
            digests[index] = digest
        }
    }

    /// Leader completeness (§5.4): a leader of term T holds every entry committed in a term before T.
    package func checkLeaderCompleteness(_ log: RaftLog, leader: ServerID, term: Term) throws(Violation) {
        var index = max(log.snapshotIndex, 1)
        while index <= highestCommitted {
            if let entry = committed[index], let when = committedInTerm[index], when < term {
                guard let held = log.term(at: index) else {
                    throw Violation(
                        "leader completeness",
                        "\(leader) leads term \(term) without \(index)@\(entry.term), committed in term \(when) (its last index is \(log.lastIndex))")
                }
                if held != entry.term {
                    throw Violation("leader completeness", "\(leader) (term \(term)) has \(index)@\(held), committed was \(index)@\(entry.term)")
                }
            }
            index += 1
        }
    }
}

/// One client operation on a single-key register.
package struct RegisterOperation: Equatable, CustomStringConvertible {
    package enum Kind: Equatable {
        case put(UInt64)
        case cas(expected: UInt64, new: UInt64)
        case get
    }

    package enum Outcome: Equatable {
        case ok
        case cas(succeeded: Bool)
        case value(UInt64)
        /// No answer (timeout, crash): it may or may not have taken effect.
        case unknown
    }

    package var kind: Kind
    package var invoked: Timestamp
    /// nil while (or forever, if) no answer came.
    package var completed: Timestamp?
    package var outcome: Outcome

    package init(kind: Kind, invoked: Timestamp, completed: Timestamp?, outcome: Outcome) {
        self.kind = kind
        self.invoked = invoked
        self.completed = completed
        self.outcome = outcome
    }

    package var description: String {
        let end = completed.map { "\($0)" } ?? "∞"
        return "\(kind) → \(outcome) [\(invoked), \(end)]"
    }
}

/// Linearizability of a single register with put / CAS / get (Wing & Gong search with memoization
/// of (linearized set, value), as in Lowe's and Porcupine's checkers). Histories are kept small per
/// key, so the exponential worst case stays far away. Ops with unknown outcome may take effect at
/// any point after their invocation, or never.
package enum LinearizabilityChecker {
    /// More operations per key than this are refused rather than checked slowly.
    package static let maxOperationsPerKey = 20

    package static func check(_ history: [RegisterOperation], initial: UInt64 = 0) -> Bool {
        // Reads without an answer say nothing; drop them.
        let ops = history.filter { !($0.kind == .get && $0.completed == nil) }
        precondition(ops.count <= maxOperationsPerKey, "history too long to check")
        let full: UInt64 = ops.count == 64 ? .max : (1 << UInt64(ops.count)) - 1
        var mustLinearize: UInt64 = 0
        for (index, op) in ops.enumerated() where op.completed != nil { mustLinearize |= 1 << UInt64(index) }
        var seen = Set<SearchState>()
        var stack: [SearchState] = [SearchState(done: 0, value: initial)]
        while let state = stack.popLast() {
            if state.done & mustLinearize == mustLinearize { return true }
            // An op may go next only if no pending op finished before it started.
            var earliestCompletion = Timestamp(nanoseconds: .max)
            for (index, op) in ops.enumerated() where state.done & (1 << UInt64(index)) == 0 {
                if let completed = op.completed, completed < earliestCompletion { earliestCompletion = completed }
            }
            for (index, op) in ops.enumerated() where state.done & (1 << UInt64(index)) == 0 {
                guard op.invoked <= earliestCompletion else { continue }
                guard let value = step(op, from: state.value) else { continue }
                let next = SearchState(done: (state.done | (1 << UInt64(index))) & full, value: value)
                if seen.insert(next).inserted { stack.append(next) }
            }
        }
        return false
    }

    private struct SearchState: Hashable {
        var done: UInt64
        var value: UInt64
    }

    /// The register's value after `op` if its recorded outcome is possible from `value`, else nil.
    private static func step(_ op: RegisterOperation, from value: UInt64) -> UInt64? {
        switch (op.kind, op.outcome) {
        case (.put(let new), .ok), (.put(let new), .unknown):
            return new
        case (.cas(let expected, let new), .cas(let succeeded)):
            if succeeded { return value == expected ? new : nil }
            return value != expected ? value : nil
        case (.cas(let expected, let new), .unknown):
            return value == expected ? new : value
        case (.get, .value(let read)):
            return read == value ? value : nil
        default:
            return nil
        }
    }
}
