import ConsulCore
import ConsulCrypto
import Testing
@testable import Gossip

/// Whatever a peer sends must neither crash nor wedge a node: random (decodable) messages and
/// streams go straight into a serf core, and mutated encrypted datagrams into the decoders.
@Suite struct CoreFuzzTests {
    private static let names = ["n0", "n1", "n2", "x", ""]

    private static func randomBytes(_ random: inout SeededRandom, max: Int) -> [UInt8] {
        (0..<Int(random.next() % UInt64(max + 1))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    private static func randomSerfPayload(_ random: inout SeededRandom) -> [UInt8] {
        let name = names[Int(random.next() % UInt64(names.count))]
        let time = random.next() % 50
        let messages: [SerfMessage] = [
            .leave(SerfLeaveMessage(lamportTime: time, node: name, prune: random.next() % 2 == 0)),
            .join(SerfJoinMessage(lamportTime: time, node: name)),
            .userEvent(SerfUserEventMessage(lamportTime: time, name: name, payload: randomBytes(&random, max: 8), canCoalesce: true)),
            .query(SerfQueryMessage(
                lamportTime: time, id: UInt32(truncatingIfNeeded: random.next()), addr: [127, 0, 0, UInt8(random.next() % 4)],
                port: UInt16(truncatingIfNeeded: random.next()), sourceNode: name,
                filters: random.next() % 3 == 0 ? [SerfQueryFilter.tag("role", expression: "(a+)+").encoded, [1, 0xC1]] : [],
                flags: UInt32(random.next() % 4), relayFactor: UInt8(random.next() % 3), timeoutNanoseconds: Int64(random.next() % 5_000_000_000),
                name: random.next() % 2 == 0 ? "_serf_install-key" : "q", payload: randomBytes(&random, max: 40))),
            .queryResponse(SerfQueryResponseMessage(lamportTime: time, id: UInt32(random.next() % 3), from: name, flags: UInt32(random.next() % 2))),
            .relay(SerfRelayHeader(destinationIP: randomBytes(&random, max: 17), destinationPort: Int(random.next() % 70_000), destinationName: name), inner: randomBytes(&random, max: 20)),
            .pushPull(SerfPushPullMessage(lamportTime: time, statusLamportTimes: [name: time], leftMembers: [name], eventLamportTime: time, events: [nil], queryLamportTime: time)),
        ]
        var bytes = messages[Int(random.next() % UInt64(messages.count))].encoded
        if random.next() % 4 == 0, !bytes.isEmpty { bytes[Int(random.next() % UInt64(bytes.count))] ^= 0xFF }
        return bytes
    }

    private static func randomMessage(_ random: inout SeededRandom) -> MemberlistMessage {
        let name = names[Int(random.next() % UInt64(names.count))]
        let incarnation = UInt32(random.next() % 6)
        let address: [UInt8] = random.next() % 5 == 0 ? randomBytes(&random, max: 17) : [127, 0, 0, UInt8(random.next() % 4)]
        switch random.next() % 9 {
        case 0: return .ping(PingMessage(seqNo: UInt32(random.next() % 8), node: name, sourceAddr: address, sourcePort: 7946, sourceNode: name))
        case 1: return .indirectPing(IndirectPingMessage(seqNo: UInt32(random.next() % 8), target: address, port: UInt16(random.next() % 2) * 7946, node: name, nack: true))
        case 2: return .ack(AckMessage(seqNo: UInt32(random.next() % 8), payload: randomBytes(&random, max: 80)))
        case 3: return .nack(NackMessage(seqNo: UInt32(random.next() % 8)))
        case 4: return .suspect(SuspectMessage(incarnation: incarnation, node: name, from: names[Int(random.next() % 5)]))
        case 5: return .dead(DeadMessage(incarnation: incarnation, node: name, from: names[Int(random.next() % 5)]))
        case 6:
            let vsn = random.next() % 4 == 0 ? randomBytes(&random, max: 7) : ProtocolVersions.serfDefault.vsn
            return .alive(AliveMessage(incarnation: incarnation, node: name, addr: address, port: UInt16(random.next() % 2) * 7946, meta: randomBytes(&random, max: 6), vsn: vsn))
        case 7: return .error(ErrorMessage(error: name))
        default: return .user(randomSerfPayload(&random))
        }
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func randomMessagesNeitherCrashNorWedgeTheCore(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        var core = try SerfCore(
            name: "n0", address: GossipAddress(ip: [127, 0, 0, 1], port: 7946), config: SerfConfig(swim: .local),
            keyring: Keyring(primary: GossipKey.generate()), random: random.split(), now: .zero)
        _ = core.startupEffects()
        var now = Timestamp.zero
        var nextStream: UInt64 = 0
        for step in 0..<3000 {
            let from = GossipAddress(ip: [127, 0, 0, UInt8(random.next() % 4)], port: 7946)
            switch random.next() % 10 {
            case 0:
                nextStream += 1
                let remote = PushPullMessage(
                    join: random.next() % 2 == 0,
                    nodes: (0..<Int(random.next() % 4)).map { _ in
                        PushNodeState(name: Self.names[Int(random.next() % 5)], addr: [127, 0, 0, UInt8(random.next() % 4)], port: 7946, meta: [],
                                      incarnation: UInt32(random.next() % 6), state: NodeState(rawValue: Int(random.next() % 5)), vsn: ProtocolVersions.serfDefault.vsn)
                    },
                    userState: random.next() % 2 == 0 ? Self.randomSerfPayload(&random) : [])
                _ = core.handle(.inboundStream(InboundStreamID(nextStream), from: from, message: .pushPull(remote)), now: now)
            case 1:
                _ = core.handle(.streamResult(OutboundStreamID(random.next() % 20), .reply(.pushPull(PushPullMessage(join: false, nodes: [], userState: Self.randomBytes(&random, max: 30))))), now: now)
            default:
                let messages = (0..<Int(1 + random.next() % 3)).map { _ in Self.randomMessage(&random) }
                _ = core.handle(.packet(from: from, messages: messages), now: now)
            }
            now = now + .milliseconds(Int64(random.next() % 300))
            while core.nextWakeup <= now {
                _ = core.handle(.tick, now: now)
                #expect(core.nextWakeup > now, "step \(step): a tick at \(now) left the core due again at \(core.nextWakeup)")
                if core.nextWakeup <= now { return }
            }
        }
        #expect(core.members.contains { $0.name == "n0" })
    }

    @Test func mutatedEncryptedDatagramsAreRefusedCleanly() throws {
        let keyring = Keyring(primary: GossipKey.generate())
        let codec = PacketCodec()
        let streams = StreamCodec()
        var random = SeededRandom(seed: 5)
        let sealed = try codec.encode(
            [MemberlistMessage.ping(PingMessage(seqNo: 1, node: "n1")).encoded, SerfMessage.join(SerfJoinMessage(lamportTime: 1, node: "n1")).memberlistMessage.encoded],
            options: OutboundPacketOptions(compress: true, checksum: true), cipher: keyring)
        let frame = try streams.encode(.pushPull(PushPullMessage(join: true, nodes: [], userState: [])), compress: true, cipher: keyring)
        #expect(try codec.decode(sealed, cipher: keyring).messages.count == 2)
        for _ in 0..<2000 {
            var packet = sealed
            var stream = frame
            for _ in 0..<(1 + Int(random.next() % 3)) {
                packet[Int(random.next() % UInt64(packet.count))] ^= UInt8(truncatingIfNeeded: 1 + random.next() % 255)
                stream[Int(random.next() % UInt64(stream.count))] ^= UInt8(truncatingIfNeeded: 1 + random.next() % 255)
            }
            if random.next() % 3 == 0 { packet = Array(packet.prefix(Int(random.next() % UInt64(packet.count)))) }
            #expect(throws: GossipCodecError.self) { try codec.decode(packet, cipher: keyring) }
            // A stream that no longer authenticates is refused, or still waits for bytes it will
            // never get (the header's length was hit): either way nothing is delivered.
            if case .message? = try? streams.decode(stream, cipher: keyring) { Issue.record("a tampered stream frame decoded") }
        }
    }
}
