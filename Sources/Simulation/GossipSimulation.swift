import ConsulCore
import Gossip

/// The knobs of one simulated gossip run, all drawn from the seed.
package struct GossipSimulationParameters: Sendable, CustomStringConvertible {
    package var members: Int
    package var profileName: String
    package var swim: SWIMConfig
    package var lossRate: Double
    /// A TCP exchange fails outright with this probability (retransmissions hide most loss).
    package var streamFailureRate: Double
    package var minDelay: Duration = .milliseconds(1)
    package var maxDelay: Duration
    package var crashes: Int
    /// Chance that a crashed member is restarted (same name and address, fresh process) later on.
    package var restartChance: Double
    package var partitions: Int
    package var leaves: Int
    package var userEvents: Int
    package var chaosDuration: Duration

    /// `members` overrides the drawn pool size (the draw stays in place so other knobs do not move).
    package init(seed: UInt64, members override: Int? = nil) {
        var random = SeededRandom(seed: seed).stream("gossip-parameters")
        func pick<T>(_ choices: [T]) -> T { choices[Int(random.next() % UInt64(choices.count))] }
        func milliseconds(_ range: ClosedRange<Int64>) -> Duration {
            let span: UInt64 = UInt64(range.upperBound - range.lowerBound + 1)
            return .milliseconds(range.lowerBound + Int64(random.next() % span))
        }
        let drawn = pick([3, 3, 4, 5, 5, 6, 7, 8, 10, 12, 16, 24])
        members = max(1, override ?? drawn)
        profileName = pick(["lan", "local"])
        swim = SWIMConfig.profile(named: profileName)!
        // The local profile is memberlist's loopback tuning (2 retransmits, 3 s suspicion): it is
        // only drawn with the little loss a loopback sees; the LAN profile gets up to 20 %.
        let lanLoss = pick([0, 0, 0.01, 0.05, 0.1, 0.2])
        let localLoss = pick([0, 0, 0.01, 0.05])
        lossRate = profileName == "local" ? localLoss : lanLoss
        streamFailureRate = lossRate / 2
        maxDelay = pick([milliseconds(2...10), milliseconds(10...50)])
        crashes = min(pick([0, 1, 1, 2, 3]), (members - 1) / 2)
        restartChance = pick([0, 0.5])
        partitions = members >= 3 ? pick([0, 0, 1, 2]) : 0
        leaves = members > 3 ? pick([0, 0, 1]) : 0
        userEvents = pick([0, 3, 10])
        chaosDuration = milliseconds(40_000...80_000)
    }

    package var description: String {
        let network = "members=\(members) profile=\(profileName) loss=\(lossRate) delay≤\(maxDelay)"
        let faults = "crashes=\(crashes) restart=\(restartChance) partitions=\(partitions) leaves=\(leaves)"
        return "\(network) \(faults) events=\(userEvents) chaos=\(chaosDuration)"
    }

    /// The largest suspicion timeout for this pool (memberlist: max multiplier × the minimum).
    var suspicionMax: Duration {
        let minimum: Duration = SWIMMath.suspicionTimeout(mult: swim.suspicionMult, nodes: members, interval: swim.probeInterval)
        return minimum * swim.suspicionMaxTimeoutMult
    }

    /// A crashed member must be dead at every member that could always reach the rest within this
    /// bound: some member probes it within two probe rounds (each member probes every other once
    /// per round; a round is stretched by a Lifeguard health score of at most 2 under loss), its
    /// suspicion runs at most `suspicionMax`, and the dead message is gossiped within seconds.
    var detectionBound: Duration {
        let rounds: Int = 6 * (members + 1)
        let probing: Duration = swim.probeInterval * rounds
        return probing + suspicionMax + Duration.seconds(10)
    }

    /// After healing, views must agree within this bound: dead members are gossiped to for
    /// `gossipToTheDeadTime`, failed ones are reconnected every 30 s, push/pull runs throughout.
    var livenessBound: Duration { Duration.seconds(180) + suspicionMax }
}

