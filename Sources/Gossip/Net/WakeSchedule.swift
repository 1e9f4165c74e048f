import ConsulCore

/// The record of the one pending timer wake-up of a node whose core several threads drive.
///
/// Each wake-up asked for gets a generation; the timer task carries it, and only the task of the
/// current generation may clear the record when it fires. A task that was replaced (cancelled
/// too late, already running) therefore cannot wipe out the record of its successor, and the node
/// never believes a wake-up is pending when none is.
struct WakeSchedule: Sendable {
    /// When the pending timer fires; nil when none is pending.
    private(set) var pending: Timestamp?
    private(set) var generation: UInt64 = 0

    /// Asks for a wake-up at `wake`: the generation of the timer to start, or nil when one at or
    /// before `wake` is already pending (then no timer is needed).
    mutating func request(_ wake: Timestamp) -> UInt64? {
        if let pending, pending <= wake { return nil }
        generation &+= 1
        pending = wake
        return generation
    }

    /// The timer of `generation` fired: the record clears if it is still the current one.
    mutating func fired(_ generation: UInt64) {
        if generation == self.generation { pending = nil }
    }
}
