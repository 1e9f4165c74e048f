import ConsulCore
import ConsulCrypto
@testable import Gossip

/// Serf cores on a tiny deterministic network (datagrams take `latency`, streams are answered at
/// once). The "application" on every node records events and answers queries with its name.
struct SerfTestNetwork {
    var cores: [SerfCore] = []
    var now = Timestamp.zero
    var latency: Duration = .milliseconds(5)
    var crashed: Set<Int> = []
    var memberEvents: [[SerfMemberEvent]]
    var userEvents: [[SerfUserEventDelivery]]
    var queries: [[SerfIncomingQuery]]
    var responses: [SerfQueryID: [String: [UInt8]]] = [:]
    var acks: [SerfQueryID: [String]] = [:]
    var finishedQueries: Set<SerfQueryID> = []
    var keyResults: [SerfQueryID: SerfKeyOperationResult] = [:]
    var keyrings: [Keyring?]
    var joinResults: [JoinID: (Int, [String])] = [:]
    var leaveFinished: Set<Int> = []
    /// Finished force-leaves: whether each timed out.
    var forceLeaves: [ForceLeaveID: Bool] = [:]
    /// Name-conflict votes each node ran (a node that lost stops, as if crashed).
    var conflicts: [(Int, SerfNameConflict)] = []
    var logs: [(Int, String)] = []
    /// The application answers queries (with its node name) unless told not to.
    var answerQueries = true
    private var inFlight: [(at: Timestamp, from: Int, to: Int, bytes: [UInt8])] = []
    private let codec = PacketCodec()

    init(count: Int, config: SerfConfig = SerfConfig(swim: .lan), keyring: Keyring? = nil, seed: UInt64 = 1) {
        var random = SeededRandom(seed: seed)
        memberEvents = Array(repeating: [], count: count)
        userEvents = Array(repeating: [], count: count)
        queries = Array(repeating: [], count: count)
        keyrings = Array(repeating: keyring, count: count)
        for index in 0..<count {
            var core = try! SerfCore(
                name: "n\(index)", address: Self.address(index), config: config, keyring: keyring, random: random.split(), now: now)
            let startup = core.startupEffects()
            cores.append(core)
            perform(startup, from: index)
        }
    }

    /// Adds a node named `name` (anything, even a name already taken) at the next address.
    @discardableResult
    mutating func addNode(named name: String, config: SerfConfig = SerfConfig(swim: .lan), seed: UInt64 = 99) -> Int {
        let index = cores.count
        var random = SeededRandom(seed: seed)
        var core = try! SerfCore(name: name, address: Self.address(index), config: config, keyring: nil, random: random.split(), now: now)
        memberEvents.append([])
        userEvents.append([])
        queries.append([])
        keyrings.append(nil)
        let startup = core.startupEffects()
        cores.append(core)
        perform(startup, from: index)
        return index
    }

    static func address(_ index: Int) -> GossipAddress { GossipAddress(ip: [127, 0, 0, UInt8(index + 1)], port: 7946) }
    static func index(of address: GossipAddress) -> Int { Int(address.ip[3]) - 1 }

    func status(of subject: Int, seenBy observer: Int) -> SerfMemberStatus? { cores[observer].member("n\(subject)")?.status }

    mutating func joinAll(settle: Duration = .seconds(5)) {
        for index in cores.indices.dropFirst() { input(index, .join(JoinID(UInt64(index)), [Self.address(0)], ignoreOld: false)) }
        run(for: settle)
    }

    mutating func input(_ index: Int, _ input: SerfInput) {
        perform(cores[index].handle(input, now: now), from: index)
    }

    mutating func perform(_ effects: [SerfEffect], from index: Int) {
        for effect in effects {
            switch effect {
            case .swim(let transport): performTransport(transport, from: index)
            case .member(let event): memberEvents[index].append(event)
            case .userEvent(let event): userEvents[index].append(event)
            case .query(let query):
                queries[index].append(query)
                if answerQueries { input(index, .respond(query, payload: Array("n\(index)".utf8))) }
            case .queryAck(let id, let from): acks[id, default: []].append(from)
            case .queryResponse(let id, let from, let payload): responses[id, default: [:]][from] = payload
            case .queryFinished(let id): finishedQueries.insert(id)
            case .keyringChanged(let keyring): keyrings[index] = keyring
            case .keyOperationFinished(let id, _, let result): keyResults[id] = result
            case .joinFinished(let id, let joined, let errors): joinResults[id] = (joined, errors)
            case .leaveFinished: leaveFinished.insert(index)
            case .forceLeaveFinished(let id, let timedOut): forceLeaves[id] = timedOut
            case .nameConflictResolved(let vote):
                conflicts.append((index, vote))
                if !vote.kept { crashed.insert(index) }  // as the shell does: gossip stops
            }
        }
    }

    private mutating func performTransport(_ effect: SWIMEffect, from index: Int) {
        switch effect {
        case .sendPacket(let to, let messages, let checksum):
            let target = Self.index(of: to)
            guard !crashed.contains(index) else { return }
            let bytes = try! codec.encode(messages, options: OutboundPacketOptions(compress: true, checksum: checksum), cipher: nil)
            inFlight.append((now + latency, index, target, bytes))
        case .openStream(let id, let to, let message, _, _):
            let target = Self.index(of: to)
            var outcome = StreamOutcome.failed(GossipStreamError("connection refused"))
            if !crashed.contains(target) && !crashed.contains(index) {
                let replies = cores[target].handle(.inboundStream(InboundStreamID(id.raw), from: Self.address(index), message: message), now: now)
                var rest: [SerfEffect] = []
                for reply in replies {
                    if case .swim(.replyStream(_, let answer)) = reply { outcome = answer.map { .reply($0) } ?? .sent } else { rest.append(reply) }
                }
                perform(rest, from: target)
            }
            perform(cores[index].handle(.streamResult(id, outcome), now: now), from: index)
        case .log(_, let text):
            logs.append((index, text))
        case .replyStream, .joinFinished, .leaveBroadcastFinished, .probeCompleted, .suspicionExpired:
            break
        }
    }

    mutating func run(for span: Duration) {
        let end = now + span
        var steps = 0
        while steps < 2_000_000 {
            steps += 1
            let nextPacket = inFlight.map(\.at).min()
            var nextTick: (Timestamp, Int)?
            for index in cores.indices where !crashed.contains(index) {
                let wake = cores[index].nextWakeup
                if nextTick == nil || wake < nextTick!.0 { nextTick = (wake, index) }
            }
            guard let at = [nextPacket, nextTick?.0].compactMap({ $0 }).min(), at <= end else { break }
            now = max(now, at)
            if let packetTime = nextPacket, packetTime <= (nextTick?.0 ?? .init(nanoseconds: .max)) {
                let packet = inFlight.remove(at: inFlight.firstIndex { $0.at == packetTime }!)
                guard !crashed.contains(packet.to) else { continue }
                let decoded = try! codec.decode(packet.bytes, cipher: nil)
                input(packet.to, .packet(from: Self.address(packet.from), messages: decoded.messages))
            } else if let (_, index) = nextTick {
                input(index, .tick)
            }
        }
        now = end
    }
}
