import ConsulCore
import Testing
@testable import Gossip

@Suite struct LZWTests {
    /// Inputs of many shapes (random, few-symbol, runs) round-trip, including ones long enough to
    /// fill the 4096-entry table several times.
    @Test func randomInputsRoundTrip() throws {
        var random = SeededRandom(seed: 0x1A2B)
        for round in 0..<120 {
            let count = Int(random.next() % (round % 10 == 0 ? 40_000 : 3_000))
            let alphabet = [2, 4, 16, 256][Int(random.next() % 4)]
            var input: [UInt8] = []
            input.reserveCapacity(count)
            while input.count < count {
                let symbol = UInt8(truncatingIfNeeded: random.next() % UInt64(alphabet))
                let run = random.chance(0.1) ? Int(random.next() % 50) : 1
                input.append(contentsOf: repeatElement(symbol, count: min(run, count - input.count)))
            }
            let compressed = LZW.compress(input)
            #expect(try LZW.decompress(compressed, maxOutput: count) == input)
        }
    }

    @Test func outputBoundIsExact() throws {
        let input = [UInt8](repeating: 7, count: 10_000)
        let compressed = LZW.compress(input)
        #expect(try LZW.decompress(compressed, maxOutput: 10_000) == input)
        #expect(throws: LZWError.outputTooLarge(limit: 9_999)) { try LZW.decompress(compressed, maxOutput: 9_999) }
    }

    @Test func missingEndCodeIsUnexpectedEnd() {
        let compressed = LZW.compress(Array("hello hello hello".utf8))
        for cut in 0..<compressed.count - 1 {
            #expect(throws: LZWError.self) { try LZW.decompress(compressed.prefix(cut), maxOutput: 1000) }
        }
        #expect(throws: LZWError.unexpectedEnd) { try LZW.decompress([UInt8](), maxOutput: 10) }
    }

    @Test func codeBeyondTableIsInvalid() {
        // 9-bit codes, LSB first: clear (256), literal 'A' (65), then 300 — above the next free slot (259).
        var bits: UInt32 = 256 | 65 << 9 | 300 << 18
        var bytes: [UInt8] = []
        for _ in 0..<4 {
            bytes.append(UInt8(bits & 0xFF))
            bits >>= 8
        }
        #expect(throws: LZWError.invalidCode(300)) { try LZW.decompress(bytes, maxOutput: 100) }
    }

    @Test func bytesAfterEndCodeAreIgnored() throws {
        let compressed = LZW.compress(Array("abc".utf8))
        #expect(try LZW.decompress(compressed + [0xFF, 0xFF], maxOutput: 10) == Array("abc".utf8))
    }