/// What one seed's run produced.
package struct GossipSimulationReport: Sendable {
    package var seed: UInt64
    package var violation: Violation?
    package var trace: [String]
    package var fingerprint: UInt64
    package var events: Int
    package var packetsSent: Int
    /// Healthy members declared dead by a member that could always reach them (counted; bounded).
    package var falsePositives: Int
    /// Healthy members seen failed by anyone for any reason (partition aftermath included).
    package var flaps: Int
    /// When every view agreed after healing (nil if never).
    package var convergedAt: Timestamp?
    package var virtualTime: Timestamp
}

/// A whole gossip pool (serf over SWIM, the real cores and wire codec) in one process on a virtual
/// clock. One seed drives packet loss and delay, partitions and heals, crashes and restarts,
/// graceful leaves and user events. Checkers:
/// - incarnations only grow (each process's own, and every view of every member);
/// - a member that stayed up is not declared dead by the suspicion timer of a member that could
///   always reach it (false positives: counted, and bounded by the loss rate); failures merely
///   passed on, such as a healed minority's news, are counted as flaps and refuted;
/// - a crashed member is declared failed within `detectionBound` by every member that could
///   always reach the rest of the pool;
/// - after healing, within `livenessBound`, all views agree (live members alive, crashed ones
///   failed, departed ones left) and every user event reached every live member exactly once.
package final class GossipSimulation {
    package let seed: UInt64
    package let parameters: GossipSimulationParameters
    private var coreRandom: SeededRandom
    private var networkRandom: SeededRandom
    private var faultRandom: SeededRandom
    private var queue = EventQueue<Event>()
    private var now = Timestamp.zero
    private var nodes: [Node] = []
    private var partition: Set<Int>?
    /// Pairs (lower index first) that were ever cut apart by a partition.
    private var everSplit: Set<[Int]> = []
    /// Members ever cut off from the majority.
    private var everIsolated: Set<Int> = []
    private var crashes: [(node: Int, at: Timestamp)] = []
    private var sentEvents: [(name: String, sender: Int)] = []
    private var tracing: Bool
    private var traceLines: [String] = []
    private var fingerprint: UInt64 = 0xCBF2_9CE4_8422_2325
    private var events = 0
    private var packetsSent = 0
    private var falsePositives = 0
    /// Healthy members seen failed anywhere, including dead news from a healed minority (which
    /// memberlist accepts too and the member then refutes): reported, not bounded.
    private var flaps = 0
    private var nextInboundStream: UInt64 = 0
    private var nextJoin: UInt64 = 0
    private var chaosOver = false
    private var convergedAt: Timestamp?
    private var pendingViolations: [Violation] = []
    private let codec = PacketCodec()

    /// Runs needing more events than this are stuck (a timer that does not move time forward).
    package static let maxEvents = 20_000_000

    private struct Node {
        var name: String
        var address: GossipAddress
        var core: SerfCore?
        /// Bumped by a crash or restart: events for an earlier process are dropped.
        var generation = 0
        var epoch = 0
        var scheduled: Timestamp?
        var everCrashed = false
        var left = false
        /// Left while connected to the majority and no partition came before the leave finished:
        /// everyone must end up seeing it as left (otherwise failed is as good).
        var leftCleanly = false
        var ownIncarnation: UInt32 = 0
        /// Last incarnation this node's view held for each member.
        var seenIncarnations: [String: UInt32] = [:]
        /// Event names delivered to the current process.
        var deliveredEvents: [String: Int] = [:]
        /// When this node's view marked each member failed or left.
        var failedAt: [String: Timestamp] = [:]

        var isUp: Bool { core != nil }
    }

    private enum Event {
        case tick(node: Int, epoch: Int)
        case packet(to: Int, generation: Int, from: Int, bytes: [UInt8])
        case streamArrives(to: Int, generation: Int, from: Int, fromGeneration: Int, id: OutboundStreamID, message: StreamMessage)
        case streamResult(to: Int, generation: Int, id: OutboundStreamID, outcome: StreamOutcome)
        case crash
        case restart(node: Int)
        /// A join that reached nobody is retried, as `-retry-join` does.
        case retryJoin(node: Int, generation: Int)
        case partition
        case heal
        case leave
        case userEvent(number: Int)
        case sample
        case endChaos
        case livenessCheck

        var code: UInt64 {
            switch self {
            case .tick: 1
            case .packet: 2
            case .streamArrives: 3
            case .streamResult: 4
            case .crash: 5
            case .restart: 6
            case .retryJoin: 14
            case .partition: 7
            case .heal: 8
            case .leave: 9
            case .userEvent: 10
            case .sample: 11
            case .endChaos: 12
            case .livenessCheck: 13
            }
        }
    }

    package init(seed: UInt64, trace: Bool = false, members: Int? = nil) {
        self.seed = seed
        parameters = GossipSimulationParameters(seed: seed, members: members)
        let root = SeededRandom(seed: seed)
        coreRandom = root.stream("gossip-cores")
        networkRandom = root.stream("gossip-network")
        faultRandom = root.stream("gossip-faults")
        tracing = trace
    }

    // MARK: - Running

    package func run() -> GossipSimulationReport {
        var violation: Violation?
        do throws(Violation) {
            setUp()
            let horizon: Timestamp = Timestamp.zero + parameters.chaosDuration + parameters.livenessBound + Duration.seconds(1)
            while convergedAt == nil, let (time, event) = queue.pop() {
                guard time <= horizon else {
                    let why = divergence() ?? "?"
                    throw Violation("liveness", "views did not converge within \(parameters.livenessBound) after healing: \(why)")
                }
                now = time
                events += 1
                guard events <= Self.maxEvents else { throw Violation("liveness", "more than \(Self.maxEvents) events by \(now)") }
                fingerprint = (fingerprint ^ time.nanoseconds ^ (event.code << 56)) &* 0x0000_0100_0000_01B3
                try process(event)
            }
            if convergedAt == nil { throw Violation("liveness", "the simulation stopped before the views converged") }
            try checkFinal()
        } catch {
            violation = error
            trace("VIOLATION \(error)")
        }
        return GossipSimulationReport(
            seed: seed, violation: violation, trace: traceLines, fingerprint: fingerprint, events: events, packetsSent: packetsSent,
            falsePositives: falsePositives, flaps: flaps, convergedAt: convergedAt, virtualTime: now)
    }

    /// False positives allowed per run: none on a clean network; under loss one, plus one per
    /// `4 / loss` member-minutes (20 % loss: one per 20 member-minutes, about five times the rate
    /// measured over 300 seeds; a detector without Lifeguard and the TCP fallback does far worse).
    var falsePositiveBound: Int {
        guard parameters.lossRate > 0 else { return 0 }
        let minutes: Double = Double(parameters.chaosDuration.totalNanoseconds) / 60e9
        let memberMinutes: Double = Double(parameters.members) * minutes
        return 1 + Int(memberMinutes * parameters.lossRate / 4)
    }

    private func setUp() {
        trace("seed \(seed): \(parameters)")
        for index in 0..<parameters.members {
            let ip: [UInt8] = [10, 0, UInt8(index / 250), UInt8(index % 250 + 1)]
            nodes.append(Node(name: "n\(index)", address: GossipAddress(ip: ip, port: 7946)))
        }
        for index in nodes.indices {
            start(index)
            // Everyone joins through the first member (retrying until it works), so the pool is one.
            if index > 0 { join(index, through: 0) }
        }
        let chaosStart = Duration.seconds(10)
        let window: Duration = parameters.chaosDuration - chaosStart - Duration.seconds(5)
        let span = UInt64(max(1, window.totalNanoseconds))
        func at() -> Timestamp {
            let offset = Int64(faultRandom.next() % span)
            return Timestamp.zero + chaosStart + Duration.nanoseconds(offset)
        }
        for _ in 0..<parameters.crashes { queue.push(.crash, at: at()) }
        for _ in 0..<parameters.partitions { queue.push(.partition, at: at()) }
        for _ in 0..<parameters.leaves { queue.push(.leave, at: at()) }
        for number in 0..<parameters.userEvents { queue.push(.userEvent(number: number), at: at()) }
        queue.push(.sample, at: now + Duration.seconds(1))
        queue.push(.endChaos, at: now + parameters.chaosDuration)
    }

    private func start(_ index: Int) {
        var config = SerfConfig(swim: parameters.swim, tags: ["id": "\(index)"])
        config.reapInterval = .seconds(15)
        do {
            var core = try SerfCore(
                name: nodes[index].name, address: nodes[index].address, config: config, keyring: nil, random: coreRandom.split(), now: now)
            let startup = core.startupEffects()
            nodes[index].core = core
            nodes[index].ownIncarnation = core.swim.incarnation
            nodes[index].seenIncarnations = [:]
            nodes[index].deliveredEvents = [:]
            nodes[index].failedAt = [:]
            perform(startup, at: index)
            schedule(index)
        } catch {
            trace("cannot start \(nodes[index].name): \(error)")
        }
    }

    private func join(_ index: Int, through target: Int) {
        nextJoin += 1
        input(index, .join(JoinID(nextJoin), [nodes[target].address], ignoreOld: false))
    }

    // MARK: - Events

    private func process(_ event: Event) throws(Violation) {
        switch event {
        case .tick(let index, let epoch):
            guard nodes[index].isUp, nodes[index].epoch == epoch else { return }
            nodes[index].scheduled = nil
            try inputChecked(index, .tick)
        case .packet(let to, let generation, let from, let bytes):
            guard nodes[to].isUp, nodes[to].generation == generation else { return }
            let decoded: DecodedPacket
            do {
                decoded = try codec.decode(bytes, cipher: nil)
            } catch {
                throw Violation("codec", "\(nodes[from].name) sent a datagram that does not decode: \(error)")
            }
            try inputChecked(to, .packet(from: nodes[from].address, messages: decoded.messages))
        case .streamArrives(let to, let generation, let from, let fromGeneration, let id, let message):
            var outcome = StreamOutcome.failed(GossipStreamError("i/o timeout"))
            if nodes[to].isUp, nodes[to].generation == generation, connected(from, to) {
                nextInboundStream += 1
                let inbound = SerfInput.inboundStream(InboundStreamID(nextInboundStream), from: nodes[from].address, message: message)
                let effects = nodes[to].core!.handle(inbound, now: now)
                var rest: [SerfEffect] = []
                for effect in effects {
                    if case .swim(.replyStream(_, let reply)) = effect {
                        outcome = reply.map { StreamOutcome.reply($0) } ?? StreamOutcome.sent
                    } else {
                        rest.append(effect)
                    }
                }
                try afterInput(to, rest)
            }
            queue.push(.streamResult(to: from, generation: fromGeneration, id: id, outcome: outcome), at: now + delay())
        case .streamResult(let to, let generation, let id, let outcome):
            guard nodes[to].isUp, nodes[to].generation == generation else { return }
            try inputChecked(to, .streamResult(id, outcome))
        case .crash:
            crash()
        case .restart(let index):
            guard !nodes[index].isUp, !chaosOver else { return }
            nodes[index].generation += 1
            trace("restart \(nodes[index].name)")
            start(index)
            let candidates = nodes.indices.filter { $0 != index && nodes[$0].isUp && !nodes[$0].left }
            if !candidates.isEmpty { join(index, through: candidates[Int(faultRandom.next() % UInt64(candidates.count))]) }
        case .retryJoin(let index, let generation):
            guard nodes[index].isUp, nodes[index].generation == generation, !nodes[index].left else { return }
            if index != 0 && nodes[0].isUp && !nodes[0].left {
                join(index, through: 0)
            } else {
                let candidates = nodes.indices.filter { $0 != index && nodes[$0].isUp && !nodes[$0].left }
                if !candidates.isEmpty { join(index, through: candidates[Int(faultRandom.next() % UInt64(candidates.count))]) }
            }
        case .partition:
            guard partition == nil, nodes.count >= 3 else { return }
            startPartition()
        case .heal:
            if partition != nil { trace("heal") }
            partition = nil
        case .leave:
            let candidates = nodes.indices.filter { nodes[$0].isUp && !nodes[$0].left && !nodes[$0].everCrashed }
            guard candidates.count > 2 else { return }
            let index = candidates[Int(faultRandom.next() % UInt64(candidates.count))]
            nodes[index].left = true
            nodes[index].leftCleanly = partition == nil
            trace("leave \(nodes[index].name)")
            try inputChecked(index, .leave)
        case .userEvent(let number):
            try fireUserEvent(number)
        case .sample:
            try checkIncarnationViews()
            try checkDetection()
            queue.push(.sample, at: now + Duration.seconds(1))
        case .endChaos:
            chaosOver = true
            partition = nil
            trace("chaos over: healed; waiting for the views to converge")
            queue.push(.livenessCheck, at: now + Duration.seconds(1))
        case .livenessCheck:
            if divergence() == nil {
                convergedAt = now
                trace("converged")
            } else {
                queue.push(.livenessCheck, at: now + Duration.seconds(1))
            }
        }
    }

    private func startPartition() {
        let limit = UInt64(max(1, (nodes.count - 1) / 2))
        let minoritySize = 1 + Int(faultRandom.next() % limit)
        var order = Array(nodes.indices)
        for index in order.indices.reversed() { order.swapAt(index, Int(faultRandom.next() % UInt64(index + 1))) }
        let minority = Set(order.prefix(minoritySize))
        partition = minority
        for a in minority {
            everIsolated.insert(a)
            for b in nodes.indices where !minority.contains(b) {
                let pair: [Int] = [min(a, b), max(a, b)]
                everSplit.insert(pair)
            }
        }
        trace("partition: \(minority.sorted().map { nodes[$0].name }) cut off")
        // A leave still being gossiped may now not reach everyone.
        for index in nodes.indices where nodes[index].left && nodes[index].isUp { nodes[index].leftCleanly = false }
        let extra = Int64(faultRandom.next() % 20_000_000_000)
        queue.push(.heal, at: now + Duration.seconds(5) + Duration.nanoseconds(extra))
    }

    private func fireUserEvent(_ number: Int) throws(Violation) {
        let candidates = nodes.indices.filter { nodes[$0].isUp && !nodes[$0].left }
        guard !candidates.isEmpty else { return }
        let index = candidates[Int(faultRandom.next() % UInt64(candidates.count))]
        let name = "event-\(number)"
        let effects: [SerfEffect]
        do throws(SerfError) {
            effects = try nodes[index].core!.userEvent(name: name, payload: Array(name.utf8), coalesce: false, now: now)
        } catch {
            throw Violation("serf", "user event refused: \(error)")
        }
        sentEvents.append((name, index))
        trace("\(nodes[index].name) fires \(name)")
        try afterInput(index, effects)
    }

    private func crash() {
        let candidates = nodes.indices.filter { nodes[$0].isUp && !nodes[$0].left }
        guard candidates.count > (parameters.members + 1) / 2 else { return }
        let index = candidates[Int(faultRandom.next() % UInt64(candidates.count))]
        nodes[index].core = nil
        nodes[index].generation += 1
        nodes[index].everCrashed = true
        crashes.append((index, now))
        trace("crash \(nodes[index].name)")
        if faultRandom.chance(parameters.restartChance) {
            let after: Duration = parameters.detectionBound + Duration.seconds(Int64(faultRandom.next() % 20))
            queue.push(.restart(node: index), at: now + after)
        }
    }

    // MARK: - Driving cores

    /// For inputs outside event processing (setup): violations are raised at the next event.
    private func input(_ index: Int, _ input: SerfInput) {
        do throws(Violation) { try inputChecked(index, input) } catch { pendingViolations.append(error) }
    }

    private func inputChecked(_ index: Int, _ input: SerfInput) throws(Violation) {
        guard nodes[index].isUp else { return }
        let effects = nodes[index].core!.handle(input, now: now)
        try afterInput(index, effects)
    }

    private func afterInput(_ index: Int, _ effects: [SerfEffect]) throws(Violation) {
        perform(effects, at: index)
        if let core = nodes[index].core {
            let incarnation = core.swim.incarnation
            guard incarnation >= nodes[index].ownIncarnation else {
                let before = nodes[index].ownIncarnation
                throw Violation("incarnation", "\(nodes[index].name)'s own incarnation went from \(before) to \(incarnation)")
            }
            nodes[index].ownIncarnation = incarnation
            schedule(index)
        }
        if !pendingViolations.isEmpty { throw pendingViolations.removeFirst() }
    }

    private func schedule(_ index: Int) {
        guard let core = nodes[index].core else { return }
        let wake = max(core.nextWakeup, now)
        if nodes[index].scheduled == wake { return }
        nodes[index].epoch += 1
        nodes[index].scheduled = wake
        queue.push(.tick(node: index, epoch: nodes[index].epoch), at: wake)
    }

    private func perform(_ effects: [SerfEffect], at index: Int) {
        for effect in effects {
            switch effect {
            case .swim(let transport):
                carry(transport, from: index)
            case .member(let event):
                observe(event, at: index)
            case .userEvent(let event):
                let count = nodes[index].deliveredEvents[event.name, default: 0] + 1
                nodes[index].deliveredEvents[event.name] = count
                if count > 1 { pendingViolations.append(Violation("events", "\(nodes[index].name) got \(event.name) twice")) }
            case .query(let query):
                input(index, .respond(query, payload: []))
            case .joinFinished(_, let joined, let errors):
                if joined == 0 {
                    trace("\(nodes[index].name) join failed: \(errors.joined(separator: "; ")); retrying")
                    queue.push(.retryJoin(node: index, generation: nodes[index].generation), at: now + Duration.seconds(2))
                }
            case .leaveFinished:
                // As the shell does: a node that has left shuts down.
                trace("\(nodes[index].name) leave finished; shutting down")
                nodes[index].core = nil
                nodes[index].generation += 1
            case .queryAck, .queryResponse, .queryFinished, .keyringChanged, .keyOperationFinished, .forceLeaveFinished, .nameConflictResolved:
                break
            }
        }
    }

    private func carry(_ effect: SWIMEffect, from index: Int) {
        switch effect {
        case .sendPacket(let address, let messages, let checksum):
            packetsSent += 1
            guard let to = nodeIndex(address) else { return }
            if networkRandom.chance(parameters.lossRate) || !connected(index, to) { return }
            let bytes: [UInt8]
            do {
                bytes = try codec.encode(messages, options: OutboundPacketOptions(compress: false, checksum: checksum), cipher: nil)
            } catch {
                pendingViolations.append(Violation("codec", "\(nodes[index].name) built a datagram that does not encode: \(error)"))
                return
            }
            if bytes.count > parameters.swim.udpBufferSize + 64 {
                pendingViolations.append(Violation("codec", "\(nodes[index].name) built a \(bytes.count)-byte datagram"))
            }
            queue.push(.packet(to: to, generation: nodes[to].generation, from: index, bytes: bytes), at: now + delay())
        case .openStream(let id, let address, let message, _, let deadline):
            let generation = nodes[index].generation
            let target = nodeIndex(address)
            let failed = networkRandom.chance(parameters.streamFailureRate)
            guard let to = target, nodes[to].isUp, connected(index, to), !failed else {
                let outcome = StreamOutcome.failed(GossipStreamError("i/o timeout"))
                queue.push(.streamResult(to: index, generation: generation, id: id, outcome: outcome), at: max(deadline, now))
                return
            }
            let arrival = Event.streamArrives(
                to: to, generation: nodes[to].generation, from: index, fromGeneration: generation, id: id, message: message)
            queue.push(arrival, at: now + delay())
        case .log(let level, let text):
            if level >= .info { trace("\(nodes[index].name) \(level) \(text)") }
        case .suspicionExpired(let name, _):
            declaredDead(by: index, subjectName: name)
        case .replyStream, .joinFinished, .leaveBroadcastFinished, .probeCompleted:
            break
        }
    }

    private func nodeIndex(_ address: GossipAddress) -> Int? {
        guard address.ip.count == 4 else { return nil }
        let high: Int = Int(address.ip[2]) * 250
        let index: Int = high + Int(address.ip[3]) - 1
        return nodes.indices.contains(index) ? index : nil
    }

    private func delay() -> Duration {
        let span: Int64 = (parameters.maxDelay - parameters.minDelay).totalNanoseconds
        let offset = Int64(networkRandom.next() % UInt64(max(1, span)))
        return parameters.minDelay + Duration.nanoseconds(offset)
    }

    private func connected(_ a: Int, _ b: Int) -> Bool {
        guard let minority = partition else { return true }
        return minority.contains(a) == minority.contains(b)
    }

    // MARK: - Checkers

    private func observe(_ event: SerfMemberEvent, at observer: Int) {
        let subjectName = event.member.name
        switch event.kind {
        case .failed, .leave:
            if nodes[observer].failedAt[subjectName] == nil { nodes[observer].failedAt[subjectName] = now }
            trace("\(nodes[observer].name) sees \(subjectName) \(event.kind == .failed ? "failed" : "left")")
            guard event.kind == .failed, let subject = nodes.firstIndex(where: { $0.name == subjectName }) else { return }
            if nodes[subject].isUp && !nodes[subject].everCrashed && !nodes[subject].left { flaps += 1 }
        case .join:
            nodes[observer].failedAt[subjectName] = nil
            if tracing && nodes[observer].name != subjectName { trace("\(nodes[observer].name) sees \(subjectName) join") }
        case .update, .reap:
            break
        }
    }

    /// A member's own suspicion timer declared `subjectName` dead. That is the failure detector's
    /// mistake when the subject was healthy and the two could always reach each other.
    private func declaredDead(by observer: Int, subjectName: String) {
        guard let subject = nodes.firstIndex(where: { $0.name == subjectName }) else { return }
        let pair: [Int] = [min(observer, subject), max(observer, subject)]
        let healthy: Bool = nodes[subject].isUp && !nodes[subject].everCrashed && !nodes[subject].left
        guard healthy && !everSplit.contains(pair) else { return }
        falsePositives += 1
        trace("FALSE POSITIVE: \(nodes[observer].name) declared \(subjectName) dead")
        if falsePositives > falsePositiveBound {
            let detail = "\(falsePositives) healthy members declared dead (bound \(falsePositiveBound)); latest: \(nodes[observer].name) declared \(subjectName)"
            pendingViolations.append(Violation("false-positive", detail))
        }
    }

    /// Every member's view of every incarnation only grows (a member forgotten and met again
    /// starts over).
    private func checkIncarnationViews() throws(Violation) {
        for index in nodes.indices {
            guard let core = nodes[index].core else { continue }
            var seen: [String: UInt32] = [:]
            for member in core.swim.members {
                if let before = nodes[index].seenIncarnations[member.name], member.incarnation < before {
                    let detail = "\(nodes[index].name)'s view of \(member.name) went from incarnation \(before) to \(member.incarnation)"
                    throw Violation("incarnation", detail)
                }
                seen[member.name] = member.incarnation
            }
            nodes[index].seenIncarnations = seen
        }
    }

    /// Crashed members must be failed within the detection bound at every member that stayed up
    /// and was never cut off from the majority.
    private func checkDetection() throws(Violation) {
        let bound = parameters.detectionBound
        for crash in crashes where now.duration(since: crash.at) > bound {
            let subject = nodes[crash.node]
            // Restarted meanwhile: its new process may legitimately be alive.
            if subject.isUp { continue }
            for observer in nodes.indices {
                let node = nodes[observer]
                guard node.isUp, !node.left, !node.everCrashed, !everIsolated.contains(observer) else { continue }
                guard let failed = node.failedAt[subject.name] else {
                    let since = now.duration(since: crash.at)
                    throw Violation("detection", "\(node.name) still does not see \(subject.name) failed \(since) after its crash (bound \(bound))")
                }
                let took = failed.duration(since: crash.at)
                if took > bound {
                    throw Violation("detection", "\(node.name) saw \(subject.name) failed only \(took) after its crash (bound \(bound))")
                }
            }
        }
    }

    /// Why the views do not agree yet, or nil when they do.
    private func divergence() -> String? {
        let live = nodes.indices.filter { nodes[$0].isUp && !nodes[$0].left }
        for observer in live {
            let core = nodes[observer].core!
            let observerName = nodes[observer].name
            for subject in nodes.indices where subject != observer {
                let name = nodes[subject].name
                let serf: SerfMemberStatus = core.member(name)?.status ?? .none
                let swim: NodeState? = core.swim.nodes[name]?.state
                let swimAlive: Bool = swim == NodeState.alive
                let swimSuspect: Bool = swim == NodeState.suspect
                let view = "\(serf)/\(swim.map(String.init(describing:)) ?? "unknown")"
                if nodes[subject].isUp && !nodes[subject].left {
                    if serf != SerfMemberStatus.alive || !swimAlive { return "\(observerName) sees \(name) as \(view)" }
                } else if nodes[subject].left {
                    let acceptable: Bool = serf == SerfMemberStatus.left || serf == SerfMemberStatus.none
                        || (serf == SerfMemberStatus.failed && !nodes[subject].leftCleanly)
                    if !acceptable { return "\(observerName) sees departed \(name) as \(view)" }
                } else {
                    let looksAlive: Bool = serf == SerfMemberStatus.alive || serf == SerfMemberStatus.leaving
                    if looksAlive || swimAlive || swimSuspect { return "\(observerName) sees crashed \(name) as \(view)" }
                }
            }
        }
        for event in sentEvents where nodes[event.sender].isUp && !nodes[event.sender].everCrashed {
            for observer in live where nodes[observer].deliveredEvents[event.name] == nil {
                return "\(nodes[observer].name) has not received \(event.name)"
            }
        }
        return nil
    }

    private func checkFinal() throws(Violation) {
        try checkIncarnationViews()
        if falsePositives > falsePositiveBound {
            throw Violation("false-positive", "\(falsePositives) healthy members declared failed (bound \(falsePositiveBound))")
        }
    }

    private func trace(_ line: @autoclosure () -> String) {
        guard tracing else { return }
        traceLines.append("[\(now)] \(line())")
    }
}

