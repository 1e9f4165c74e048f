import ConsulCore

extension RaftNode {
    /// The `raft` section of `consul info`: hashicorp/raft's keys, with its value formats (state
    /// capitalized, last_contact as a Go duration, "0" on the leader, "never" before any contact).
    package func stats() -> [String: String] {
        let state: String
        switch core.role {
        case .leader: state = "Leader"
        case .follower: state = "Follower"
        case .preCandidate, .candidate: state = "Candidate"
        }
        let lastContact: String
        if core.isLeader {
            lastContact = "0"
        } else if let contact = core.lastLeaderContact {
            lastContact = GoDuration.format(clock.now().duration(since: contact))
        } else {
            lastContact = "never"
        }
        return [
            "applied_index": "\(applied)",
            "commit_index": "\(core.commitIndex)",
            // Committed entries handed over by the core and not yet applied (waiting behind writes).
            "fsm_pending": "\(core.appliedIndex > applied ? core.appliedIndex - applied : 0)",
            "last_contact": lastContact,
            "last_log_index": "\(core.log.lastIndex)",
            "last_log_term": "\(core.log.lastTerm)",
            "last_snapshot_index": "\(core.log.snapshotIndex)",
            "last_snapshot_term": "\(core.log.snapshotTerm)",
            "num_peers": "\(core.configuration.voters.filter { $0 != id }.count)",
            "protocol_version": "3",
            "state": state,
            "term": "\(core.term)",
        ]
    }

    /// What the leader knows of each follower (autopilot's server health); empty on followers.
    package struct FollowerHealth: Sendable, Equatable {
        package var matchIndex: LogIndex
        /// Time since the follower last answered; nil if it never has this term.
        package var sinceContact: Duration?
    }

    package func followerHealth() -> [ServerID: FollowerHealth] {
        guard let leadership = core.leadership else { return [:] }
        let now = clock.now()
        return leadership.progress.mapValues { progress in
            FollowerHealth(matchIndex: progress.match, sinceContact: progress.lastContact.map { now.duration(since: $0) })
        }
    }
}
