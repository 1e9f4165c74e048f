import ConsulCore

/// Where a member listens: the raw 4- or 16-byte IP memberlist carries in `Addr` fields, and the port
/// shared by its UDP and TCP listeners.
package struct GossipAddress: Hashable, Sendable, CustomStringConvertible {
    package var ip: [UInt8]
    package var port: UInt16

    package init(ip: [UInt8], port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// Parses `a.b.c.d:port` (IPv4 only; what our tests and the loopback setups use).
    package init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let port = UInt16(parts[1]) else { return nil }
        let octets = parts[0].split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
        guard octets.count == 4 else { return nil }
        self.init(ip: octets, port: port)
    }

    /// The IP alone, as Go prints it (`127.0.0.1`, or hex groups for IPv6).
    package var host: String {
        if ip.count == 4 { return ip.map(String.init).joined(separator: ".") }
        if ip.count == 16 {
            if ip.prefix(12) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] { return ip.suffix(4).map(String.init).joined(separator: ".") }
            return stride(from: 0, to: 16, by: 2).map { String(UInt16(ip[$0]) << 8 | UInt16(ip[$0 + 1]), radix: 16) }.joined(separator: ":")
        }
        return "invalid-ip(\(ip.count) bytes)"
    }

    package var description: String { ip.count == 16 && !host.contains(".") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// One member as this node's SWIM layer knows it (memberlist's `nodeState`).
package struct SWIMNode: Hashable, Sendable {
    package var name: String
    package var address: GossipAddress
    package var meta: [UInt8]
    package var versions: ProtocolVersions
    package var state: NodeState
    package var incarnation: UInt32
    /// When `state` last changed (virtual time in the simulator).
    package var stateChange: Timestamp

    package init(
        name: String, address: GossipAddress, meta: [UInt8], versions: ProtocolVersions, state: NodeState,
        incarnation: UInt32, stateChange: Timestamp
    ) {
        self.name = name
        self.address = address
        self.meta = meta
        self.versions = versions
        self.state = state
        self.incarnation = incarnation
        self.stateChange = stateChange
    }

    package var isDeadOrLeft: Bool { state == .dead || state == .left }

    package var pushState: PushNodeState {
        PushNodeState(name: name, addr: address.ip, port: address.port, meta: meta, incarnation: incarnation, state: state, vsn: versions.vsn)
    }
}

extension ProtocolVersions {
    /// A peer that sent no (or a short) `Vsn`: every version reads as zero, as in Go.
    package static let unknown = ProtocolVersions(
        protocolMin: 0, protocolMax: 0, protocolCurrent: 0, delegateMin: 0, delegateMax: 0, delegateCurrent: 0)
}

/// A TCP stream this node opened (push/pull, fallback ping), named by the core.
package struct OutboundStreamID: Hashable, Sendable, CustomStringConvertible {
    package var raw: UInt64
    package init(_ raw: UInt64) { self.raw = raw }
    package var description: String { "out#\(raw)" }
}

/// A TCP stream a peer opened to us, named by the shell that accepted it.
package struct InboundStreamID: Hashable, Sendable, CustomStringConvertible {
    package var raw: UInt64
    package init(_ raw: UInt64) { self.raw = raw }
    package var description: String { "in#\(raw)" }
}

/// One `join` request, named by the caller so it can match the `joinFinished` effect.
package struct JoinID: Hashable, Sendable, CustomStringConvertible {
    package var raw: UInt64
    package init(_ raw: UInt64) { self.raw = raw }
    package var description: String { "join#\(raw)" }
}

/// Why a stream this node opened did not produce an answer; `message` is what an operator sees in
/// a join error ("No installed keys could decrypt the message", "remote error: ...", ...).
package struct GossipStreamError: Error, Hashable, Sendable, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// How a stream this node opened ended.
package enum StreamOutcome: Hashable, Sendable {
    /// The peer answered with this message.
    case reply(StreamMessage)
    /// The message was written and no answer was expected.
    case sent
    case failed(GossipStreamError)
}

package enum GossipLogLevel: Int, Sendable, Comparable, CustomStringConvertible {
    case debug, info, warn, error

    package static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    package var description: String {
        switch self {
        case .debug: "DEBUG"
        case .info: "INFO"
        case .warn: "WARN"
        case .error: "ERR"
        }
    }
}

/// What the SWIM core is asked to do.
package enum SWIMInput: Sendable {
    /// Time passed; run every timer that is due. Shells call this at `nextWakeup`.
    case tick
    /// A datagram from `from`, already decrypted and unwrapped by `PacketCodec`.
    case packet(from: GossipAddress, messages: [MemberlistMessage])
    /// A peer opened a stream and sent `message`; answer with `replyStream(id, ...)`.
    case inboundStream(InboundStreamID, from: GossipAddress, message: StreamMessage)
    /// The end of a stream this node opened with `openStream`.
    case streamResult(OutboundStreamID, StreamOutcome)
    /// Push/pull with each address (memberlist `Join`); answered by `joinFinished`.
    case join(JoinID, [GossipAddress])
    /// Broadcast our own departure (memberlist `Leave`); answered by `leaveBroadcastFinished`.
    case leave
    /// New node meta (serf tags): bumps the incarnation and broadcasts an alive message.
    case updateMeta([UInt8])
}

/// What the SWIM core asks its shell to do. Messages are encoded (type byte first); the shell packs
/// them with `PacketCodec` (compound when more than one, compression, CRC, encryption).
package enum SWIMEffect: Hashable, Sendable {
    /// One datagram holding these messages; `checksum` asks for the CRC wrapper.
    case sendPacket(to: GossipAddress, messages: [[UInt8]], checksum: Bool)
    /// Open a TCP stream, send `message`, and report back with `streamResult` by `deadline`.
    case openStream(OutboundStreamID, to: GossipAddress, message: StreamMessage, expectsReply: Bool, deadline: Timestamp)
    /// Answer (or with nil just close) a stream a peer opened.
    case replyStream(InboundStreamID, StreamMessage?)
    /// A join finished: how many addresses were synced with, and why the others failed.
    case joinFinished(JoinID, joined: Int, errors: [String])
    /// Our leave message has been gossiped as often as the retransmit limit asks (or nobody is left to tell).
    case leaveBroadcastFinished
    /// A direct probe was answered after `rtt` (for metrics).
    case probeCompleted(node: String, rtt: Duration)
    /// Our own suspicion of `node` ran out and we declared it dead (for metrics, and for the
    /// simulator, which tells a detector's own mistakes from dead news it merely passed on).
    case suspicionExpired(node: String, confirmations: Int)
    case log(GossipLogLevel, String)
}