/// `consul-sim gossip --seed S --count N [--members M]` and `consul-sim gossip --seed S --trace`.
package enum GossipSimulationCommand {
    package typealias Arguments = SeedRunArguments

    package static func parse(_ arguments: [String]) -> Arguments? {
        SeedRunArguments.parse(arguments, acceptsMembers: true)
    }

    package static func run(_ arguments: [String], out: (String) -> Void, err: (String) -> Void) -> Int32 {
        guard let parsed = parse(arguments) else {
            err(SimulatorCommand.usage)
            return 2
        }
        var failures = 0
        let membersFlag = parsed.members.map { " --members \($0)" } ?? ""
        for seed in parsed.seed..<(parsed.seed + parsed.count) {
            let report = GossipSimulation(seed: seed, trace: parsed.trace, members: parsed.members).run()
            if parsed.trace {
                for line in report.trace { out(line) }
                let converged = report.convergedAt.map { "\($0)" } ?? "never"
                out("events=\(report.events) packets=\(report.packetsSent) false-positives=\(report.falsePositives) flaps=\(report.flaps) converged=\(converged) fingerprint=\(String(report.fingerprint, radix: 16))")
            }
            if let violation = report.violation {
                failures += 1
                out("FAIL seed \(seed): \(violation) — reproduce: consul-sim gossip --seed \(seed)\(membersFlag) --trace")
            }
        }
        out("gossip: \(parsed.count) seeds, \(failures) failures")
        return failures == 0 ? 0 : 1
    }
}
