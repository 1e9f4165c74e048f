import ConsulCore
import Synchronization

/// Where a gossip node's log lines go. Injected, never global: the agent passes its logger, tests
/// collect lines, the node runner prints them.
package typealias GossipLogSink = @Sendable (GossipLogLevel, String) -> Void

/// Logs through a sink the lines `accepts` lets through (by default: at or above a minimum level), at most `burst` lines per `interval` for each
/// kind of line, so a peer sending garbage (or a flapping member) cannot flood the log. The kind
/// is the line's first words with digits removed; suppressed lines are counted and reported with
/// the next line of that kind that gets through.
package final class RateLimitedLogger: Sendable {
    /// Asked per line before any work; the agent's answer follows a reloaded `log_level`.
    private let accepts: @Sendable (GossipLogLevel) -> Bool
    package let burst: Int
    package let interval: Duration
    /// Kinds tracked at once; beyond it the table starts over (bounded memory under odd input).
    package static let maxKinds = 512
    private let sink: GossipLogSink
    private let clock: any MonotonicClock
    private let state = Mutex<[String: Window]>([:])

    private struct Window {
        var start: Timestamp
        var count: Int
        var suppressed: Int
    }

    package convenience init(
        minimumLevel: GossipLogLevel = .info, burst: Int = 10, interval: Duration = .seconds(10),
        clock: any MonotonicClock, sink: @escaping GossipLogSink
    ) {
        self.init(accepts: { $0 >= minimumLevel }, burst: burst, interval: interval, clock: clock, sink: sink)
    }

    package init(
        accepts: @escaping @Sendable (GossipLogLevel) -> Bool, burst: Int = 10, interval: Duration = .seconds(10),
        clock: any MonotonicClock, sink: @escaping GossipLogSink
    ) {
        self.accepts = accepts
        self.burst = burst
        self.interval = interval
        self.clock = clock
        self.sink = sink
    }

    package func log(_ level: GossipLogLevel, _ message: String) {
        guard accepts(level) else { return }
        let kind = Self.kind(of: message)
        let now = clock.now()
        let suppressed: Int? = state.withLock { windows in
            if windows.count >= Self.maxKinds && windows[kind] == nil { windows.removeAll() }
            var window = windows[kind] ?? Window(start: now, count: 0, suppressed: 0)
            if now.duration(since: window.start) >= interval {
                window = Window(start: now, count: 0, suppressed: window.suppressed)
            }
            guard window.count < burst else {
                window.suppressed += 1
                windows[kind] = window
                return nil
            }
            window.count += 1
            let report = window.suppressed
            window.suppressed = 0
            windows[kind] = window
            return report
        }
        guard let suppressed else { return }
        sink(level, suppressed > 0 ? "\(message) (\(suppressed) similar lines suppressed)" : message)
    }

    static func kind(of message: String) -> String {
        String(message.prefix(48).filter { !$0.isNumber })
    }
}
