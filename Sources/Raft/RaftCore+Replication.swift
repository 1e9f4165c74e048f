import ConsulCore

/// What a leader knows about one follower.
package struct Progress: Sendable {
    package enum Mode: Sendable, Equatable {
        /// Match unknown: one AppendEntries at a time (re-sent every heartbeat) until one succeeds.
        case probe
        /// Match known: stream AppendEntries optimistically, up to `maxInflightAppends` unacknowledged.
        case replicate
        /// The entries the follower needs are compacted: stream the snapshot, one chunk at a time.
        case snapshot
    }

    package internal(set) var match: LogIndex = 0
    package internal(set) var next: LogIndex
    package internal(set) var mode: Mode = .probe
    var probeSent = false
    /// Last index and send time of each unacknowledged AppendEntries (replicate mode), oldest first.
    var inflight: [(last: LogIndex, sentAt: Timestamp)] = []
    /// Heard from since the last check-quorum round.
    var recentActive = false
    /// When the follower last answered (autopilot's server health: last contact).
    package internal(set) var lastContact: Timestamp?
    /// Highest ReadIndex round this follower acknowledged in the current term.
    var ackedRound: UInt64 = 0
    var snapshotIndex: LogIndex = 0
    /// Start of the chunk in flight (stop-and-wait: one chunk at a time).
    var snapshotOffset: UInt64 = 0
    var snapshotSentAt: Timestamp = .zero
    /// Where the follower last asked to continue when that did not acknowledge the chunk in
    /// flight (it lost its buffer, or the answer is stale); used at the next retransmission.
    var snapshotWanted: UInt64?

    init(next: LogIndex) {
        self.next = next
    }

    mutating func becomeProbe(next newNext: LogIndex) {
        mode = .probe
        next = max(newNext, match + 1)
        probeSent = false
        inflight.removeAll()
    }

    mutating func becomeReplicate() {
        mode = .replicate
        next = match + 1
        probeSent = false
        inflight.removeAll()
    }
}

/// A linearizable read waiting for a heartbeat round to be acknowledged by a quorum.
struct PendingRead: Sendable {
    var id: RequestID
    var index: LogIndex
    var round: UInt64
}

/// Leader-only state; discarded on stepping down.
package struct LeaderState: Sendable {
    package internal(set) var progress: [ServerID: Progress] = [:]
    var heartbeatDeadline: Timestamp
    var checkQuorumDeadline: Timestamp
    /// Index of this term's no-op: nothing is known committed in this term before it commits.
    package internal(set) var termStartIndex: LogIndex = 0
    /// The latest heartbeat round broadcast; reads registered now wait for round + 1.
    var readRound: UInt64 = 0
    var pendingReads: [PendingRead] = []
    var readsAwaitingNoop: [RequestID] = []
    var transfer: Transfer?

    struct Transfer: Sendable {
        var target: ServerID
        var deadline: Timestamp
        var timeoutNowSent: Bool
    }

    init(now: Timestamp, options: RaftOptions) {
        heartbeatDeadline = now + options.heartbeatInterval
        checkQuorumDeadline = now + options.electionTimeout
    }

    /// Adds progress for new members and drops it for removed ones.
    mutating func syncProgress(with configuration: ClusterConfiguration, leader: ServerID, lastIndex: LogIndex) {
        for server in configuration.servers where server.id != leader && progress[server.id] == nil {
            progress[server.id] = Progress(next: lastIndex + 1)
        }
        for key in progress.keys.sorted() where !configuration.contains(key) {
            progress[key] = nil
        }
    }
}

extension RaftCore {
    /// Followers in id order (never Dictionary order).
    var peers: [ServerID] {
        configuration.servers.compactMap { $0.id == id ? nil : $0.id }
    }

    // MARK: - Leader: timers

    mutating func leaderTimers() {
        guard let state = leadership else { return }
        if now >= state.checkQuorumDeadline {
            // Check-quorum: a leader that heard from less than a majority in an election timeout may
            // be on the wrong side of a partition; step down so the majority side can elect freely.
            let voters = configuration.voters
            let active = voters.filter { $0 == id || state.progress[$0]?.recentActive == true }.count
            if !voters.isEmpty && active < Self.quorum(voters.count) {
                becomeFollower(term: term, leader: nil)
                return
            }
            for peer in peers { leadership?.progress[peer]?.recentActive = false }
            leadership?.checkQuorumDeadline = now + options.electionTimeout
        }
        if let transfer = state.transfer, now >= transfer.deadline {
            leadership?.transfer = nil
        }
        if now >= state.heartbeatDeadline {
            leadership?.heartbeatDeadline = now + options.heartbeatInterval
            broadcastHeartbeat()
        }
    }

