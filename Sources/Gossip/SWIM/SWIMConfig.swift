import ConsulCore

/// SWIM timings and sizes. The three profiles are memberlist's `DefaultLANConfig`,
/// `DefaultWANConfig` and `DefaultLocalConfig`, so a pool mixing our nodes and Go ones agrees on
/// how fast failures are detected. Everything is configuration: the core has no built-in profile.
package struct SWIMConfig: Sendable, Equatable {
    /// Time between failure-detection probes (scaled up by local health awareness).
    package var probeInterval: Duration
    /// How long to wait for a direct ack before asking others to probe (not scaled).
    package var probeTimeout: Duration
    /// How many members are asked for an indirect probe.
    package var indirectChecks: Int
    /// Suspicion lasts `suspicionMult × max(1, log10 N) × probeInterval` at least...
    package var suspicionMult: Int
    /// ...and starts at this multiple of that minimum, shrinking with independent confirmations.
    package var suspicionMaxTimeoutMult: Int
    /// A broadcast is sent `retransmitMult × ceil(log10(N + 1))` times.
    package var retransmitMult: Int
    package var gossipInterval: Duration
    /// Members each gossip round sends to.
    package var gossipNodes: Int
    /// Dead members still receive gossip this long (so they can refute) and are then forgotten.
    package var gossipToTheDeadTime: Duration
    /// Full state exchange with one random member this often (scaled above 32 members).
    package var pushPullInterval: Duration
    /// Deadline for a whole TCP exchange (push/pull, reliable message).
    package var tcpTimeout: Duration
    /// Local health score range: probe interval is scaled up to this multiple.
    package var awarenessMaxMultiplier: Int
    /// A dead member's name may be taken by another address after this long; zero never.
    package var deadNodeReclaimTime: Duration
    /// Bytes packed into one gossip datagram before encryption (`UDPBufferSize`).
    package var udpBufferSize: Int
    /// What encryption adds to each datagram (29 for AES-GCM version 1, 0 without a key); the
    /// shell sets it so packed datagrams still fit `udpBufferSize` once sealed.
    package var encryptionOverhead: Int
    /// Skip the TCP fallback ping to members that fail UDP probes.
    package var disableTCPPings: Bool
    /// Named broadcasts (one per member) waiting to be gossiped; beyond this the most-sent are dropped.
    package var maxQueuedBroadcasts: Int
    /// Incoming indirect-probe requests served at once; more are dropped (a flood must not grow memory).
    package var maxRelayedProbes: Int
    /// Extra push/pulls asked for by evidence that our view lags (a member we never heard of
    /// announced, a leave we only half saw, a join just done) run at most this often; zero turns
    /// them off. Without them such a gap waits for the next periodic push/pull (30 s, scaled up
    /// with the pool size), which is where serf's long convergence tails come from.
    package var triggeredSyncInterval: Duration
    /// Our memberlist and delegate protocol ranges, carried in every alive message.
    package var versions: ProtocolVersions

    package init(
        probeInterval: Duration, probeTimeout: Duration, indirectChecks: Int, suspicionMult: Int,
        suspicionMaxTimeoutMult: Int, retransmitMult: Int, gossipInterval: Duration, gossipNodes: Int,
        gossipToTheDeadTime: Duration, pushPullInterval: Duration, tcpTimeout: Duration,
        awarenessMaxMultiplier: Int = 8, deadNodeReclaimTime: Duration = .zero, udpBufferSize: Int = 1400,
        encryptionOverhead: Int = 0, disableTCPPings: Bool = false, maxQueuedBroadcasts: Int = 8192,
        maxRelayedProbes: Int = 256, triggeredSyncInterval: Duration = .seconds(1), versions: ProtocolVersions = .serfDefault
    ) {
        self.probeInterval = probeInterval
        self.probeTimeout = probeTimeout
        self.indirectChecks = indirectChecks
        self.suspicionMult = suspicionMult
        self.suspicionMaxTimeoutMult = suspicionMaxTimeoutMult
        self.retransmitMult = retransmitMult
        self.gossipInterval = gossipInterval
        self.gossipNodes = gossipNodes
        self.gossipToTheDeadTime = gossipToTheDeadTime
        self.pushPullInterval = pushPullInterval
        self.tcpTimeout = tcpTimeout
        self.awarenessMaxMultiplier = awarenessMaxMultiplier
        self.deadNodeReclaimTime = deadNodeReclaimTime
        self.udpBufferSize = udpBufferSize
        self.encryptionOverhead = encryptionOverhead
        self.disableTCPPings = disableTCPPings
        self.maxQueuedBroadcasts = maxQueuedBroadcasts
        self.maxRelayedProbes = maxRelayedProbes
        self.triggeredSyncInterval = triggeredSyncInterval
        self.versions = versions
    }

    /// memberlist `DefaultLANConfig` (Consul's LAN pool, `serf agent -profile=lan`).
    package static let lan = SWIMConfig(
        probeInterval: .seconds(1), probeTimeout: .milliseconds(500), indirectChecks: 3, suspicionMult: 4,
        suspicionMaxTimeoutMult: 6, retransmitMult: 4, gossipInterval: .milliseconds(200), gossipNodes: 3,
        gossipToTheDeadTime: .seconds(30), pushPullInterval: .seconds(30), tcpTimeout: .seconds(10))

    /// memberlist `DefaultWANConfig` (Consul's WAN pool of servers).
    package static let wan = SWIMConfig(
        probeInterval: .seconds(5), probeTimeout: .seconds(3), indirectChecks: 3, suspicionMult: 6,
        suspicionMaxTimeoutMult: 6, retransmitMult: 4, gossipInterval: .milliseconds(500), gossipNodes: 4,
        gossipToTheDeadTime: .seconds(60), pushPullInterval: .seconds(60), tcpTimeout: .seconds(30))

    /// memberlist `DefaultLocalConfig` (loopback; `serf agent -profile=local`).
    package static let local = SWIMConfig(
        probeInterval: .seconds(1), probeTimeout: .milliseconds(200), indirectChecks: 1, suspicionMult: 3,
        suspicionMaxTimeoutMult: 6, retransmitMult: 2, gossipInterval: .milliseconds(100), gossipNodes: 3,
        gossipToTheDeadTime: .seconds(15), pushPullInterval: .seconds(15), tcpTimeout: .seconds(1))

    /// A profile by the name `serf agent -profile` and Consul use.
    package static func profile(named name: String) -> SWIMConfig? {
        switch name {
        case "lan": .lan
        case "wan": .wan
        case "local": .local
        default: nil
        }
    }
}

