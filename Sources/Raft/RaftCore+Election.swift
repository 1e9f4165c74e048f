import ConsulCore

extension RaftCore {
    /// Whether this server may campaign: voters of its latest configuration, and voters of the
    /// configuration before it while that latest one (which removes them) is uncommitted. Without the
    /// second case a leader that stepped down (or crashed) right after appending its own removal can
    /// deadlock the cluster: it holds the most up-to-date log, so the remaining voters cannot win
    /// without it, yet it would not campaign (found by the simulator; its seeds are regression tests
    /// in SimulationTests). Votes are still counted in the latest configuration, which is what
    /// safety rests on.
    var canCampaign: Bool {
        if configuration.isVoter(id) { return true }
        guard configurationIndex > commitIndex, configurationIndex > 0 else { return false }
        return configuration(at: configurationIndex - 1).isVoter(id)
    }

    /// Heard from a live leader less than one (minimum) election timeout ago.
    var inLeaderLease: Bool {
        guard let contact = lastLeaderContact, leader != nil else { return false }
        return now < contact + options.electionTimeout
    }

    mutating func electionTimeoutElapsed() {
        resetElectionTimer()
        guard canCampaign else {
            // Not a voter: forget a leader that went silent so clients are not sent to it forever.
            if case .follower = role, !inLeaderLease { leader = nil }
            return
        }
        startPreVote()
    }

    /// Pre-vote (§9.6): ask whether a majority would vote in term+1, without changing any term.
    mutating func startPreVote() {
        role = .preCandidate(votes: [id])
        leader = nil
        if tallyWon(votes: [id]) {
            startElection(transfer: false)
            return
        }
        let last = log.lastPosition
        for voter in configuration.voters where voter != id {
            send(voter, .preVote(lastLog: last), term: term + 1)
        }
    }

    mutating func startElection(transfer: Bool) {
        term += 1
        votedFor = id
        leader = nil
        lastLeaderContact = nil
        role = .candidate(votes: [id])
        resetElectionTimer()
        if tallyWon(votes: [id]) {
            becomeLeader()
            return
        }
        let last = log.lastPosition
        for voter in configuration.voters where voter != id {
            send(voter, .requestVote(lastLog: last, transfer: transfer))
        }
    }

    func tallyWon(votes: Set<ServerID>) -> Bool {
        let voters = configuration.voters
        return votes.filter { voters.contains($0) }.count >= Self.quorum(voters.count)
    }

    /// §5.4.1: grant only to a candidate whose log is at least as up to date as ours.
    func isUpToDate(_ candidate: LogPosition) -> Bool {
        let ours = log.lastPosition
        return candidate.term > ours.term || (candidate.term == ours.term && candidate.index >= ours.index)
    }

    mutating func becomeFollower(term newTerm: Term, leader newLeader: ServerID?) {
        if newTerm > term {
            term = newTerm
            votedFor = nil
        }
        if let state = leadership {
            failPendingReads(state, error: .leadershipLost)
        }
        leadership = nil
        role = .follower
        leader = newLeader
        resetElectionTimer()
    }

    mutating func becomeLeader() {
        var state = LeaderState(now: now, options: options)
        state.syncProgress(with: configuration, leader: id, lastIndex: log.lastIndex)
        // A no-op in the new term lets the leader commit (and so learn the commit point of) earlier
        // terms' entries, which §5.4.2 forbids committing by counting; reads wait for it too.
        let noop = LogEntry(index: log.lastIndex + 1, term: term, payload: .noop)
        state.termStartIndex = noop.index
        role = .leader
        leadership = state
        leader = id
        lastLeaderContact = now
        appendToLog([noop])
        leaderMaybeCommit()
        broadcastAppend()
    }

    mutating func handlePreVote(_ message: Message, lastLog: LogPosition) {
        // message.term is the term the sender would campaign in.
        let grant = message.term > term && !inLeaderLease && isUpToDate(lastLog)
            && !(isLeader)
        send(message.from, .preVoteResponse(granted: grant), term: grant ? message.term : term)
    }

