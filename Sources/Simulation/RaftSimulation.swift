import ConsulCore
import Raft

/// The knobs of one simulated run, all drawn from the seed (so a seed names a whole scenario).
package struct SimulationParameters: Sendable, CustomStringConvertible {
    package var initialServers: Int
    package var maxServers = 7
    /// At most this many servers are ever created (founders plus servers added later).
    package var maxCreatedServers: Int
    package var dropRate: Double
    package var duplicateRate: Double
    /// Messages held back far longer than the usual delay (up to two election timeouts), so they
    /// arrive after elections and retransmissions: stale terms, stale acknowledgements.
    package var stragglerRate: Double
    package var minDelay: Duration = .milliseconds(1)
    package var maxDelay: Duration
    package var diskLatency: Duration
    package var tornWriteRate: Double
    /// Mean virtual time between fault events of each kind; nil disables that fault.
    package var crashEvery: Duration?
    package var partitionEvery: Duration?
    package var membershipEvery: Duration?
    package var transferEvery: Duration?
    /// Process pauses (GC, VM steal): the server handles nothing for a while, then resumes with
    /// stale beliefs (a paused leader still thinks it leads).
    package var pauseEvery: Duration?
    /// The state machine snapshots every this many applied entries (nil: never).
    package var snapshotEvery: UInt64?
    package var raft: RaftOptions
    package var keys: Int
    package var operationsPerKey: Int
    /// Mean time between background writes (to the unchecked register).
    package var clientEvery: Duration
    package var clientTimeout: Duration = .seconds(5)
    package var chaosDuration: Duration
    /// After healing, a leader must emerge and every live member catch up within this bound.
    package var livenessBound: Duration

    package init(seed: UInt64) {
        var random = SeededRandom(seed: seed).stream("parameters")
        func pick<T>(_ choices: [T]) -> T { choices[Int(random.next() % UInt64(choices.count))] }
        func milliseconds(_ range: ClosedRange<Int64>) -> Duration {
            .milliseconds(range.lowerBound + Int64(random.next() % UInt64(range.upperBound - range.lowerBound + 1)))
        }
        initialServers = pick([1, 2, 3, 3, 3, 4, 5, 5, 5, 6, 7])
        maxCreatedServers = initialServers + pick([0, 2, 4, 6])
        dropRate = pick([0, 0.01, 0.05, 0.1, 0.2])
        duplicateRate = pick([0, 0.01, 0.05])
        maxDelay = pick([milliseconds(2...20), milliseconds(20...80), milliseconds(80...250)])
        diskLatency = pick([milliseconds(1...8), milliseconds(1...8), milliseconds(10...60)])
        tornWriteRate = pick([0, 0.3, 0.8])
        snapshotEvery = pick([nil, 3, 8, 20])
        // Timings follow the network, as an operator tunes them: elections well above the round
        // trip, retransmission only after a round trip plus a disk sync has surely passed.
        var options = RaftOptions()
        let roundTrip = (maxDelay + maxDelay + diskLatency + diskLatency).totalNanoseconds
        options.electionTimeout = .nanoseconds(max(300_000_000, 4 * roundTrip))
        options.heartbeatInterval = options.electionTimeout / 6
        options.retransmitTimeout = .nanoseconds(roundTrip) + options.heartbeatInterval
        options.maxUncommittedEntries = pick([16, 64, 256])
        // Faults come at multiples of the election timeout: faster than that nothing can ever be
        // elected, much slower and a run sees few leader changes.
        let election = options.electionTimeout
        crashEvery = pick([nil, election * 3, election * 8, election * 20])
        partitionEvery = pick([nil, election * 3, election * 8, election * 20])
        membershipEvery = pick([nil, election * 3, election * 10])
        transferEvery = pick([nil, nil, election * 10])
        pauseEvery = pick([nil, election * 4, election * 12])
        // Catching up a backlog over a slow, lossy network with little pipelining takes a while;
        // the bound grows with the election timeout (itself a multiple of the round trip).
        livenessBound = .seconds(20) + election * 20
        // Batching and pipelining shapes; one entry per round trip (1, 1) is too slow to catch up
        // within the liveness bound on the slow networks drawn above, so it is not drawn.
        (options.maxEntriesPerAppend, options.maxInflightAppends) = pick([(1, 8), (4, 1), (4, 3), (64, 1), (64, 8)])
        options.snapshotChunkBytes = pick([7, 16, 1024])
        options.trailingEntries = pick([0, 2, 10])
        raft = options
        let pipeline = Int64(options.maxEntriesPerAppend * options.maxInflightAppends)
        keys = pick([1, 2, 3, 4])
        operationsPerKey = pick([8, 12, 16])
        clientEvery = pick([milliseconds(2...10), milliseconds(10...50), milliseconds(50...150)])
        // Background load stays below half of what the drawn pipeline shape can replicate over the
        // drawn network, so a follower (or a newly added server) can always catch up within the bound.
        clientEvery = max(clientEvery, .nanoseconds(2 * roundTrip / pipeline))
        chaosDuration = milliseconds(5000...15000)
        // New draws go last, so the scenarios of recorded seeds (regression tests) stay as they were.
        stragglerRate = pick([0, 0, 0.005, 0.02])
    }

    package var description: String {
        "servers=\(initialServers)(max created \(maxCreatedServers)) drop=\(dropRate) dup=\(duplicateRate) "
            + "stragglers=\(stragglerRate) delay≤\(maxDelay) disk=\(diskLatency) torn=\(tornWriteRate) crash=\(crashEvery.map { "\($0)" } ?? "off") "
            + "partition=\(partitionEvery.map { "\($0)" } ?? "off") membership=\(membershipEvery.map { "\($0)" } ?? "off") "
            + "transfer=\(transferEvery.map { "\($0)" } ?? "off") pause=\(pauseEvery.map { "\($0)" } ?? "off") snapshotEvery=\(snapshotEvery.map { "\($0)" } ?? "off") "
            + "batch=\(raft.maxEntriesPerAppend) inflight=\(raft.maxInflightAppends) chunk=\(raft.snapshotChunkBytes) "
            + "trailing=\(raft.trailingEntries) keys=\(keys)x\(operationsPerKey) chaos=\(chaosDuration)"
    }
}