    /// One heartbeat round: retransmits what looks lost, re-probes, and carries commit and the
    /// ReadIndex round to every follower.
    mutating func broadcastHeartbeat() {
        guard leadership != nil else { return }
        leadership!.readRound += 1
        let round = leadership!.readRound
        for peer in peers {
            guard var progress = leadership!.progress[peer] else { continue }
            switch progress.mode {
            case .replicate:
                if let oldest = progress.inflight.first, now >= oldest.sentAt + options.retransmitTimeout {
                    progress.becomeProbe(next: progress.match + 1)
                }
            case .probe:
                progress.probeSent = false
            case .snapshot:
                break
            }
            leadership!.progress[peer] = progress
            if progress.mode == .snapshot {
                if now >= progress.snapshotSentAt + options.retransmitTimeout {
                    if let wanted = progress.snapshotWanted {
                        leadership!.progress[peer]!.snapshotOffset = wanted
                        leadership!.progress[peer]!.snapshotWanted = nil
                    }
                    sendSnapshotChunk(peer)
                }
            } else {
                sendAppend(to: peer)
            }
            send(peer, .heartbeat(commit: min(progress.match, commitIndex), readRound: round))
        }
    }

    /// Sends new entries to every follower that can take them.
    mutating func broadcastAppend() {
        for peer in peers { sendAppend(to: peer) }
    }

    /// Sends the next AppendEntries to `peer` if its mode and the inflight limit allow; pipelines up
    /// to the limit in replicate mode.
    mutating func sendAppend(to peer: ServerID) {
        for _ in 0..<max(options.maxInflightAppends, 1) {
            guard let state = leadership, var progress = state.progress[peer] else { return }
            switch progress.mode {
            case .snapshot:
                return
            case .probe:
                if progress.probeSent { return }
            case .replicate:
                if progress.inflight.count >= options.maxInflightAppends { return }
            }
            let prevIndex = progress.next - 1
            guard let prevTerm = log.term(at: prevIndex),
                  let entries = log.entries(from: progress.next, limit: options.maxEntriesPerAppend)
            else {
                startSnapshot(to: peer)
                return
            }
            if progress.mode == .replicate && entries.isEmpty { return }
            let append = AppendEntries(
                prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commitIndex, readRound: state.readRound)
            send(peer, .appendEntries(append))
            if progress.mode == .probe {
                progress.probeSent = true
                leadership!.progress[peer] = progress
                return
            }
            if let last = entries.last {
                progress.next = last.index + 1
                progress.inflight.append((last: last.index, sentAt: now))
            }
            leadership!.progress[peer] = progress
        }
    }

    mutating func startSnapshot(to peer: ServerID) {
        guard let snapshot = log.snapshot, var progress = leadership?.progress[peer] else { return }
        progress.mode = .snapshot
        progress.snapshotIndex = snapshot.metadata.index
        progress.snapshotOffset = 0
        progress.snapshotWanted = nil
        progress.inflight.removeAll()
        leadership!.progress[peer] = progress
        sendSnapshotChunk(peer)
    }

    mutating func sendSnapshotChunk(_ peer: ServerID) {
        guard let snapshot = log.snapshot, var progress = leadership?.progress[peer], progress.mode == .snapshot else { return }
        if progress.snapshotIndex != snapshot.metadata.index {
            // A newer snapshot replaced the one being sent: start over with it.
            progress.snapshotIndex = snapshot.metadata.index
            progress.snapshotOffset = 0
        }
        let total = storedSnapshotSize ?? UInt64(snapshot.data.count)
        let start = min(progress.snapshotOffset, total)
        let end = min(total, start + UInt64(max(options.snapshotChunkBytes, 1)))
        if storedSnapshotSize != nil {
            // The data is in the shell's store: it fills the chunk in before sending.
            let install = InstallSnapshot(metadata: snapshot.metadata, totalSize: total, offset: start, chunk: [])
            let message = Message(from: id, to: peer, term: term, payload: .installSnapshot(install))
            output.snapshotChunks.append(SnapshotChunk(message: message, length: Int(end - start)))
        } else {
            let install = InstallSnapshot(
                metadata: snapshot.metadata, totalSize: total, offset: start, chunk: Array(snapshot.data[Int(start)..<Int(end)]))
            send(peer, .installSnapshot(install))
        }
        progress.snapshotSentAt = now
        leadership!.progress[peer] = progress
    }

    // MARK: - Leader: responses