    /// Random bit streams must end in bytes or an `LZWError`, never a trap, with output bounded.
    @Test func garbageNeverTraps() {
        var random = SeededRandom(seed: 77)
        var produced = 0
        for _ in 0..<3000 {
            let input = (0..<Int(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if let output = try? LZW.decompress(input, maxOutput: 4096) {
                #expect(output.count <= 4096)
                produced += 1
            }
        }
        // Random streams rarely hit the end code cleanly; most must be rejected.
        #expect(produced < 3000)
    }
}

@Suite struct MessageRoundTripTests {
    @Test func randomMemberlistMessagesRoundTrip() throws {
        var random = SeededRandom(seed: 5150)
        func bytes(_ max: UInt64) -> [UInt8] { (0..<Int(random.next() % max)).map { _ in UInt8(truncatingIfNeeded: random.next()) } }
        func text() -> String { String(decoding: bytes(40).map { 0x61 + $0 % 26 }, as: UTF8.self) }
        func u32() -> UInt32 { UInt32(truncatingIfNeeded: random.next() >> (random.next() % 32)) }
        func u16() -> UInt16 { UInt16(truncatingIfNeeded: random.next() >> (random.next() % 48)) }
        for _ in 0..<400 {
            let message: MemberlistMessage
            switch random.next() % 9 {
            case 0: message = .ping(PingMessage(seqNo: u32(), node: text(), sourceAddr: bytes(17), sourcePort: u16(), sourceNode: text()))
            case 1: message = .indirectPing(IndirectPingMessage(seqNo: u32(), target: bytes(17), port: u16(), node: text(), nack: random.chance(0.5),
                                                                sourceAddr: bytes(17), sourcePort: u16(), sourceNode: text()))
            case 2: message = .ack(AckMessage(seqNo: u32(), payload: bytes(300)))
            case 3: message = .nack(NackMessage(seqNo: u32()))
            case 4: message = .suspect(SuspectMessage(incarnation: u32(), node: text(), from: text()))
            case 5: message = .alive(AliveMessage(incarnation: u32(), node: text(), addr: bytes(17), port: u16(), meta: bytes(512), vsn: bytes(7)))
            case 6: message = .dead(DeadMessage(incarnation: u32(), node: text(), from: text()))
            case 7: message = .user(bytes(2000))
            default: message = .error(ErrorMessage(error: text()))
            }
            #expect(try MemberlistMessage.decode(message.encoded) == message)
        }
    }

    @Test func unknownFieldsAreSkippedAndMissingOnesDefault() throws {
        // A newer peer may add fields; an older one may leave some out.
        var writer = MessagePackWriter(prefix: [MemberlistMessageType.alive.rawValue])
        writer.writeMapHeader(3)
        writer.writeKey("Label"); writer.write(.stringMap(["x": .array([.uint(1), .nil])]))
        writer.writeKey("Node"); writer.writeString("n9")
        writer.writeKey("Incarnation"); writer.writeInt(Int64(4))
        let decoded = try MemberlistMessage.decode(writer.bytes)
        #expect(decoded == .alive(AliveMessage(incarnation: 4, node: "n9", addr: [], port: 0, meta: [], vsn: [])))
    }

    @Test func newerEncodingsAreAccepted() throws {
        // str8 key/value and bin8 address, as a newer msgpack encoder would write them.
        var bytes: [UInt8] = [MemberlistMessageType.ping.rawValue, 0x83]
        bytes += [0xD9, 4] + Array("Node".utf8) + [0xD9, 2] + Array("n1".utf8)
        bytes += [0xA5] + Array("SeqNo".utf8) + [0xD3, 0, 0, 0, 0, 0, 0, 0, 9]
        bytes += [0xAA] + Array("SourceAddr".utf8) + [0xC4, 4, 127, 0, 0, 1]
        #expect(try MemberlistMessage.decode(bytes) == .ping(PingMessage(seqNo: 9, node: "n1", sourceAddr: [127, 0, 0, 1])))
    }

    @Test func outOfRangeIntegersAreRejected() {
        var writer = MessagePackWriter(prefix: [MemberlistMessageType.ping.rawValue])
        writer.writeMapHeader(1)
        writer.writeKey("SeqNo"); writer.writeUInt(UInt64(UInt32.max) + 1)
        #expect(throws: GossipCodecError.malformedBody(.ping, .integerOverflow(offset: 8))) {
            try MemberlistMessage.decode(writer.bytes)
        }
    }

    @Test func serfQueryRoundTripsWithEmptyFields() throws {
        let query = SerfMessage.query(SerfQueryMessage(lamportTime: 0, id: 0, addr: [], port: 0, sourceNode: "", timeoutNanoseconds: -1, name: ""))
        #expect(try SerfMessage.decode(query.encoded) == query)
        let pushPull = SerfMessage.pushPull(SerfPushPullMessage(
            lamportTime: 9, statusLamportTimes: ["b": 2, "a": 1, "c": 3], leftMembers: [], eventLamportTime: 0,
            events: [SerfUserEvents?](repeating: nil, count: 512), queryLamportTime: 0))
        #expect(try SerfMessage.decode(pushPull.encoded) == pushPull)
        // Deterministic: status times are written in key order whatever the dictionary order.
        #expect(pushPull.encoded == pushPull.encoded)
        #expect(throws: GossipCodecError.unknownSerfMessageType(10)) { try SerfMessage.decode([10]) }
        #expect(throws: GossipCodecError.empty) { try SerfMessage.decode([]) }
    }
}

/// Our decoder against Go's `compress/lzw` reader on corrupted streams (vectors from
/// Tools/golden-vectors): the same streams must succeed with the same output, or fail the same way.
@Suite struct LZWDifferentialTests {
    /// Mirrors `mutatedStream` in memberlist_vectors_test.go.
    static func mutatedStream(_ index: Int) -> [UInt8] {
        var bytes = LZW.compress(lcgBytes(200 + 7 * index, alphabet: UInt32(4 + index % 13)))
        var x = UInt32(index * 7919 + 1)
        for _ in 0..<(1 + index % 4) {
            x = x &* 1_103_515_245 &+ 12345
            let position = Int(x >> 8) % bytes.count
            x = x &* 1_103_515_245 &+ 12345
            bytes[position] ^= UInt8(truncatingIfNeeded: x >> 16)
        }
        if index % 5 == 0 {
            bytes.removeLast(1 + index % 7)
        }
        return bytes
    }

    /// A stream that never clears: the table fills, the width stays at 12 bits and later codes
    /// refer to the last entries (Go's writer never sends this; a hostile or foreign one might).
    @Test func saturatedTableMatchesGo() throws {
        let output = try LZW.decompress(golden("lzw_saturated_stream"), maxOutput: 1 << 20)
        let crc = String(CRC32.checksum(output), radix: 16)
        let outcome = "\(output.count):\(String(repeating: "0", count: 8 - crc.count) + crc)"
        #expect(outcome == String(decoding: golden("lzw_saturated_result"), as: UTF8.self))
    }

    @Test func outcomesMatchGo() {
        #expect(GoGoldenVectors.lzwDecodeOutcomes.count == 200)
        for (index, expected) in GoGoldenVectors.lzwDecodeOutcomes.enumerated() {
            let outcome: String
            do {
                let output = try LZW.decompress(Self.mutatedStream(index), maxOutput: 1 << 24)
                let crc = String(CRC32.checksum(output), radix: 16)
                outcome = "ok:\(output.count):\(String(repeating: "0", count: 8 - crc.count) + crc)"
            } catch .unexpectedEnd {
                outcome = "eof"
            } catch .invalidCode {
                outcome = "invalid"
            } catch {
                outcome = "limit"
            }
            #expect(outcome == expected, "stream \(index)")
        }
    }
}
