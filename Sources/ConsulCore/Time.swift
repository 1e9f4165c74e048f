#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A point on a monotonic clock, in nanoseconds from an arbitrary origin.
///
/// Pure cores never read a clock: the shell passes `now` into every input, and the simulator passes
/// virtual time that starts at zero. Deadlines inside the cores are `Timestamp`s, spans are `Duration`s.
public struct Timestamp: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) {
        self.nanoseconds = nanoseconds
    }

    public static let zero = Timestamp(nanoseconds: 0)

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    /// The later instant; negative spans are clamped at the origin rather than trapping.
    public static func + (lhs: Timestamp, rhs: Duration) -> Timestamp {
        let delta = rhs.totalNanoseconds
        if delta >= 0 {
            let (sum, overflow) = lhs.nanoseconds.addingReportingOverflow(UInt64(delta))
            return Timestamp(nanoseconds: overflow ? .max : sum)
        }
        let magnitude = UInt64(delta.magnitude)
        return Timestamp(nanoseconds: lhs.nanoseconds > magnitude ? lhs.nanoseconds - magnitude : 0)
    }

    public static func - (lhs: Timestamp, rhs: Duration) -> Timestamp {
        lhs + (.zero - rhs)
    }

    /// The span from `earlier` to `self`; negative when `earlier` is in fact later.
    public func duration(since earlier: Timestamp) -> Duration {
        if nanoseconds >= earlier.nanoseconds {
            return .nanoseconds(Int64(clamping: nanoseconds - earlier.nanoseconds))
        }
        return .zero - .nanoseconds(Int64(clamping: earlier.nanoseconds - nanoseconds))
    }

    public var description: String {
        let seconds = nanoseconds / 1_000_000_000
        let millis = (nanoseconds / 1_000_000) % 1000
        return "t+\(seconds).\(String(millis).leftPadded(to: 3, with: "0"))s"
    }
}

extension Duration {
    /// Whole nanoseconds, clamped to the `Int64` range (about ±292 years).
    public var totalNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let fromSeconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if fromSeconds.overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow) = fromSeconds.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return sum
    }
}

/// Where shells get `now` from. Injected, never global, so tests can drive time by hand.
public protocol MonotonicClock: Sendable {
    func now() -> Timestamp
}

/// The operating system's monotonic clock (`CLOCK_MONOTONIC`): unaffected by wall-clock changes.
public struct SystemMonotonicClock: MonotonicClock {
    public init() {}

    public func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Timestamp(nanoseconds: UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec))
    }
}

/// A clock that moves only when told to; for tests of shells that take a `MonotonicClock`.
public final class ManualClock: MonotonicClock {
    private let current: Mutex<Timestamp>

    public init(start: Timestamp = .zero) {
        current = Mutex(start)
    }

    public func now() -> Timestamp {
        current.withLock { $0 }
    }

    /// Moves time forward; a negative span is ignored because monotonic time never goes back.
    public func advance(by span: Duration) {
        guard span > .zero else { return }
        current.withLock { $0 = $0 + span }
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character) -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