    mutating func handleRequestVote(_ message: Message, lastLog: LogPosition) {
        // Term was already brought up to message.term by `receive` when it was higher.
        let canVote = votedFor == nil || votedFor == message.from
        let grant = message.term == term && canVote && isUpToDate(lastLog)
        if grant {
            votedFor = message.from
            resetElectionTimer()
        }
        send(message.from, .voteResponse(granted: grant))
    }

    mutating func handlePreVoteResponse(_ message: Message, granted: Bool) {
        guard case .preCandidate(var votes) = role else { return }
        if !granted {
            if message.term > term { becomeFollower(term: message.term, leader: nil) }
            return
        }
        guard message.term == term + 1 else { return }
        votes.insert(message.from)
        role = .preCandidate(votes: votes)
        if tallyWon(votes: votes) { startElection(transfer: false) }
    }

    mutating func handleVoteResponse(_ message: Message, granted: Bool) {
        guard case .candidate(var votes) = role, message.term == term, granted else { return }
        votes.insert(message.from)
        role = .candidate(votes: votes)
        if tallyWon(votes: votes) { becomeLeader() }
    }

    mutating func handleTimeoutNow(_ message: Message) {
        guard canCampaign, !isLeader, message.term == term else { return }
        startElection(transfer: true)
    }

    /// Terms and indices at or above this are rejected as corrupt (2^62: unreachable in practice).
    static var implausible: UInt64 { 1 << 62 }

    /// Term bookkeeping common to every message, then dispatch.
    mutating func receive(_ message: Message) {
        guard message.to == id, message.from != id else { return }
        // No real cluster gets near these; a message claiming so is corrupt or hostile, and adopting
        // it would make `term + 1` (or an index + 1) overflow later.
        guard message.term < Self.implausible, message.payload.largestIndex < Self.implausible else { return }
        switch message.payload {
        case .preVote(let lastLog):
            handlePreVote(message, lastLog: lastLog)
            return
        case .preVoteResponse(let granted):
            handlePreVoteResponse(message, granted: granted)
            return
        default:
            break
        }
        if message.term > term {
            if case .requestVote(_, let transfer) = message.payload, inLeaderLease, !transfer {
                // Leader stickiness: a live leader exists; do not let a disconnected server depose it.
                return
            }
            switch message.payload {
            case .appendEntries, .heartbeat, .installSnapshot, .timeoutNow:
                becomeFollower(term: message.term, leader: message.from)
            default:
                becomeFollower(term: message.term, leader: nil)
            }
        } else if message.term < term {
            // A stale leader learns our term from the rejection and steps down.
            switch message.payload {
            case .appendEntries, .heartbeat, .installSnapshot:
                send(message.from, .appendResponse(AppendResponse(success: false, matchIndex: 0, readRound: 0)))
            case .requestVote:
                send(message.from, .voteResponse(granted: false))
            default:
                break
            }
            return
        }
        switch message.payload {
        case .requestVote(let lastLog, _):
            handleRequestVote(message, lastLog: lastLog)
        case .voteResponse(let granted):
            handleVoteResponse(message, granted: granted)
        case .appendEntries(let append):
            if acceptLeader(message.from) { handleAppendEntries(message, append) }
        case .heartbeat(let commit, let round):
            if acceptLeader(message.from) { handleHeartbeat(message, commit: commit, round: round) }
        case .installSnapshot(let install):
            if acceptLeader(message.from) { handleInstallSnapshot(message, install) }
        case .appendResponse(let response):
            handleAppendResponse(message, response)
        case .heartbeatResponse(let round):
            handleHeartbeatResponse(message, round: round)
        case .installSnapshotResponse(let response):
            handleInstallSnapshotResponse(message, response)
        case .timeoutNow:
            handleTimeoutNow(message)
        case .preVote, .preVoteResponse:
            break
        }
    }

    /// A message from the leader of our term: follow it and restart the election timer.
    /// Returns false (drop the message) when we lead this term ourselves.
    mutating func acceptLeader(_ from: ServerID) -> Bool {
        if isLeader {
            // Two leaders in one term cannot happen; a message claiming so is bogus. Stay leader.
            return false
        }
        if case .follower = role {} else { role = .follower }
        leader = from
        lastLeaderContact = now
        resetElectionTimer()
        return true
    }
}