/// What one seed's run produced.
package struct SimulationReport: Sendable {
    package var seed: UInt64
    package var violation: Violation?
    package var trace: [String]
    /// A digest of every event processed (time and kind): equal for equal runs, cheap to compare.
    package var fingerprint: UInt64
    package var events: Int
    package var messagesSent: Int
    package var highestTerm: Term
    package var committed: LogIndex
    package var operationsCompleted: Int
    package var virtualTime: Timestamp
}

/// Runs a whole Raft cluster in one process on a virtual clock: every server is a `RaftCore` with a
/// simulated disk and state machine; the network, disks, crashes, membership changes and the client
/// workload are all driven by one seed. Safety is checked after every step, linearizability and
/// liveness at the end.
package final class RaftSimulation {
    package let seed: UInt64
    package let parameters: SimulationParameters
    private var random: SeededRandom
    private var networkRandom: SeededRandom
    private var faultRandom: SeededRandom
    private var workloadRandom: SeededRandom
    private var queue = EventQueue<Event>()
    private var now = Timestamp.zero
    private var nodes: [Node] = []
    private var indexOf: [ServerID: Int] = [:]
    private var checker = SafetyChecker()
    private var blocked = Set<Link>()
    private var partitioned = false
    private var dropRate: Double
    private var duplicateRate: Double
    private var phase = Phase.chaos
    private var operations: [ClientOperation] = []
    private var histories: [[Int]]
    private var requests: [RequestID: Request] = [:]
    private var nextRequestID: RequestID = 1
    private var nextValue: UInt64 = 1
    private var tracing: Bool
    private var traceLines: [String] = []
    private var fingerprint: UInt64 = 0xCBF2_9CE4_8422_2325
    private var events = 0
    private var messagesSent = 0
    private var livenessDeadline = Timestamp.zero
    private var finished = false
    /// Servers replaying old configuration entries after a restart must not act on them again.
    private var latestCommittedConfiguration: LogIndex = 0

    private enum Phase { case chaos, liveness }

    /// A run that needs more events than this is stuck (a storm of messages breeding messages, or
    /// a timer firing without time passing): it fails instead of hanging CI. Normal runs stay well
    /// below it (5000 seeds in a row pass).
    package static let maxEvents = 500_000

    private struct Link: Hashable {
        var from: Int
        var to: Int
    }

    private enum Event {
        case deliver(Message)
        case tick(node: Int, epoch: Int)
        case sync(node: Int, epoch: Int)
        case persisted(node: Int, epoch: Int, LogPosition)
        case snapshot(node: Int, epoch: Int)
        case crash
        case restart(node: Int)
        case partition
        case heal
        case membership
        case transfer
        case pause
        case client
        case load
        case clientTimeout(operation: Int)
        case endChaos
        case livenessCheck

        var code: UInt64 {
            switch self {
            case .deliver: 1
            case .tick: 2
            case .sync: 3
            case .persisted: 4
            case .snapshot: 5
            case .crash: 6
            case .restart: 7
            case .partition: 8
            case .heal: 9
            case .membership: 10
            case .transfer: 11
            case .client: 12
            case .load: 16
            case .pause: 17
            case .clientTimeout: 13
            case .endChaos: 14
            case .livenessCheck: 15
            }
        }
    }

    private enum Request {
        case client(operation: Int)
        /// Background load on the unchecked register.
        case load
        case membership(MembershipChange)
        case transfer
    }

    private struct ClientOperation {
        var key: Int
        var record: RegisterOperation
        var node: Int
        /// Definitely had no effect (refused, or its log slot went to another entry): left out of the history.
        var void = false
        var settled = false
    }

    private struct Node {
        var id: ServerID
        var core: RaftCore?
        var disk = SimDisk()
        var store: KVStore
        var applied: LogIndex = 0
        var lastSnapshot: LogIndex = 0
        var batches: [(output: RaftOutput, durable: Bool)] = []
        var syncScheduled = false
        var epoch = 0
        var scheduledTick: Timestamp?
        var proposals: [LogIndex: (operation: Int, term: Term)] = [:]
        var readWaits: [(operation: Int, index: LogIndex)] = []
        var checkedCommit: LogIndex = 0
        var everMember = false
        var decommissioned = false
        /// While set and in the future, events for this server wait until then.
        var pausedUntil: Timestamp?

        func isPaused(at now: Timestamp) -> Bool { pausedUntil.map { now < $0 } ?? false }
    }

    package init(seed: UInt64, trace: Bool = false, parameters: SimulationParameters? = nil) {
        self.seed = seed
        let parameters = parameters ?? SimulationParameters(seed: seed)
        self.parameters = parameters
        let root = SeededRandom(seed: seed)
        random = root.stream("cores")
        networkRandom = root.stream("network")
        faultRandom = root.stream("faults")
        workloadRandom = root.stream("workload")
        dropRate = parameters.dropRate
        duplicateRate = parameters.duplicateRate
        tracing = trace
        histories = Array(repeating: [], count: parameters.keys)
    }

    // MARK: - Running

    /// Runs the scenario to the end (or the first violation). Bounded: the chaos phase and the
    /// liveness bound are finite and every event is scheduled strictly ahead of a finite horizon.
    package func run() -> SimulationReport {
        var violation: Violation?
        do throws(Violation) {
            try setUp()
            let horizon = Timestamp.zero + parameters.chaosDuration + parameters.livenessBound + .seconds(1)
            while !finished, let (time, event) = queue.pop() {
                guard time <= horizon else {
                    throw Violation("liveness", "simulation ran past its horizon without converging")
                }
                now = time
                events += 1
                guard events <= Self.maxEvents else {
                    throw Violation("liveness", "more than \(Self.maxEvents) events by \(now): a message storm or a timer loop")
                }
                fingerprint = (fingerprint ^ time.nanoseconds ^ (event.code << 56)) &* 0x0000_0100_0000_01B3
                try process(event)
            }
            try checkLinearizability()
        } catch {
            violation = error
            trace("VIOLATION \(error)")
        }
        return SimulationReport(
            seed: seed, violation: violation, trace: traceLines, fingerprint: fingerprint, events: events,
            messagesSent: messagesSent, highestTerm: nodes.compactMap { $0.core?.term }.max() ?? 0,
            committed: checker.highestCommitted, operationsCompleted: operations.filter { $0.record.completed != nil }.count,
            virtualTime: now)
    }

    private func setUp() throws(Violation) {
        trace("seed \(seed): \(parameters)")
        let founders = (1...parameters.initialServers).map { ServerID("s\($0)") }
        let bootstrap = RecoveredState.bootstrap(ClusterConfiguration(voters: founders))
        for id in founders {
            let index = addNode(id)
            let work = PersistWork(hardState: bootstrap.hardState, entries: bootstrap.entries)
            nodes[index].disk.write(work)
            do { try nodes[index].disk.sync() } catch { throw Violation("disk", error.description) }
            try checkDurableWrites(index)
            nodes[index].everMember = true
            try start(index)
        }
        queue.push(.client, at: now + checkedOperationInterval)
        queue.push(.load, at: now + parameters.clientEvery)
        scheduleFault(.crash, every: parameters.crashEvery)
        scheduleFault(.partition, every: parameters.partitionEvery)
        scheduleFault(.membership, every: parameters.membershipEvery)
        scheduleFault(.transfer, every: parameters.transferEvery)
        scheduleFault(.pause, every: parameters.pauseEvery)
        queue.push(.endChaos, at: now + parameters.chaosDuration)
    }

    /// The checked registers plus one unchecked register for background load.
    private var storeKeys: Int { parameters.keys + 1 }

    private func addNode(_ id: ServerID) -> Int {
        nodes.append(Node(id: id, store: KVStore(keys: storeKeys)))
        indexOf[id] = nodes.count - 1
        return nodes.count - 1
    }

    private func scheduleFault(_ event: Event, every mean: Duration?) {
        guard let mean, phase == .chaos else { return }
        let span = mean.totalNanoseconds
        let delay = span / 2 + Int64(faultRandom.next() % UInt64(max(span, 1)))
        queue.push(event, at: now + .nanoseconds(delay))
    }

    /// The server an event is for, if it is one a paused process would not get to.
    private func target(of event: Event) -> Int? {
        switch event {
        case .deliver(let message): indexOf[message.to]
        case .tick(let node, _), .sync(let node, _), .persisted(let node, _, _), .snapshot(let node, _): node
        default: nil
        }
    }

    private func process(_ event: Event) throws(Violation) {
        if let node = target(of: event), let until = nodes[node].pausedUntil, now < until {
            queue.push(event, at: until)
            return
        }
        switch event {
        case .deliver(let message):
            guard let target = indexOf[message.to], nodes[target].core != nil else { return }
            if tracing { trace("\(message.from)→\(message.to) \(describe(message.payload)) (term \(message.term))") }
            try step(target, .message(message))
        case .tick(let node, let epoch):
            guard nodes[node].epoch == epoch, nodes[node].core != nil, let scheduled = nodes[node].scheduledTick,
                  scheduled <= now
            else { return }
            nodes[node].scheduledTick = nil
            try step(node, .tick)
        case .sync(let node, let epoch):
            guard nodes[node].epoch == epoch, nodes[node].core != nil else { return }
            nodes[node].syncScheduled = false
            do { try nodes[node].disk.sync() } catch { throw Violation("disk", "\(nodes[node].id): \(error.description)") }
            try checkDurableWrites(node)
            for index in nodes[node].batches.indices { nodes[node].batches[index].durable = true }
            try drainBatches(node)
        case .persisted(let node, let epoch, let position):
            guard nodes[node].epoch == epoch, nodes[node].core != nil else { return }
            try step(node, .persisted(position))
        case .snapshot(let node, let epoch):
            guard nodes[node].epoch == epoch, nodes[node].core != nil else { return }
            try takeSnapshot(node)
        case .crash:
            try crashSomeone()
            scheduleFault(.crash, every: parameters.crashEvery)
        case .restart(let node):
            guard nodes[node].core == nil, !nodes[node].decommissioned else { return }
            try start(node)
        case .partition:
            makePartition()
        case .heal:
            healPartition()
            scheduleFault(.partition, every: parameters.partitionEvery)
        case .membership:
            try changeMembership()
            scheduleFault(.membership, every: parameters.membershipEvery)
        case .transfer:
            try transferLeadership()
            scheduleFault(.transfer, every: parameters.transferEvery)
        case .pause:
            pauseSomeone()
            scheduleFault(.pause, every: parameters.pauseEvery)
        case .client:
            guard phase == .chaos else { return }
            try issueClientOperation()
            let span = checkedOperationInterval.totalNanoseconds
            queue.push(.client, at: now + .nanoseconds(span / 2 + Int64(workloadRandom.next() % UInt64(max(span, 1)))))
        case .load:
            guard phase == .chaos else { return }
            try issueLoad()
            let span = parameters.clientEvery.totalNanoseconds
            queue.push(.load, at: now + .nanoseconds(span / 2 + Int64(workloadRandom.next() % UInt64(max(span, 1)))))
        case .clientTimeout(let operation):
            if operations[operation].record.completed == nil && !operations[operation].void {
                operations[operation].settled = true
                if tracing { trace("client op \(operation) timed out: outcome unknown") }
            }
        case .endChaos:
            try beginLiveness()
        case .livenessCheck:
            if try converged() {
                trace("converged: all live members agree")
                finished = true
            } else if now >= livenessDeadline {
                throw Violation("liveness", "no stable leader with all live members caught up \(parameters.livenessBound) after healing: \(clusterSummary())")
            } else {
                queue.push(.livenessCheck, at: now + .milliseconds(100))
            }
        }
    }

    // MARK: - Servers

    private func start(_ index: Int) throws(Violation) {
        do { try nodes[index].disk.checkWALReplay() } catch { throw Violation("wal", "\(nodes[index].id): \(error.description)") }
        let recovered = nodes[index].disk.durable
        let core: RaftCore
        do {
            core = try RaftCore(id: nodes[index].id, options: parameters.raft, random: random.split(), recovered: recovered, now: now)
        } catch {
            throw Violation("recovery", "\(nodes[index].id) cannot restart from its disk: \(error)")
        }
        nodes[index].core = core
        var store = KVStore(keys: storeKeys)
        if let snapshot = recovered.snapshot {
            guard let restored = KVStore.restore(snapshot.data, keys: storeKeys) else {
                throw Violation("recovery", "\(nodes[index].id) has an unreadable snapshot")
            }
            store = restored
            try checker.observeApplied(index: snapshot.metadata.index, digest: store.digest, by: nodes[index].id)
        }
        nodes[index].store = store
        nodes[index].applied = core.appliedIndex
        nodes[index].lastSnapshot = core.log.snapshotIndex
        nodes[index].checkedCommit = core.commitIndex
        trace("\(nodes[index].id) starts: term \(core.term), log \(core.log.firstIndex)...\(core.log.lastIndex), snapshot \(core.log.snapshotIndex), config \(core.configuration)")
        try step(index, .tick)
    }

    /// Feeds one input to a server, checks safety on what it did, and queues its effects.
    private func step(_ index: Int, _ input: RaftInput) throws(Violation) {
        guard var core = nodes[index].core else { return }
        let wasLeader = core.isLeader
        let output = core.handle(input, now: now)
        nodes[index].core = core
        let id = nodes[index].id
        if core.isLeader {
            try checker.observeLeader(id, term: core.term)
            if !wasLeader {
                trace("\(id) becomes leader of term \(core.term)")
                try checker.checkLeaderCompleteness(core.log, leader: id, term: core.term)
            }
        } else if wasLeader {
            trace("\(id) steps down (term \(core.term))")
        }
        if core.commitIndex > nodes[index].checkedCommit {
            var position = max(nodes[index].checkedCommit + 1, core.log.firstIndex)
            while position <= core.commitIndex {
                if let entry = core.log.entry(at: position) { try checker.observeCommitted(entry, by: id, inTerm: core.term) }
                position += 1
            }
            nodes[index].checkedCommit = core.commitIndex
        }
        nodes[index].batches.append((output, output.persist.isEmpty))
        if !output.persist.isEmpty {
            nodes[index].disk.write(output.persist)
            if !nodes[index].syncScheduled {
                nodes[index].syncScheduled = true
                queue.push(.sync(node: index, epoch: nodes[index].epoch), at: now + parameters.diskLatency)
            }
        }
        if nodes[index].scheduledTick.map({ output.wakeAt < $0 }) ?? true {
            nodes[index].scheduledTick = output.wakeAt
            queue.push(.tick(node: index, epoch: nodes[index].epoch), at: max(output.wakeAt, now))
        }
        try drainBatches(index)
    }

    /// Log matching, on what reached a disk: every (index, term) names one entry with one predecessor.
    private func checkDurableWrites(_ index: Int) throws(Violation) {
        for write in nodes[index].disk.takeDurableWrites() {
            try checker.observeWrite(write.entry, previousTerm: write.previousTerm, by: nodes[index].id)
        }
    }

    /// Carries out batches in order, each only once its writes are durable: send, apply, answer.
    private func drainBatches(_ index: Int) throws(Violation) {
        while let head = nodes[index].batches.first, head.durable {
            nodes[index].batches.removeFirst()
            let output = head.output
            for message in output.messages { send(message) }
            if let snapshot = output.snapshotToRestore { try restore(index, snapshot) }
            for entry in output.committed { try apply(index, entry) }
            for read in output.readStates { readAnswered(index, read) }
            for outcome in output.outcomes { try requestAnswered(index, outcome) }
            if let info = output.leader, tracing {
                trace("\(nodes[index].id) sees term \(info.term) leader \(info.leader.map { "\($0)" } ?? "none")")
            }
            serveReads(index)
            if let last = output.persist.entries.last {
                queue.push(.persisted(node: index, epoch: nodes[index].epoch, LogPosition(index: last.index, term: last.term)), at: now)
            }
            if let every = parameters.snapshotEvery, nodes[index].applied >= nodes[index].lastSnapshot + every {
                nodes[index].lastSnapshot = nodes[index].applied
                queue.push(.snapshot(node: index, epoch: nodes[index].epoch), at: now)
            }
        }
    }

    private func restore(_ index: Int, _ snapshot: Snapshot) throws(Violation) {
        guard let store = KVStore.restore(snapshot.data, keys: storeKeys) else {
            throw Violation("snapshot", "\(nodes[index].id) received an unreadable snapshot")
        }
        let meta = snapshot.metadata
        guard meta.index > nodes[index].applied else {
            throw Violation("snapshot", "\(nodes[index].id) asked to restore \(meta.index) after applying \(nodes[index].applied)")
        }
        nodes[index].store = store
        nodes[index].applied = meta.index
        nodes[index].lastSnapshot = meta.index
        try checker.observeApplied(index: meta.index, digest: store.digest, by: nodes[index].id)
        trace("\(nodes[index].id) restores snapshot \(meta.index)@\(meta.term)")
    }

    private func apply(_ index: Int, _ entry: LogEntry) throws(Violation) {
        let id = nodes[index].id
        guard entry.index == nodes[index].applied + 1 else {
            throw Violation("apply order", "\(id) applies \(entry.index) after \(nodes[index].applied)")
        }
        try checker.observeCommitted(entry, by: id, inTerm: nodes[index].core?.term ?? 0)
        var result = KVStore.ApplyResult.ok
        switch entry.payload {
        case .command(let bytes):
            result = nodes[index].store.apply(bytes)
            if result == .invalid { throw Violation("apply", "\(id) applied an undecodable command at \(entry.index)") }
        case .noop:
            break
        case .configuration(let configuration):
            if entry.index > latestCommittedConfiguration {
                latestCommittedConfiguration = entry.index
                configurationCommitted(configuration)
            }
        }
        nodes[index].applied = entry.index
        try checker.observeApplied(index: entry.index, digest: nodes[index].store.digest, by: id)
        if let proposal = nodes[index].proposals.removeValue(forKey: entry.index) {
            if proposal.term == entry.term {
                switch result {
                case .cas(let succeeded): complete(proposal.operation, .cas(succeeded: succeeded))
                default: complete(proposal.operation, .ok)
                }
            } else {
                voidOperation(proposal.operation, reason: "slot \(entry.index) went to term \(entry.term)")
            }
        }
    }

    /// Members dropped by a committed configuration are shut down for good (ids are never reused).
    private func configurationCommitted(_ configuration: ClusterConfiguration) {
        for index in nodes.indices {
            if configuration.contains(nodes[index].id) {
                nodes[index].everMember = true
            } else if nodes[index].everMember && !nodes[index].decommissioned {
                decommission(index)
            }
        }
    }

    private func decommission(_ index: Int) {
        trace("\(nodes[index].id) decommissioned")
        nodes[index].decommissioned = true
        nodes[index].core = nil
        nodes[index].epoch += 1
        nodes[index].batches.removeAll()
        nodes[index].proposals.removeAll()
        nodes[index].readWaits.removeAll()
    }

    private func takeSnapshot(_ index: Int) throws(Violation) {
        guard let core = nodes[index].core else { return }
        let applied = nodes[index].applied
        guard applied > core.log.snapshotIndex, let term = core.log.term(at: applied) else { return }
        let data = nodes[index].store.snapshot()
        let snapshot = Snapshot(
            metadata: SnapshotMetadata(index: applied, term: term, configuration: core.configuration(at: applied)), data: data)
        nodes[index].disk.storeLocalSnapshot(snapshot)
        if tracing { trace("\(nodes[index].id) snapshots at \(applied)@\(term)") }
        try step(index, .snapshotTaken(index: applied, data: data))
    }

    private func crashSomeone() throws(Violation) {
        let alive = nodes.indices.filter { nodes[$0].core != nil }
        guard phase == .chaos, !alive.isEmpty else { return }
        // Leaders are the interesting victims: half the crashes hit the current one.
        let leader = faultRandom.chance(0.5) ? currentLeader() : nil
        let index = leader ?? alive[Int(faultRandom.next() % UInt64(alive.count))]
        let pending = nodes[index].disk.unsynced.count
        let survivors = Int(faultRandom.next() % UInt64(pending + 1))
        let torn: Int? = faultRandom.chance(parameters.tornWriteRate) ? Int(faultRandom.next() % 4) : nil
        do { try nodes[index].disk.crash(survivors: survivors, tornEntries: torn) } catch {
            throw Violation("disk", "\(nodes[index].id): \(error.description)")
        }
        try checkDurableWrites(index)
        trace("\(nodes[index].id) crashes (\(survivors) of \(pending) unsynced writes survive\(torn.map { ", torn tail keeps \($0) entries" } ?? ""))")
        nodes[index].core = nil
        nodes[index].pausedUntil = nil
        nodes[index].epoch += 1
        nodes[index].batches.removeAll()
        nodes[index].syncScheduled = false
        nodes[index].scheduledTick = nil
        nodes[index].proposals.removeAll()
        nodes[index].readWaits.removeAll()
        let downtime = 100 + Int64(faultRandom.next() % 2000)
        queue.push(.restart(node: index), at: now + .milliseconds(downtime))
    }

    private func pauseSomeone() {
        let running = nodes.indices.filter { nodes[$0].core != nil && !nodes[$0].isPaused(at: now) }
        guard phase == .chaos, !running.isEmpty else { return }
        let index = (faultRandom.chance(0.6) ? currentLeader() : nil) ?? running[Int(faultRandom.next() % UInt64(running.count))]
        let span = parameters.raft.electionTimeout.totalNanoseconds
        let pause = Duration.nanoseconds(span + Int64(faultRandom.next() % UInt64(max(3 * span, 1))))
        nodes[index].pausedUntil = now + pause
        trace("\(nodes[index].id) pauses for \(pause)")
    }

    // MARK: - Network

    private func send(_ message: Message) {
        guard let from = indexOf[message.from], let to = indexOf[message.to] else { return }
        messagesSent += 1
        if blocked.contains(Link(from: from, to: to)) || networkRandom.chance(dropRate) {
            if tracing { trace("\(message.from)→\(message.to) \(message.payload.kind) dropped") }
            return
        }
        let copies = networkRandom.chance(duplicateRate) ? 2 : 1
        for _ in 0..<copies {
            var spread = (parameters.maxDelay - parameters.minDelay).totalNanoseconds
            if phase == .chaos && networkRandom.chance(parameters.stragglerRate) {
                spread = 2 * parameters.raft.electionTimeout.totalNanoseconds
            }
            let delay = parameters.minDelay.totalNanoseconds + Int64(networkRandom.next() % UInt64(max(spread, 1)))
            queue.push(.deliver(message), at: now + .nanoseconds(delay))
        }
    }

    private func makePartition() {
        guard phase == .chaos else { return }
        let alive = nodes.indices.filter { !nodes[$0].decommissioned }
        guard alive.count > 1 else {
            scheduleFault(.partition, every: parameters.partitionEvery)
            return
        }
        blocked.removeAll()
        var description: [String] = []
        if faultRandom.chance(0.6) {
            // Symmetric: split into two sides.
            var side: [Bool] = alive.map { _ in faultRandom.chance(0.5) }
            if let leader = currentLeader(), let position = alive.firstIndex(of: leader), faultRandom.chance(0.5) {
                // Strand the leader in a minority, where it keeps taking writes it cannot commit.
                side = alive.map { _ in false }
                side[position] = true
                for other in alive.indices where other != position && side.filter({ $0 }).count * 2 < alive.count - 1 {
                    if faultRandom.chance(0.3) { side[other] = true }
                }
            }
            if !side.contains(true) { side[0] = true }
            if !side.contains(false) { side[side.count - 1] = false }
            for (a, sideA) in zip(alive, side) {
                for (b, sideB) in zip(alive, side) where sideA != sideB { blocked.insert(Link(from: a, to: b)) }
            }
            description.append("split " + zip(alive, side).filter { $0.1 }.map { nodes[$0.0].id.rawValue }.joined(separator: ",")
                + " | " + zip(alive, side).filter { !$0.1 }.map { nodes[$0.0].id.rawValue }.joined(separator: ","))
        } else {
            // Asymmetric: a few one-way links go dark.
            let count = 1 + Int(faultRandom.next() % 3)
            for _ in 0..<count {
                let a = alive[Int(faultRandom.next() % UInt64(alive.count))]
                let b = alive[Int(faultRandom.next() % UInt64(alive.count))]
                if a != b {
                    blocked.insert(Link(from: a, to: b))
                    description.append("\(nodes[a].id)↛\(nodes[b].id)")
                }
            }
        }
        trace("partition: " + description.joined(separator: " "))
        let heal = 300 + Int64(faultRandom.next() % 3000)
        queue.push(.heal, at: now + .milliseconds(heal))
    }

    private func healPartition() {
        if !blocked.isEmpty { trace("partition healed") }
        blocked.removeAll()
    }

    // MARK: - Membership and leadership transfer

    /// The server that is leader in the highest term, if any.
    private func currentLeader() -> Int? {
        var best: Int?
        for index in nodes.indices where !nodes[index].isPaused(at: now) {
            guard let core = nodes[index].core, core.isLeader else { continue }
            if let current = best, nodes[current].core!.term >= core.term { continue }
            best = index
        }
        return best
    }

    private func newRequest(_ request: Request) -> RequestID {
        let id = nextRequestID
        nextRequestID += 1
        requests[id] = request
        return id
    }

    private func changeMembership() throws(Violation) {
        guard phase == .chaos, let leader = currentLeader(), let core = nodes[leader].core else { return }
        let configuration = core.configuration
        let running = nodes.filter { !$0.decommissioned }.count
        let change: MembershipChange
        if let nonvoter = configuration.servers.first(where: { $0.suffrage == .nonvoter }) {
            change = .promote(nonvoter.id)
        } else if running < parameters.maxServers && nodes.count < parameters.maxCreatedServers && faultRandom.chance(0.6) {
            let id = ServerID("s\(nodes.count + 1)")
            let index = addNode(id)
            try start(index)
            change = faultRandom.chance(0.5) ? .addNonVoter(id) : .addVoter(id)
        } else if configuration.servers.count > 1 {
            let members = configuration.servers
            change = .remove(members[Int(faultRandom.next() % UInt64(members.count))].id)
        } else {
            return
        }
        trace("membership: ask \(nodes[leader].id) to \(change)")
        try step(leader, .changeMembership(newRequest(.membership(change)), change))
    }

    private func transferLeadership() throws(Violation) {
        guard phase == .chaos, let leader = currentLeader() else { return }
        trace("ask \(nodes[leader].id) to transfer leadership")
        try step(leader, .transferLeadership(newRequest(.transfer), target: nil))
    }

    // MARK: - Client workload

    /// Checked operations are spread over the whole chaos phase (refused ones are retried by later
    /// ones), so linearizability is checked across crashes, partitions and leader changes.
    private var checkedOperationInterval: Duration {
        parameters.chaosDuration / (parameters.keys * parameters.operationsPerKey * 2)
    }

    /// Where a client sends a request: clients follow leader hints, but some reach a server that
    /// only believes it leads (a deposed leader not yet aware of it) or any server at all.
    private func pickTarget() -> Int? {
        let alive = nodes.indices.filter { nodes[$0].core != nil && !nodes[$0].isPaused(at: now) }
        guard !alive.isEmpty else { return nil }
        let roll = workloadRandom.next() % 10
        let believers = alive.filter { nodes[$0].core?.isLeader == true }
        if roll < 4, !believers.isEmpty { return believers[Int(workloadRandom.next() % UInt64(believers.count))] }
        if roll < 8, let leader = currentLeader() { return leader }
        return alive[Int(workloadRandom.next() % UInt64(alive.count))]
    }

    /// Background writes to the unchecked register keep the log growing under load.
    private func issueLoad() throws(Violation) {
        guard let target = pickTarget() else { return }
        let value = nextValue
        nextValue += 1
        try step(target, .propose(newRequest(.load), KVStore.encode(.put(key: parameters.keys, value: value))))
    }

    private func issueClientOperation() throws(Violation) {
        guard let target = pickTarget() else { return }
        // Histories stay short per key so the linearizability search stays cheap; refused
        // operations do not count.
        let open = (0..<parameters.keys).filter { key in
            histories[key].filter { !operations[$0].void }.count < parameters.operationsPerKey
        }
        guard !open.isEmpty else { return }
        let key = open[Int(workloadRandom.next() % UInt64(open.count))]
        let kind: RegisterOperation.Kind
        let roll = workloadRandom.next() % 10
        if roll < 4 {
            kind = .put(nextValue)
            nextValue += 1
        } else if roll < 7 {
            // Expect a value this key really had, so some CAS operations succeed.
            let written = histories[key].compactMap { (op: Int) -> UInt64? in
                switch operations[op].record.kind {
                case .put(let value): value
                case .cas(_, let new): new
                case .get: nil
                }
            }
            let expected = written.isEmpty || workloadRandom.chance(0.2) ? 0 : written[Int(workloadRandom.next() % UInt64(written.count))]
            kind = .cas(expected: expected, new: nextValue)
            nextValue += 1
        } else {
            kind = .get
        }
        let operation = operations.count
        operations.append(ClientOperation(
            key: key, record: RegisterOperation(kind: kind, invoked: now, completed: nil, outcome: .unknown), node: target))
        histories[key].append(operation)
        queue.push(.clientTimeout(operation: operation), at: now + parameters.clientTimeout)
        if tracing { trace("client op \(operation) → \(nodes[target].id): key \(key) \(kind)") }
        let request = newRequest(.client(operation: operation))
        switch kind {
        case .put(let value):
            try step(target, .propose(request, KVStore.encode(.put(key: key, value: value))))
        case .cas(let expected, let new):
            try step(target, .propose(request, KVStore.encode(.cas(key: key, expected: expected, new: new))))
        case .get:
            try step(target, .read(request))
        }
    }

    private func complete(_ operation: Int, _ outcome: RegisterOperation.Outcome) {
        guard !operations[operation].settled, !operations[operation].void else { return }
        operations[operation].settled = true
        operations[operation].record.completed = now
        operations[operation].record.outcome = outcome
        if tracing { trace("client op \(operation) completes: \(outcome)") }
    }

    private func voidOperation(_ operation: Int, reason: String) {
        guard !operations[operation].settled, !operations[operation].void else { return }
        operations[operation].void = true
        if tracing { trace("client op \(operation) refused: \(reason)") }
    }

    private func readAnswered(_ index: Int, _ read: ReadState) {
        guard case .client(let operation) = requests.removeValue(forKey: read.id) else { return }
        switch read.result {
        case .success(let readIndex):
            nodes[index].readWaits.append((operation, readIndex))
        case .failure(let error):
            voidOperation(operation, reason: "\(error)")
        }
    }

    private func serveReads(_ index: Int) {
        let applied = nodes[index].applied
        var waiting: [(operation: Int, index: LogIndex)] = []
        for wait in nodes[index].readWaits {
            if wait.index <= applied {
                complete(wait.operation, .value(nodes[index].store.values[operations[wait.operation].key]))
            } else {
                waiting.append(wait)
            }
        }
        nodes[index].readWaits = waiting
    }

    private func requestAnswered(_ index: Int, _ outcome: RequestOutcome) throws(Violation) {
        guard let request = requests.removeValue(forKey: outcome.id) else { return }
        switch (request, outcome.result) {
        case (.client(let operation), .success(let position)):
            nodes[index].proposals[position.index] = (operation, position.term)
        case (.client(let operation), .failure(let error)):
            voidOperation(operation, reason: "\(error)")
        case (.membership(let change), .success(let position)):
            trace("membership \(change) appended at \(position)")
        case (.membership(let change), .failure(let error)):
            trace("membership \(change) refused: \(error)")
            if case .addVoter(let id, _) = change, let added = indexOf[id], !nodes[added].everMember { decommission(added) }
            if case .addNonVoter(let id, _) = change, let added = indexOf[id], !nodes[added].everMember { decommission(added) }
        case (.load, _):
            break
        case (.transfer, .success):
            trace("leadership transfer started")
        case (.transfer, .failure(let error)):
            trace("leadership transfer refused: \(error)")
        }
    }

    // MARK: - Liveness and final checks

    private func beginLiveness() throws(Violation) {
        phase = .liveness
        healPartition()
        dropRate = 0
        duplicateRate = 0
        livenessDeadline = now + parameters.livenessBound
        trace("chaos over: network healed, crashed servers restart; a leader must emerge within \(parameters.livenessBound)")
        for index in nodes.indices where nodes[index].core == nil && !nodes[index].decommissioned {
            try start(index)
        }
        queue.push(.livenessCheck, at: now + .milliseconds(100))
    }

    private func converged() throws(Violation) -> Bool {
        guard let leader = currentLeader(), let core = nodes[leader].core, let state = core.leadership else { return false }
        guard core.commitIndex == core.log.lastIndex, core.commitIndex >= state.termStartIndex,
              nodes[leader].applied == core.commitIndex
        else { return false }
        for server in core.configuration.servers {
            guard let member = indexOf[server.id] else { return false }
            guard let follower = nodes[member].core else {
                if nodes[member].decommissioned { continue }
                return false
            }
            guard follower.term == core.term, follower.leader == core.id, follower.commitIndex == core.commitIndex,
                  nodes[member].applied == core.commitIndex
            else { return false }
        }
        return true
    }

    private func clusterSummary() -> String {
        nodes.map { node in
            guard let core = node.core else { return "\(node.id): \(node.decommissioned ? "decommissioned" : "down")" }
            return "\(node.id): \(core.role.name) term \(core.term) last \(core.log.lastIndex) commit \(core.commitIndex) applied \(node.applied) leader \(core.leader.map { "\($0)" } ?? "-") config \(core.configuration)"
        }.joined(separator: "; ")
    }

    private func checkLinearizability() throws(Violation) {
        for key in histories.indices {
            let history = histories[key].filter { !operations[$0].void }.map { operations[$0].record }
            if !LinearizabilityChecker.check(history) {
                throw Violation("linearizability", "key \(key) history: " + history.map(\.description).joined(separator: "; "))
            }
        }
    }

    // MARK: - Trace

    private func trace(_ line: @autoclosure () -> String) {
        guard tracing else { return }
        traceLines.append("[\(now)] \(line())")
    }

    private func describe(_ payload: MessagePayload) -> String {
        switch payload {
        case .preVote(let last): "PreVote last=\(last)"
        case .preVoteResponse(let granted): "PreVoteResp \(granted ? "granted" : "rejected")"
        case .requestVote(let last, let transfer): "RequestVote last=\(last)\(transfer ? " (transfer)" : "")"
        case .voteResponse(let granted): "VoteResp \(granted ? "granted" : "rejected")"
        case .appendEntries(let append):
            "Append prev=\(append.prevIndex)@\(append.prevTerm) entries=\(append.entries.count) commit=\(append.commit)"
        case .appendResponse(let response):
            response.success ? "AppendResp ok match=\(response.matchIndex)"
                : "AppendResp reject at \(response.rejectedIndex) hint=\(response.conflictIndex)@\(response.conflictTerm.map { "\($0)" } ?? "-")"
        case .heartbeat(let commit, let round): "Heartbeat commit=\(commit) round=\(round)"
        case .heartbeatResponse(let round): "HeartbeatResp round=\(round)"
        case .installSnapshot(let install):
            "InstallSnapshot \(install.metadata.index)@\(install.metadata.term) bytes \(install.offset)+\(install.chunk.count)/\(install.totalSize)"
        case .installSnapshotResponse(let response):
            "InstallSnapshotResp \(response.snapshotIndex) next=\(response.nextOffset)\(response.done ? " done" : "")"
        case .timeoutNow: "TimeoutNow"
        }
    }
}
