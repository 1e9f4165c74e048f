import ConsulCore
@testable import Gossip

/// A delegate that records what SWIM tells it.
struct RecordingDelegate: SWIMDelegate, Sendable {
    var joined: [String] = []
    var left: [String] = []
    var updated: [String] = []
    var pings: [(String, Duration)] = []
    var userMessages: [[UInt8]] = []
    var conflicts: [String] = []
    var pendingBroadcasts: [[UInt8]] = []

    func ackPayload() -> [UInt8] { [1, 2, 3] }
    mutating func notifyMessage(_ payload: [UInt8], now: Timestamp) { userMessages.append(payload) }
    mutating func broadcasts(overhead: Int, limit: Int) -> [[UInt8]] {
        var used = 0
        var out: [[UInt8]] = []
        while let next = pendingBroadcasts.first, used + overhead + next.count <= limit {
            used += overhead + next.count
            out.append(pendingBroadcasts.removeFirst())
        }
        return out
    }
    var hasBroadcasts: Bool { !pendingBroadcasts.isEmpty }
    func localState(join: Bool) -> [UInt8] { [] }
    mutating func mergeRemoteState(_ state: [UInt8], join: Bool, now: Timestamp) {}
    mutating func notifyJoin(_ node: SWIMNode, now: Timestamp) { joined.append(node.name) }
    mutating func notifyLeave(_ node: SWIMNode, now: Timestamp) { left.append(node.name) }
    mutating func notifyUpdate(_ node: SWIMNode, now: Timestamp) { updated.append(node.name) }
    mutating func notifyPingComplete(_ node: SWIMNode, rtt: Duration, payload: [UInt8], now: Timestamp) { pings.append((node.name, rtt)) }
    mutating func notifyConflict(existing: SWIMNode, other: SWIMNode, now: Timestamp) { conflicts.append(existing.name) }
}

/// A tiny deterministic network for SWIM cores: datagrams take `latency`, streams are answered
/// at once, and links can be cut per direction (UDP and TCP separately). Time moves only in `run`.
struct SWIMTestNetwork {
    typealias Core = SWIMCore<RecordingDelegate>

    var cores: [Core] = []
    var now = Timestamp.zero
    var latency: Duration = .milliseconds(5)
    /// Directed UDP links that drop everything.
    var cutUDP: Set<[Int]> = []
    var cutTCP: Set<[Int]> = []
    /// Crashed nodes neither send nor receive nor tick.
    var crashed: Set<Int> = []
    var logs: [(Int, GossipLogLevel, String)] = []
    var joinResults: [JoinID: (Int, [String])] = [:]
    var leaveFinished: Set<Int> = []
    var packetsSent = 0
    private var inFlight: [(at: Timestamp, from: Int, to: Int, bytes: [UInt8])] = []
    private let codec = PacketCodec()

    init(count: Int, config: SWIMConfig = .lan, seed: UInt64 = 1) {
        var random = SeededRandom(seed: seed)
        for index in 0..<count {
            cores.append(Core(
                name: "n\(index)", address: Self.address(index), meta: [0xFF, 0x80], config: config,
                delegate: RecordingDelegate(), random: random.split(), now: now))
        }
    }

    static func address(_ index: Int) -> GossipAddress { GossipAddress(ip: [127, 0, 0, UInt8(index + 1)], port: 7946) }
    static func index(of address: GossipAddress) -> Int { Int(address.ip[3]) - 1 }

    func state(of subject: Int, seenBy observer: Int) -> NodeState? { cores[observer].nodes["n\(subject)"]?.state }

    /// Everyone joins node 0 and the pool settles for `settle`.
    mutating func joinAll(settle: Duration = .seconds(5)) {
        for index in cores.indices.dropFirst() { input(index, .join(JoinID(UInt64(index)), [Self.address(0)])) }
        run(for: settle)
    }

    mutating func input(_ index: Int, _ input: SWIMInput) {
        let effects = cores[index].handle(input, now: now)
        perform(effects, from: index)
    }

    mutating func perform(_ effects: [SWIMEffect], from index: Int) {
        for effect in effects {
            switch effect {
            case .sendPacket(let to, let messages, let checksum):
                packetsSent += 1
                let target = Self.index(of: to)
                guard !crashed.contains(index), !cutUDP.contains([index, target]) else { continue }
                // Encoding must always succeed for what the core produces, and fit a datagram.
                let bytes = try! codec.encode(messages, options: OutboundPacketOptions(compress: false, checksum: checksum), cipher: nil)
                inFlight.append((now + latency, index, target, bytes))
            case .openStream(let id, let to, let message, _, _):
                let target = Self.index(of: to)
                var outcome = StreamOutcome.failed(GossipStreamError("connection refused"))
                if !crashed.contains(target) && !cutTCP.contains([index, target]) && !cutTCP.contains([target, index]) {
                    let replies = cores[target].handle(.inboundStream(InboundStreamID(id.raw), from: Self.address(index), message: message), now: now)
                    for reply in replies {
                        if case .replyStream(_, let answer) = reply { outcome = answer.map { .reply($0) } ?? .sent }
                    }
                    perform(replies.filter { if case .replyStream = $0 { return false } else { return true } }, from: target)
                }
                let results = cores[index].handle(.streamResult(id, outcome), now: now)
                perform(results, from: index)
            case .replyStream:
                break
            case .joinFinished(let id, let joined, let errors):
                joinResults[id] = (joined, errors)
            case .leaveBroadcastFinished:
                leaveFinished.insert(index)
            case .probeCompleted, .suspicionExpired:
                break
            case .log(let level, let text):
                logs.append((index, level, text))
            }
        }
    }

    /// Runs until `now + span`, delivering datagrams and firing timers in time order.
    mutating func run(for span: Duration) {
        let end = now + span
        var steps = 0
        while steps < 1_000_000 {
            steps += 1
            let nextPacket = inFlight.map(\.at).min()
            var nextTick: (Timestamp, Int)?
            for index in cores.indices where !crashed.contains(index) {
                let wake = cores[index].nextWakeup
                if nextTick == nil || wake < nextTick!.0 { nextTick = (wake, index) }
            }
            let candidate = [nextPacket, nextTick?.0].compactMap { $0 }.min()
            guard let at = candidate, at <= end else { break }
            now = max(now, at)
            if let packetTime = nextPacket, packetTime <= (nextTick?.0 ?? .init(nanoseconds: .max)) {
                let index = inFlight.firstIndex { $0.at == packetTime }!
                let packet = inFlight.remove(at: index)
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
