import ConsulCore

/// The vote on who keeps a name two addresses claim (serf `resolveNodeConflict`).
package struct SerfNameConflict: Hashable, Sendable, CustomStringConvertible {
    /// Our name, which the other address claims too.
    package var name: String
    package var ourAddress: GossipAddress
    package var otherAddress: GossipAddress
    /// Members that answered the conflict query, and those that know the name at our address.
    package var responses = 0
    package var matching = 0

    /// serf's rule: we keep the name with a simple majority of the answers. With no answer at all
    /// nobody has spoken against us either, and we keep it (serf would shut down here, which in a
    /// pool of just the two claimants stops both).
    package var kept: Bool { responses == 0 || matching >= responses / 2 + 1 }

    package var description: String {
        "name '\(name)' claimed by \(ourAddress) (us) and \(otherAddress): \(matching) of \(responses) members know it at our address"
    }
}

// Name conflicts (serf.go handleNodeConflict/resolveNodeConflict; the answering side is in
// SerfState+Events handleInternalQuery).
extension SerfState {
    /// Asks the pool whom it knows under our name, unless such a vote is already running.
    mutating func resolveNameConflict(with other: GossipAddress, now: Timestamp) {
        guard !pendingQueries.values.contains(where: { $0.conflict != nil }) else { return }
        let vote = SerfNameConflict(name: localName, ourAddress: localAddress, otherAddress: other)
        do throws(SerfError) {
            _ = try query(
                name: SerfInternalQuery.conflict.rawValue, payload: Array(localName.utf8), parameters: SerfQueryParameters(),
                conflict: vote, now: now)
        } catch {
            log(.error, "Failed to start name resolution query: \(error)")
        }
    }

    /// One answer: the member the responder knows under our name (nil: it knows none, which
    /// still counts as an answer, as in serf).
    func countConflictVote(_ vote: inout SerfNameConflict, payload: [UInt8]) {
        guard payload.first == SerfMessageType.conflictResponse.rawValue, case .conflictResponse(let member)? = try? SerfMessage.decode(payload)
        else { return }
        vote.responses += 1
        if let member, Self.sameIP(member.addr, vote.ourAddress.ip), member.port == vote.ourAddress.port { vote.matching += 1 }
    }

    mutating func concludeNameConflict(_ vote: SerfNameConflict) {
        if vote.responses == 0 {
            log(.warn, "no answers in name conflict resolution for '\(vote.name)', keeping the name")
        } else if vote.kept {
            log(.info, "majority in name conflict resolution [\(vote.matching) / \(vote.responses)]")
        } else {
            log(.warn, "minority in name conflict resolution, quitting [\(vote.matching) / \(vote.responses)]")
        }
        effects.append(.nameConflictResolved(vote))
    }

    /// Go's `net.IP.Equal`: an IPv4 address equals its IPv4-mapped IPv6 form.
    static func sameIP(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        func normalized(_ ip: [UInt8]) -> [UInt8] {
            ip.count == 16 && ip.prefix(12).elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]) ? Array(ip.suffix(4)) : ip
        }
        return normalized(lhs) == normalized(rhs)
    }
}
