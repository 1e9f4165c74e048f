/// Where a request is answered. Decided in exactly one place, so endpoints never forward by
/// themselves and forwarded requests meet the same ACL gate on the server that answers them.
enum ForwardDecision: Equatable, Sendable {
    /// Answer from this agent's state.
    case local
    /// Send to this datacenter's leader.
    case leader
    /// Send to a server of another datacenter (WAN federation).
    case datacenter(String)
}

/// What the forwarder needs to know about this agent.
struct ForwardingState: Equatable, Sendable {
    var datacenter: String
    var isServer: Bool
    var isLeader: Bool
    var knownLeader: Bool
}

enum Forwarder {
    /// `isWrite`: the endpoint changes state (always the leader's job).
    static func decide(datacenter: String, consistency: Consistency, isWrite: Bool, state: ForwardingState) throws(APIError) -> ForwardDecision {
        if datacenter != state.datacenter { return .datacenter(datacenter) }
        guard state.isServer else { return .leader }
        if !isWrite && consistency == .stale { return .local }
        if state.isLeader { return .local }
        guard state.knownLeader else { throw .noLeader }
        return .leader
    }
}
