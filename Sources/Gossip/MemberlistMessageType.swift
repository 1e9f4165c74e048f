/// The first byte of every memberlist message (`messageType` in memberlist's net.go).
package enum MemberlistMessageType: UInt8, Sendable, CaseIterable {
    case ping = 0
    case indirectPing = 1
    case ack = 2
    case suspect = 3
    case alive = 4
    case dead = 5
    case pushPull = 6
    case compound = 7
    case user = 8
    case compress = 9
    case encrypt = 10
    case nack = 11
    case hasCrc = 12
    case error = 13
}

/// A member's state as memberlist gossips it in push/pull (`NodeStateType`, a Go int).
///
/// Kept as the raw number rather than a closed enum: Go passes unknown values through and ignores
/// them when merging, so one odd entry must not make us drop a whole push/pull.
package struct NodeState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    package var rawValue: Int
    package init(rawValue: Int) { self.rawValue = rawValue }

    package static let alive = NodeState(rawValue: 0)
    package static let suspect = NodeState(rawValue: 1)
    package static let dead = NodeState(rawValue: 2)
    package static let left = NodeState(rawValue: 3)

    package var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        default: "state(\(rawValue))"
        }
    }
}

/// The six protocol/delegate version bytes memberlist carries as `Vsn`:
/// `[pmin, pmax, pcur, dmin, dmax, dcur]`. Serf 0.9.4 sends `[1, 5, 2, 2, 5, 5]`.
package struct ProtocolVersions: Hashable, Sendable {
    package var protocolMin: UInt8
    package var protocolMax: UInt8
    package var protocolCurrent: UInt8
    package var delegateMin: UInt8
    package var delegateMax: UInt8
    package var delegateCurrent: UInt8

    package init(
        protocolMin: UInt8, protocolMax: UInt8, protocolCurrent: UInt8,
        delegateMin: UInt8, delegateMax: UInt8, delegateCurrent: UInt8
    ) {
        self.protocolMin = protocolMin
        self.protocolMax = protocolMax
        self.protocolCurrent = protocolCurrent
        self.delegateMin = delegateMin
        self.delegateMax = delegateMax
        self.delegateCurrent = delegateCurrent
    }

    /// What serf 0.9.4 advertises: memberlist 1...5 speaking 2, serf 2...5 speaking 5.
    package static let serfDefault = ProtocolVersions(
        protocolMin: 1, protocolMax: 5, protocolCurrent: 2, delegateMin: 2, delegateMax: 5, delegateCurrent: 5)

    /// Parses a `Vsn` blob; nil when it is shorter than six bytes (Go then treats the peer as old).
    package init?(vsn: [UInt8]) {
        guard vsn.count >= 6 else { return nil }
        self.init(protocolMin: vsn[0], protocolMax: vsn[1], protocolCurrent: vsn[2],
                  delegateMin: vsn[3], delegateMax: vsn[4], delegateCurrent: vsn[5])
    }

    package var vsn: [UInt8] {
        [protocolMin, protocolMax, protocolCurrent, delegateMin, delegateMax, delegateCurrent]
    }
}
