import ConsulCore
import Synchronization

/// Counters a gossip node keeps (memberlist's `memberlist.udp.*`, `memberlist.tcp.*`, decrypt
/// failures, probe round-trip times). A snapshot is a plain value.
package struct GossipMetrics: Sendable, Equatable {
    package var packetsIn = 0
    package var packetsOut = 0
    package var bytesIn = 0
    package var bytesOut = 0
    /// Datagrams and streams that did not decrypt with any installed key.
    package var decryptFailures = 0
    /// Plaintext datagrams and streams refused because a key is set and incoming verification is on.
    package var plaintextDropped = 0
    /// Datagrams and streams that decrypted (or were plaintext) but did not decode.
    package var malformed = 0
    /// Outgoing datagrams dropped because the socket's send queue was full.
    package var sendsDropped = 0
    package var streamsIn = 0
    package var streamsOut = 0
    package var streamBytesIn = 0
    package var streamBytesOut = 0
    /// Streams refused because `GossipNetworkLimits.maxConcurrentStreams` were already open.
    package var streamsRefused = 0
    package var streamFailures = 0
    package var probes = 0
    package var probeRTTTotal: Duration = .zero
    package var probeRTTMax: Duration = .zero
    /// Members our own suspicion timers declared dead.
    package var suspicionsExpired = 0

    package init() {}

    package var probeRTTAverage: Duration? { probes == 0 ? nil : probeRTTTotal / probes }
}

/// The mutable counters behind a lock; cheap enough for every packet.
final class GossipMetricsRecorder: Sendable {
    private let state = Mutex(GossipMetrics())

    func update(_ body: (inout GossipMetrics) -> Void) { state.withLock { body(&$0) } }
    var snapshot: GossipMetrics { state.withLock { $0 } }
}