/// The size-dependent formulas memberlist uses (util.go), in one place so the simulator's checkers
/// compute the same bounds the core does.
package enum SWIMMath {
    /// `suspicionTimeout`: `mult × max(1, log10(max(1, n))) × interval`, the scale truncated to 1/1000.
    package static func suspicionTimeout(mult: Int, nodes: Int, interval: Duration) -> Duration {
        let scale = Swift.max(1.0, log10(Double(Swift.max(1, nodes))))
        let millis = Int64(scale * 1000)
        return .nanoseconds(Int64(mult) * millis * interval.totalNanoseconds / 1000)
    }

    /// `retransmitLimit`: `mult × ceil(log10(n + 1))`.
    package static func retransmitLimit(mult: Int, nodes: Int) -> Int {
        mult * Int(log10(Double(nodes + 1)).rounded(.up))
    }

    /// `pushPullScale`: the interval times `ceil(log2 n − log2 32) + 1` above 32 members.
    package static func pushPullScale(interval: Duration, nodes: Int) -> Duration {
        guard nodes > 32 else { return interval }
        let multiplier = (log2(Double(nodes)) - log2(32.0)).rounded(.up) + 1
        return interval * Int(multiplier)
    }

    /// `remainingSuspicionTime`: how long a suspicion lasts in total after `confirmations` of `k`
    /// expected, floored to whole milliseconds and never below `min`.
    package static func suspicionTimeout(confirmations: Int, expected k: Int, min: Duration, max: Duration) -> Duration {
        let fraction = log(Double(confirmations) + 1) / log(Double(k) + 1)
        let minSeconds = Double(min.totalNanoseconds) / 1e9
        let maxSeconds = Double(max.totalNanoseconds) / 1e9
        let raw = maxSeconds - fraction * (maxSeconds - minSeconds)
        let timeout = Duration.milliseconds(Int64((1000 * raw).rounded(.down)))
        return Swift.max(timeout, min)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
