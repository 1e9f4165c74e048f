import ConsulCore
import Synchronization

/// When each TTL session must be renewed by. Kept by the server that answers renewals; the leader
/// destroys sessions whose deadline (twice the TTL, as Consul allows) has passed. A new leader
/// starts every known TTL session's clock afresh, so a leadership change never expires a session
/// early.
final class SessionTimers: Sendable {
    private let clock: any MonotonicClock
    private let deadlines = Mutex<[String: Timestamp]>([:])

    init(clock: any MonotonicClock) {
        self.clock = clock
    }

    func renewed(_ id: String, ttl: String) {
        guard !ttl.isEmpty, let duration = try? GoDuration.parse(ttl) else { return }
        let deadline = clock.now() + duration * 2
        deadlines.withLock { $0[id] = deadline }
    }

    func forget(_ id: String) {
        _ = deadlines.withLock { $0.removeValue(forKey: id) }
    }

    /// Sessions with a TTL that have no deadline yet (created under another leader) get one;
    /// returns those whose deadline has passed.
    func expired(among sessions: [Session]) -> [String] {
        let now = clock.now()
        return deadlines.withLock { deadlines in
            var expired: [String] = []
            let live = Set(sessions.map(\.id))
            for id in deadlines.keys where !live.contains(id) { deadlines[id] = nil }
            for session in sessions where !session.ttl.isEmpty {
                guard let deadline = deadlines[session.id] else {
                    if let ttl = try? GoDuration.parse(session.ttl) { deadlines[session.id] = now + ttl * 2 }
                    continue
                }
                if deadline <= now { expired.append(session.id) }
            }
            return expired
        }
    }
}