    mutating func handleAppendResponse(_ message: Message, _ response: AppendResponse) {
        guard isLeader, var progress = leadership?.progress[message.from] else { return }
        progress.recentActive = true
        progress.lastContact = now
        progress.ackedRound = max(progress.ackedRound, response.readRound)
        if response.success {
            // A follower cannot match beyond what we have; a claim that it does is bogus.
            guard response.matchIndex <= log.lastIndex else { return }
            if response.matchIndex > progress.match { progress.match = response.matchIndex }
            if progress.next <= progress.match { progress.next = progress.match + 1 }
            progress.inflight.removeAll { $0.last <= progress.match }
            if progress.mode == .probe { progress.becomeReplicate() }
            leadership!.progress[message.from] = progress
            leaderMaybeCommit()
            maybeSendTimeoutNow(message.from)
        } else {
            let stale = response.rejectedIndex <= progress.match
                || (progress.mode == .probe && response.rejectedIndex != progress.next - 1)
                || progress.mode == .snapshot
            if response.rejectedIndex == 0 || stale {
                leadership!.progress[message.from] = progress
                confirmReads()
                return
            }
            var next = response.conflictIndex
            if let conflictTerm = response.conflictTerm, let last = log.lastIndex(ofTerm: conflictTerm) {
                next = last + 1
            }
            next = min(next, response.rejectedIndex)
            progress.becomeProbe(next: next)
            leadership!.progress[message.from] = progress
        }
        confirmReads()
        if isLeader { sendAppend(to: message.from) }
    }

    mutating func handleHeartbeatResponse(_ message: Message, round: UInt64) {
        guard isLeader, var progress = leadership?.progress[message.from] else { return }
        progress.recentActive = true
        progress.lastContact = now
        progress.ackedRound = max(progress.ackedRound, round)
        leadership!.progress[message.from] = progress
        confirmReads()
        if progress.mode == .replicate && progress.inflight.isEmpty && progress.match < log.lastIndex {
            sendAppend(to: message.from)
        }
    }

    mutating func handleInstallSnapshotResponse(_ message: Message, _ response: InstallSnapshotResponse) {
        guard isLeader, var progress = leadership?.progress[message.from] else { return }
        progress.recentActive = true
        progress.lastContact = now
        if response.done {
            let covered = min(response.snapshotIndex, log.lastIndex)
            // Only a snapshot we (or an earlier leader of this log) made can be acknowledged; its
            // index is covered by our log, so the follower matches us up to there.
            if log.term(at: covered) == response.snapshotTerm || covered <= log.snapshotIndex {
                progress.match = max(progress.match, covered)
            }
            if progress.mode == .snapshot { progress.becomeProbe(next: progress.match + 1) }
            leadership!.progress[message.from] = progress
            leaderMaybeCommit()
            if isLeader { sendAppend(to: message.from) }
            return
        }
        guard progress.mode == .snapshot else {
            leadership!.progress[message.from] = progress
            return
        }
        // Only an answer that acknowledges the chunk in flight sends the next one. Answering every
        // response would let duplicated messages breed ever more chunk/response pairs (found by
        // the simulator, seed 202709: a storm that froze virtual time).
        if response.snapshotIndex == progress.snapshotIndex && response.nextOffset > progress.snapshotOffset {
            progress.snapshotOffset = response.nextOffset
            progress.snapshotWanted = nil
            leadership!.progress[message.from] = progress
            sendSnapshotChunk(message.from)
        } else {
            progress.snapshotWanted = response.snapshotIndex == progress.snapshotIndex ? response.nextOffset : 0
            leadership!.progress[message.from] = progress
        }
    }

    /// §5.3/§5.4.2: commit the highest index stored on a quorum of voters, but only by counting
    /// replicas of an entry from the current term (older entries then commit indirectly).
    mutating func leaderMaybeCommit() {
        guard let state = leadership else { return }
        let voters = configuration.voters
        guard !voters.isEmpty else { return }
        let matches = voters.map { $0 == id ? stableIndex : state.progress[$0]?.match ?? 0 }.sorted(by: >)
        let candidate = matches[Self.quorum(voters.count) - 1]
        guard candidate > commitIndex, log.term(at: candidate) == term else { return }
        commitIndex = candidate
        commitAdvanced()
    }

    mutating func commitAdvanced() {
        guard let state = leadership else { return }
        if commitIndex >= state.termStartIndex && !state.readsAwaitingNoop.isEmpty {
            let waiting = state.readsAwaitingNoop
            leadership!.readsAwaitingNoop.removeAll()
            for request in waiting { registerRead(request) }
        }
        // A leader removed (or demoted) by a now-committed configuration hands over and steps down
        // (dissertation §4.2.2); until then it kept managing the cluster without counting itself.
        if configurationIndex <= commitIndex && !configuration.isVoter(id) {
            if let successor = peers.filter({ configuration.isVoter($0) && state.progress[$0]?.match == log.lastIndex }).first {
                send(successor, .timeoutNow)
            }
            becomeFollower(term: term, leader: nil)
        }
    }

