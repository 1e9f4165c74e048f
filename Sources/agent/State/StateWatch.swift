import Synchronization

/// The current version of the state store, shared between the FSM (which publishes a new version
/// after every applied entry) and every reader (HTTP and DNS handlers on their event loops, which
/// take a version without waiting and read it at leisure).
///
/// Blocking queries register a waiter for the tables they read; a publish that moves any of those
/// tables past the waiter's index wakes it. Nothing else wakes it, so a KV watch sleeps through
/// catalog churn.
final class StateWatch: Sendable {
    /// Blocking queries waiting at once; past this a new one is answered at once (as if it timed out).
    static let maxWaiters = 16_384

    struct Token: Hashable, Sendable { fileprivate let value: UInt64 }

    private struct Waiter {
        var tables: [StateTable]
        var index: UInt64
        var wake: @Sendable () -> Void
    }

    private struct Guarded {
        var store: StateStore
        var waiters: [UInt64: Waiter] = [:]
        var nextToken: UInt64 = 0
    }

    private let guarded: Mutex<Guarded>

    init(_ store: StateStore) {
        guarded = Mutex(Guarded(store: store))
    }

    /// The newest version.
    var current: StateStore { guarded.withLock { $0.store } }

    func publish(_ store: StateStore) {
        let woken: [@Sendable () -> Void] = guarded.withLock { state in
            state.store = store
            guard !state.waiters.isEmpty else { return [] }
            var woken: [@Sendable () -> Void] = []
            for (token, waiter) in state.waiters where store.index(of: waiter.tables) > waiter.index {
                woken.append(waiter.wake)
                state.waiters[token] = nil
            }
            return woken
        }
        for wake in woken { wake() }
    }

    /// Calls `wake` once any of `tables` moves past `index`. Returns nil, without registering, when
    /// that has already happened or too many waiters exist: the caller answers at once then.
    func wait(for tables: [StateTable], beyond index: UInt64, wake: @escaping @Sendable () -> Void) -> Token? {
        guarded.withLock { state in
            guard state.store.index(of: tables) <= index, state.waiters.count < Self.maxWaiters else { return nil }
            state.nextToken += 1
            state.waiters[state.nextToken] = Waiter(tables: tables, index: index, wake: wake)
            return Token(value: state.nextToken)
        }
    }

    /// Forgets a waiter (its request timed out or its connection closed).
    func cancel(_ token: Token) {
        _ = guarded.withLock { $0.waiters.removeValue(forKey: token.value) }
    }
}
