import ConsulCore
import Testing
@testable import Gossip

/// Seeded fuzzing of every decoder: random bytes and mutations of valid packets (including the Go
/// golden vectors). The property is "a value or a typed error, never a trap"; a crash here prints
/// the seed and round that reproduce it via the test name and the recorded issue.
@Suite struct GossipFuzzTests {
    /// Valid inputs to mutate: every golden vector plus pipeline outputs.
    private static func corpus() throws -> [[UInt8]] {
        var corpus = GoGoldenVectors.hex.keys.sorted().map { golden($0) }
        let codec = PacketCodec()
        let ping = MemberlistMessage.ping(PingMessage(seqNo: 1, node: "n1")).encoded
        let user = SerfMessage.userEvent(SerfUserEventMessage(lamportTime: 1, name: "e", payload: Array(repeating: 3, count: 200), canCoalesce: false)).memberlistMessage.encoded
        corpus.append(try codec.encode([ping, user], options: OutboundPacketOptions(compress: true, checksum: true), cipher: nil))
        corpus.append(try codec.encode([user, user, ping], options: OutboundPacketOptions(compress: true, checksum: false), cipher: nil))
        corpus.append(try StreamCodec().encode(.user(user), compress: true, cipher: nil))
        corpus.append(Compression.wrap(try Compound.make([ping, Compression.wrap(ping)])))
        return corpus
    }

    private static func mutate(_ input: [UInt8], _ random: inout SeededRandom) -> [UInt8] {
        var bytes = input
        let interesting: [UInt8] = [0x00, 0x7F, 0x80, 0xC0, 0xC1, 0xCC, 0xCD, 0xCE, 0xCF, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0xFF]
        for _ in 0...(random.next() % 6) {
            guard !bytes.isEmpty else {
                bytes.append(UInt8(truncatingIfNeeded: random.next()))
                continue
            }
            let index = Int(random.next() % UInt64(bytes.count))
            switch random.next() % 7 {
            case 0: bytes[index] = UInt8(truncatingIfNeeded: random.next())
            case 1: bytes[index] ^= 1 << UInt8(random.next() % 8)
            case 2: bytes[index] = interesting[Int(random.next() % UInt64(interesting.count))]
            case 3: bytes.remove(at: index)
            case 4: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: index)
            case 5: bytes = Array(bytes.prefix(index))
            default:
                // Splice a chunk of the input into itself (duplicates headers, lengths, parts).
                let length = Int(random.next() % UInt64(min(32, bytes.count))) + 1
                let from = Int(random.next() % UInt64(bytes.count - length + 1))
                bytes.insert(contentsOf: bytes[from..<from + length], at: index)
            }
        }
        return bytes
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func mutatedPacketsNeverCrash(seed: UInt64) throws {
        var random = SeededRandom(seed: 0xF0F0 ^ seed)
        let corpus = try Self.corpus()
        var accepted = 0
        for round in 0..<2500 {
            let input: [UInt8]
            if round % 5 == 0 {
                input = (0..<Int(random.next() % 96)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                input = Self.mutate(corpus[Int(random.next() % UInt64(corpus.count))], &random)
            }
            accepted += GossipFuzzEntry.run(input)
        }
        // Mutations of valid packets must still be accepted sometimes, or the fuzzer explores nothing.
        #expect(accepted > 100)
    }

    /// Mutated CRC-protected datagrams must never decode to something else: either the checksum
    /// catches the change or the mutation hit the checksum-free prefix.
    @Test func checksumCatchesPayloadMutations() throws {
        var random = SeededRandom(seed: 31337)
        let codec = PacketCodec()
        let messages = [MemberlistMessage.alive(AliveMessage(incarnation: 1, node: "n1", addr: [1, 2, 3, 4], port: 5, meta: [0xFF, 0x80], vsn: [1, 5, 2, 2, 5, 5])).encoded,
                        MemberlistMessage.suspect(SuspectMessage(incarnation: 2, node: "n2", from: "n1")).encoded]
        let packet = try codec.encode(messages, options: OutboundPacketOptions(compress: false, checksum: true), cipher: nil)
        for _ in 0..<2000 {
            var mutated = packet
            let index = 5 + Int(random.next() % UInt64(packet.count - 5))
            mutated[index] ^= UInt8(truncatingIfNeeded: random.next() % 255 + 1)
            #expect(throws: GossipCodecError.self) { try codec.decode(mutated, cipher: nil) }
        }
    }

    @Test func tightLimitsStillNeverCrash() throws {
        var random = SeededRandom(seed: 99)
        let limits = GossipLimits(maxPacketBytes: 512, maxStreamBytes: 512, maxDecompressedPacketBytes: 256,
                                  maxDecompressedStreamBytes: 256, maxCompoundParts: 4, maxWrapperDepth: 1,
                                  maxMessagesPerPacket: 3, maxPushPullNodes: 2,
                                  messagePack: MessagePackLimits(maxDepth: 2, maxCollectionCount: 8, maxRawLength: 64, maxInputBytes: 512))
        let corpus = try Self.corpus()
        for _ in 0..<2000 {
            _ = GossipFuzzEntry.run(Self.mutate(corpus[Int(random.next() % UInt64(corpus.count))], &random), limits: limits)
        }
    }
}
