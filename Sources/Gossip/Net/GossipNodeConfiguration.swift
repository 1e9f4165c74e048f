import ConsulCore
import ConsulCrypto

/// Bounds the network shell applies, named so tests and operators can see them.
package struct GossipNetworkLimits: Sendable {
    /// TCP streams (ours and peers') open at once; memberlist allows 128 concurrent push/pulls.
    package var maxConcurrentStreams = 128
    /// Joins, key operations and queries the application may wait on at once.
    package var maxPendingRequests = 64
    /// Datagrams read per wake-up of the UDP socket.
    package var datagramsPerRead = 16
    /// Bytes queued on the UDP socket before further sends are dropped (and counted).
    package var udpSendQueueBytes = 512 * 1024
    /// Kernel receive buffer asked for (memberlist asks for 2 MiB).
    package var udpReceiveBufferBytes: Int32 = 2 * 1024 * 1024
    /// Every decoder bound (datagram and stream sizes, decompression, msgpack).
    package var codec = GossipLimits.default

    package init() {}
}

/// Everything a gossip node is started with.
package struct GossipNodeConfiguration: Sendable {
    /// The node name (unique in the pool).
    package var name: String
    /// IP and port of the UDP and TCP listeners; port 0 picks a free port (both use the same one).
    package var bindAddress: GossipAddress
    /// What others are told to use; defaults to the bound address (which must then be specific).
    package var advertiseAddress: GossipAddress?
    package var serf: SerfConfig
    /// Gossip keys (nil: no encryption). See `GossipKeyringFile.resolve` for Consul's precedence.
    package var keyring: Keyring?
    /// Where keyring changes made by key queries are saved (`serf/local.keyring`), if anywhere.
    package var keyringFilePath: String?
    /// Consul `encrypt_verify_incoming`: with a key, refuse plaintext (off while rolling out encryption).
    package var verifyIncoming = true
    /// Consul `encrypt_verify_outgoing`: with a key, encrypt what we send (off while rolling out).
    package var verifyOutgoing = true
    /// LZW-compress datagrams when it makes them smaller, and every stream (memberlist default).
    package var compression = true
    package var limits = GossipNetworkLimits()
    /// serf's snapshot of members and clocks (Consul: `serf/local.snapshot`, WAN
    /// `serf/remote.snapshot` in the data dir; see `GossipSnapshotFile`), if any. With it the node
    /// restores its Lamport clocks at start and offers the members of its last run as
    /// `GossipNode.previousMembers` / `rejoinPrevious()`.
    package var snapshotPath: String?
    /// Consul `rejoin_after_leave` / `-rejoin`: a graceful leave normally empties the snapshot's
    /// member list, so the next start does not rejoin; with this the members are kept.
    package var rejoinAfterLeave = false

    package init(name: String, bindAddress: GossipAddress, serf: SerfConfig = SerfConfig(swim: .lan), keyring: Keyring? = nil) {
        self.name = name
        self.bindAddress = bindAddress
        self.serf = serf
        self.keyring = keyring
    }
}

/// What the application hears from a running node.
package enum GossipNodeEvent: Sendable, Equatable {
    case member(SerfMemberEvent)
    case user(SerfUserEventDelivery)
    /// A query to answer with `GossipNode.respond(to:payload:)` before its deadline.
    case query(SerfIncomingQuery)
    case keyringChanged(Keyring)
}

package typealias GossipEventHandler = @Sendable (GossipNodeEvent) -> Void

package enum GossipNodeError: Error, Equatable, CustomStringConvertible {
    case bindFailed(String)
    case advertiseAddressRequired
    case notRunning
    case tooManyPendingRequests(limit: Int)
    /// No address could be joined; one reason per address, as memberlist words them
    /// ("Failed to join 127.0.0.1: No installed keys could decrypt the message").
    case joinFailed([String])
    case serf(SerfError)
    /// The snapshot file could not be opened or read ("Failed to setup snapshot PATH: reason").
    case snapshotFailed(String)

    package var description: String {
        switch self {
        case .bindFailed(let reason): "cannot bind the gossip listeners: \(reason)"
        case .advertiseAddressRequired: "an advertise address is required when binding to an unspecified address"
        case .notRunning: "the gossip node is not running"
        case .tooManyPendingRequests(let limit): "more than \(limit) gossip requests waiting"
        case .joinFailed(let reasons): reasons.isEmpty ? "no address to join" : reasons.joined(separator: "; ")
        case .serf(let error): error.description
        case .snapshotFailed(let reason): reason
        }
    }
}
