import ConsulCore

/// What the layer above SWIM (serf) supplies and hears, memberlist's `Delegate`, `EventDelegate`,
/// `PingDelegate` and `ConflictDelegate` in one value. The SWIM core calls it synchronously while it
/// handles an input; the delegate is a plain value too, so the whole stack stays pure.
package protocol SWIMDelegate {
    /// The payload of our acks (serf: ping version byte + Vivaldi coordinate).
    func ackPayload() -> [UInt8]
    /// A user message (type 8) arrived, by UDP or TCP.
    mutating func notifyMessage(_ payload: [UInt8], now: Timestamp)
    /// Delegate broadcasts to piggy-back: each costs `overhead` plus its length against `limit`.
    mutating func broadcasts(overhead: Int, limit: Int) -> [[UInt8]]
    /// Whether `broadcasts` has anything to give: with nothing queued anywhere, the gossip timer
    /// does not wake the node (memberlist's gossip round would send nothing either).
    var hasBroadcasts: Bool { get }
    /// Delegate state appended to a push/pull.
    func localState(join: Bool) -> [UInt8]
    mutating func mergeRemoteState(_ state: [UInt8], join: Bool, now: Timestamp)
    /// A member became alive (also ourselves at start).
    mutating func notifyJoin(_ node: SWIMNode, now: Timestamp)
    /// A member became dead or left.
    mutating func notifyLeave(_ node: SWIMNode, now: Timestamp)
    /// An alive member's meta changed.
    mutating func notifyUpdate(_ node: SWIMNode, now: Timestamp)
    /// A direct probe of `node` was answered after `rtt` with the responder's ack payload.
    mutating func notifyPingComplete(_ node: SWIMNode, rtt: Duration, payload: [UInt8], now: Timestamp)
    /// Two addresses claim one name; `existing` is the one we keep.
    mutating func notifyConflict(existing: SWIMNode, other: SWIMNode, now: Timestamp)
}

extension SWIMDelegate {
    /// Delegates that do not say are assumed to have something (the gossip timer keeps running).
    package var hasBroadcasts: Bool { true }
}

/// A delegate that ignores everything: SWIM on its own.
package struct NoSWIMDelegate: SWIMDelegate {
    package init() {}
    package func ackPayload() -> [UInt8] { [] }
    package mutating func notifyMessage(_ payload: [UInt8], now: Timestamp) {}
    package mutating func broadcasts(overhead: Int, limit: Int) -> [[UInt8]] { [] }
    package var hasBroadcasts: Bool { false }
    package func localState(join: Bool) -> [UInt8] { [] }
    package mutating func mergeRemoteState(_ state: [UInt8], join: Bool, now: Timestamp) {}
    package mutating func notifyJoin(_ node: SWIMNode, now: Timestamp) {}
    package mutating func notifyLeave(_ node: SWIMNode, now: Timestamp) {}
    package mutating func notifyUpdate(_ node: SWIMNode, now: Timestamp) {}
    package mutating func notifyPingComplete(_ node: SWIMNode, rtt: Duration, payload: [UInt8], now: Timestamp) {}
    package mutating func notifyConflict(existing: SWIMNode, other: SWIMNode, now: Timestamp) {}
}
