import ConsulCore
import Synchronization

/// Consul's lock-delay: when a session is invalidated (destroyed, expired, or its node or checks
/// failed) while holding locks, those keys cannot be acquired again for the session's
/// `LockDelay` (15 s by default), so a holder that merely lost contact can notice before someone
/// else takes over. A plain `?release` sets no delay. Like Consul, this is per-server memory, not
/// replicated state: every server records it when it applies the invalidation, and the leader
/// checks it before proposing an acquire.
final class LockDelays: Sendable {
    private let clock: any MonotonicClock
    private let deadlines = Mutex<[String: Timestamp]>([:])
    /// Keys tracked at once; beyond it expired entries are dropped first (bounded memory).
    static let maxTracked = 65_536

    init(clock: any MonotonicClock = SystemMonotonicClock()) {
        self.clock = clock
    }

    func record(_ released: [(key: String, delay: Duration)]) {
        guard !released.isEmpty else { return }
        let now = clock.now()
        deadlines.withLock { deadlines in
            if deadlines.count + released.count > Self.maxTracked {
                deadlines = deadlines.filter { $0.value > now }
            }
            for (key, delay) in released where delay > .zero && deadlines.count < Self.maxTracked {
                let until = now + delay
                if until > deadlines[key] ?? now { deadlines[key] = until }
            }
        }
    }

    /// True while `key` may not be acquired.
    func isDelayed(_ key: String) -> Bool {
        let now = clock.now()
        return deadlines.withLock { deadlines in
            guard let until = deadlines[key] else { return false }
            if until <= now {
                deadlines[key] = nil
                return false
            }
            return true
        }
    }
}