    // MARK: - Follower

    mutating func handleAppendEntries(_ message: Message, _ append: AppendEntries) {
        // Shape checks: anything malformed is dropped, never trusted.
        var expected = append.prevIndex + 1
        var previousTerm = append.prevTerm
        guard append.prevTerm <= message.term else { return }
        for entry in append.entries {
            guard entry.index == expected, entry.term >= previousTerm, entry.term <= message.term else { return }
            expected += 1
            previousTerm = entry.term
        }
        var prevIndex = append.prevIndex
        var prevTerm = append.prevTerm
        var entries = append.entries[...]
        if prevIndex < commitIndex {
            // Our committed prefix cannot differ from the leader's: skip it.
            let skip = Int(min(UInt64(entries.count), commitIndex - prevIndex))
            entries = entries.dropFirst(skip)
            if entries.isEmpty {
                send(message.from, .appendResponse(AppendResponse(success: true, matchIndex: commitIndex, readRound: append.readRound)))
                return
            }
            prevIndex = commitIndex
            guard let term = log.term(at: commitIndex) else { return }
            prevTerm = term
        }
        guard let localTerm = log.term(at: prevIndex), localTerm == prevTerm else {
            var response = AppendResponse(success: false, matchIndex: 0, rejectedIndex: prevIndex, readRound: append.readRound)
            if prevIndex > log.lastIndex {
                response.conflictIndex = log.lastIndex + 1
            } else {
                response.conflictTerm = log.term(at: prevIndex)
                response.conflictIndex = log.firstIndex(ofTermAt: prevIndex, floor: commitIndex + 1)
            }
            send(message.from, .appendResponse(response))
            return
        }
        for (offset, entry) in zip(entries.indices, entries) {
            if let existing = log.term(at: entry.index), existing == entry.term { continue }
            if entry.index <= commitIndex { return }  // would rewrite committed history: bogus leader
            if entry.index <= log.lastIndex { truncateLog(from: entry.index) }
            appendToLog(Array(entries[offset...]))
            break
        }
        let match = prevIndex + UInt64(entries.count)
        let newCommit = min(append.commit, match)
        if newCommit > commitIndex { commitIndex = newCommit }
        send(message.from, .appendResponse(AppendResponse(success: true, matchIndex: match, readRound: append.readRound)))
    }

    mutating func handleHeartbeat(_ message: Message, commit: LogIndex, round: UInt64) {
        // The leader caps `commit` at what it knows we match, so our log holds it up to there.
        let newCommit = min(commit, log.lastIndex)
        if newCommit > commitIndex { commitIndex = newCommit }
        send(message.from, .heartbeatResponse(readRound: round))
    }

    mutating func handleInstallSnapshot(_ message: Message, _ install: InstallSnapshot) {
        let meta = install.metadata
        func respond(_ next: UInt64, done: Bool) {
            send(message.from, .installSnapshotResponse(
                InstallSnapshotResponse(snapshotIndex: meta.index, snapshotTerm: meta.term, nextOffset: next, done: done)))
        }
        guard meta.term <= message.term else { return }
        if meta.index <= commitIndex {
            // Everything it covers is already committed here.
            inboundSnapshot = nil
            respond(install.totalSize, done: true)
            return
        }
        guard install.totalSize <= options.maxSnapshotBytes, install.offset <= install.totalSize,
              UInt64(install.chunk.count) <= install.totalSize - install.offset
        else { return }
        if install.offset == 0 {
            inboundSnapshot = InboundSnapshot(metadata: meta, totalSize: install.totalSize, data: [])
        }
        guard var inbound = inboundSnapshot, inbound.metadata == meta, inbound.totalSize == install.totalSize else {
            respond(0, done: false)
            return
        }
        if install.offset == UInt64(inbound.data.count) {
            inbound.data.append(contentsOf: install.chunk)
        }
        guard UInt64(inbound.data.count) == inbound.totalSize else {
            inboundSnapshot = inbound
            respond(UInt64(inbound.data.count), done: false)
            return
        }
        inboundSnapshot = nil
        let snapshot = Snapshot(metadata: meta, data: inbound.data)
        storedSnapshotSize = nil
        let keptSuffix = log.install(snapshot)
        if keptSuffix {
            output.persist.entries.removeAll { $0.index <= meta.index }
        } else {
            output.persist.entries.removeAll()
            stableIndex = meta.index
        }
        stableIndex = max(stableIndex, meta.index)
        output.persist.snapshot = snapshot
        output.snapshotToRestore = snapshot
        commitIndex = max(commitIndex, meta.index)
        appliedIndex = meta.index
        recomputeConfiguration()
        respond(install.totalSize, done: true)
    }
}
