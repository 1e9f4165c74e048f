import ConsulCore

extension RaftCore {
    mutating func reject(_ requestID: RequestID, _ error: RaftError) {
        output.outcomes.append(RequestOutcome(id: requestID, result: .failure(error)))
    }

    /// Common gate for anything that appends an entry.
    mutating func admitAppend(_ requestID: RequestID) -> Bool {
        guard let state = leadership else {
            reject(requestID, .notLeader(leaderHint: leader))
            return false
        }
        if state.transfer != nil {
            reject(requestID, .leadershipTransferInProgress)
            return false
        }
        if log.lastIndex - commitIndex >= UInt64(max(options.maxUncommittedEntries, 1)) {
            reject(requestID, .tooManyUncommittedEntries)
            return false
        }
        return true
    }

    /// Appends the entry; with `replicate` false the caller commits and broadcasts once for many.
    mutating func propose(_ requestID: RequestID, payload: EntryPayload, replicate: Bool = true) {
        guard admitAppend(requestID) else { return }
        let entry = LogEntry(index: log.lastIndex + 1, term: term, payload: payload)
        appendToLog([entry])
        output.outcomes.append(RequestOutcome(id: requestID, result: .success(LogPosition(index: entry.index, term: entry.term))))
        guard replicate else { return }
        leaderMaybeCommit()
        broadcastAppend()
    }

    /// One server at a time, and only once this term's no-op and the previous change are committed:
    /// without the first condition a new leader could add a change on top of an uncommitted one from
    /// an old term and break the overlapping-majorities argument (Ongaro's 2015 raft-dev fix).
    mutating func changeMembership(_ requestID: RequestID, _ change: MembershipChange) {
        guard admitAppend(requestID), let state = leadership else { return }
        guard commitIndex >= state.termStartIndex, configurationIndex <= commitIndex else {
            reject(requestID, .configurationChangeInProgress)
            return
        }
        let next: ClusterConfiguration
        do {
            next = try configuration.applying(change)
        } catch {
            reject(requestID, error)
            return
        }
        propose(requestID, payload: .configuration(next))
    }

    mutating func transferLeadership(_ requestID: RequestID, target: ServerID?) {
        guard let state = leadership else {
            reject(requestID, .notLeader(leaderHint: leader))
            return
        }
        guard state.transfer == nil else {
            reject(requestID, .leadershipTransferInProgress)
            return
        }
        let chosen: ServerID?
        if let target {
            chosen = target != id && configuration.isVoter(target) ? target : nil
        } else {
            // The most up-to-date voter, ties broken by id.
            chosen = peers.filter { configuration.isVoter($0) }
                .max { lhs, rhs in
                    let l = state.progress[lhs]?.match ?? 0
                    let r = state.progress[rhs]?.match ?? 0
                    return l != r ? l < r : lhs > rhs
                }
        }
        guard let chosen else {
            reject(requestID, .invalidTransferTarget)
            return
        }
        leadership!.transfer = LeaderState.Transfer(target: chosen, deadline: now + options.electionTimeout, timeoutNowSent: false)
        output.outcomes.append(RequestOutcome(id: requestID, result: .success(log.lastPosition)))
        maybeSendTimeoutNow(chosen)
        sendAppend(to: chosen)
    }

    /// Sends TimeoutNow once the transfer target has every entry.
    mutating func maybeSendTimeoutNow(_ peer: ServerID) {
        guard let transfer = leadership?.transfer, transfer.target == peer, !transfer.timeoutNowSent,
              leadership?.progress[peer]?.match == log.lastIndex
        else { return }
        leadership!.transfer!.timeoutNowSent = true
        send(peer, .timeoutNow)
    }

    // MARK: - ReadIndex

    mutating func read(_ requestID: RequestID) {
        guard let state = leadership else {
            output.readStates.append(ReadState(id: requestID, result: .failure(.notLeader(leaderHint: leader))))
            return
        }
        guard state.pendingReads.count + state.readsAwaitingNoop.count < options.maxPendingReads else {
            output.readStates.append(ReadState(id: requestID, result: .failure(.tooManyPendingReads)))
            return
        }
        if commitIndex < state.termStartIndex {
            // Until this term's no-op commits, the leader does not know the latest commit index.
            leadership!.readsAwaitingNoop.append(requestID)
            return
        }
        registerRead(requestID)
    }

    /// The read's index is the commit index now; it is served once a heartbeat round sent after this
    /// moment is acknowledged by a quorum (proving no newer leader existed when it was registered).
    mutating func registerRead(_ requestID: RequestID) {
        guard let state = leadership else { return }
        leadership!.pendingReads.append(PendingRead(id: requestID, index: commitIndex, round: state.readRound + 1))
    }

    /// Batching: starts a new round only when reads wait for one and none is in flight, so a burst
    /// of reads costs one round of heartbeats.
    mutating func flushReads() {
        confirmReads()
        guard let state = leadership, let newest = state.pendingReads.last, newest.round > state.readRound else { return }
        let roundInFlight = state.pendingReads.contains { $0.round <= state.readRound }
        if !roundInFlight {
            broadcastHeartbeat()
            confirmReads()
        }
    }

    /// Releases every read whose round a quorum of voters acknowledged.
    mutating func confirmReads() {
        guard let state = leadership, !state.pendingReads.isEmpty else { return }
        let voters = configuration.voters
        guard !voters.isEmpty else { return }
        let rounds = voters.map { $0 == id ? state.readRound : state.progress[$0]?.ackedRound ?? 0 }.sorted(by: >)
        let confirmed = rounds[Self.quorum(voters.count) - 1]
        var remaining: [PendingRead] = []
        for pending in state.pendingReads {
            if pending.round <= confirmed {
                output.readStates.append(ReadState(id: pending.id, result: .success(pending.index)))
            } else {
                remaining.append(pending)
            }
        }
        leadership!.pendingReads = remaining
    }

    mutating func failPendingReads(_ state: LeaderState, error: RaftError) {
        for pending in state.pendingReads {
            output.readStates.append(ReadState(id: pending.id, result: .failure(error)))
        }
        for request in state.readsAwaitingNoop {
            output.readStates.append(ReadState(id: request, result: .failure(error)))
        }
    }
}
