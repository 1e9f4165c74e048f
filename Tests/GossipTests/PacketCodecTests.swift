import ConsulCore
import Testing
@testable import Gossip

@Suite struct CompoundTests {
    private let ping = MemberlistMessage.ping(PingMessage(seqNo: 1, node: "n1")).encoded
    private let nack = MemberlistMessage.nack(NackMessage(seqNo: 2)).encoded

    @Test func truncatedTailsAreCountedNotFatal() throws {
        let whole = try Compound.make([ping, nack, ping])
        // Cut into the third part: two parts survive, one is counted as truncated.
        let cut = Array(whole.dropLast(3))
        let packet = try PacketCodec().decode(cut, cipher: nil)
        #expect(packet.messages == [.ping(PingMessage(seqNo: 1, node: "n1")), .nack(NackMessage(seqNo: 2))])
        #expect(packet.truncatedParts == 1)
        // Cut into the first part: everything truncated, nothing delivered, still no error.
        let header = Array(whole.prefix(2 + 3 * 2 + 1))
        let empty = try PacketCodec().decode(header, cipher: nil)
        #expect(empty.messages.isEmpty)
        #expect(empty.truncatedParts == 3)
    }

    @Test func missingLengthTableIsAnError() {
        #expect(throws: GossipCodecError.compoundHeaderTruncated) { try PacketCodec().decode([7], cipher: nil) }
        // 200 parts declared: Go's uint8 arithmetic would wrap here; we simply see it is short.
        #expect(throws: GossipCodecError.compoundHeaderTruncated) { try PacketCodec().decode([7, 200, 0, 1], cipher: nil) }
    }

    @Test func badPartsAreRejectedIndividually() throws {
        let bad: [UInt8] = [MemberlistMessageType.ping.rawValue, 0xC1]
        let packet = try PacketCodec().decode(try Compound.make([ping, bad, [], [99], nack]), cipher: nil)
        #expect(packet.messages.count == 2)
        #expect(packet.rejectedParts.count == 3)
        if case .malformedBody(.ping, .typeMismatch(expected: "map", found: 0xC1, offset: _))? = packet.rejectedParts.first {
        } else {
            Issue.record("unexpected first rejection \(packet.rejectedParts)")
        }
        #expect(Array(packet.rejectedParts.dropFirst()) == [.empty, .unknownMessageType(99)])
    }

    @Test func sizeArithmeticMatchesTheEncoding() throws {
        let parts = [ping, nack, [UInt8](repeating: 8, count: 300)]
        #expect(Compound.encodedSize(partSizes: parts.map(\.count)) == (try Compound.make(parts)).count)
    }

    @Test func buildLimits() {
        #expect(throws: GossipCodecError.tooManyCompoundParts(count: 256, limit: 255)) {
            try Compound.make([[UInt8]](repeating: ping, count: 256))
        }
        #expect(throws: GossipCodecError.compoundPartTooLarge(size: 65_536)) {
            try Compound.make([[UInt8](repeating: 8, count: 65_536)])
        }
    }

    @Test func partCountIsBounded() throws {
        var limits = GossipLimits.default
        limits.maxCompoundParts = 2
        let three = try Compound.make([ping, ping, ping])
        #expect(throws: GossipCodecError.tooManyCompoundParts(count: 3, limit: 2)) {
            try PacketCodec(limits: limits).decode(three, cipher: nil)
        }
        #expect(try PacketCodec(limits: limits).decode(try Compound.make([ping, ping]), cipher: nil).messages.count == 2)
    }

    @Test func nestingIsBounded() throws {
        var nested = ping
        for _ in 0..<3 { nested = try Compound.make([nested]) }
        #expect(try PacketCodec().decode(nested, cipher: nil).messages.count == 1)
        for _ in 0..<3 { nested = try Compound.make([nested]) }
        // Inner failures of a compound part are recorded, so the too-deep part shows up there.
        let packet = try PacketCodec().decode(nested, cipher: nil)
        #expect(packet.messages.isEmpty)
        #expect(packet.rejectedParts == [.wrapperTooDeep(limit: GossipLimits.default.maxWrapperDepth)])
    }

    @Test func messageCountIsBounded() throws {
        // 255 parts each a compound of 255 pings would be 65k messages from one datagram.
        let inner = try Compound.make([[UInt8]](repeating: nack, count: 100))
        let outer = try Compound.make([[UInt8]](repeating: inner, count: 20))
        #expect(throws: GossipCodecError.tooManyMessages(limit: 1024)) { try PacketCodec().decode(outer, cipher: nil) }
    }
}

@Suite struct PacketPipelineTests {
    private let codec = PacketCodec()
    private let userMessage = MemberlistMessage.user(Array(repeating: 0x41, count: 600)).encoded
    private let ping = MemberlistMessage.ping(PingMessage(seqNo: 7, node: "n2")).encoded

    @Test func singleMessageIsSentBare() throws {
        let packet = try codec.encode([ping], options: OutboundPacketOptions(compress: false, checksum: false), cipher: nil)
        #expect(packet == ping)
    }

    @Test func compressionIsUsedOnlyWhenSmaller() throws {
        let packet = try codec.encode([userMessage, ping], options: OutboundPacketOptions(compress: true, checksum: false), cipher: nil)
        #expect(packet.first == MemberlistMessageType.compress.rawValue)
        #expect(packet.count < userMessage.count)
        let decoded = try codec.decode(packet, cipher: nil)
        #expect(decoded.wasCompressed)
        #expect(decoded.messages == [.user(Array(repeating: 0x41, count: 600)), .ping(PingMessage(seqNo: 7, node: "n2"))])
    }

    @Test func checksumIsVerified() throws {
        var packet = try codec.encode([ping], options: OutboundPacketOptions(compress: false, checksum: true), cipher: nil)
        #expect(packet.first == MemberlistMessageType.hasCrc.rawValue)
        #expect(try codec.decode(packet, cipher: nil).hadChecksum)
        packet[packet.count - 1] ^= 1
        #expect(throws: GossipCodecError.self) { try codec.decode(packet, cipher: nil) }
        do {
            _ = try codec.decode(packet, cipher: nil)
        } catch {
            guard case .checksumMismatch = error else {
                Issue.record("expected checksumMismatch, got \(error)")
                return
            }
        }
        #expect(throws: GossipCodecError.truncatedChecksumHeader) { try codec.decode([12, 0, 0], cipher: nil) }
    }

    /// The cipher sits outermost: sealed last on the way out, opened first on the way in, with no
    /// additional data for datagrams.
    @Test func cipherSeamOrder() throws {
        let cipher = RecordingTestCipher()
        let sealed = try codec.encode([userMessage, ping], options: OutboundPacketOptions(compress: true, checksum: true), cipher: cipher)
        let opened = try cipher.open(sealed, additionalData: [])
        #expect(opened.first == MemberlistMessageType.hasCrc.rawValue)
        #expect(opened[5] == MemberlistMessageType.compress.rawValue)
        let decoded = try codec.decode(sealed, cipher: cipher)
        #expect(decoded.messages.count == 2 && decoded.hadChecksum && decoded.wasCompressed)
    }

    @Test func plaintextIsRefusedUnlessVerificationIsOff() throws {
        let cipher = RecordingTestCipher()
        #expect(throws: GossipCodecError.self) { try codec.decode(ping, cipher: cipher) }
        let relaxed = try codec.decode(ping, cipher: cipher, verifyIncoming: false)
        #expect(relaxed.messages == [.ping(PingMessage(seqNo: 7, node: "n2"))])
    }

    @Test func limitsAndOddTypes() {
        #expect(throws: GossipCodecError.empty) { try codec.decode([], cipher: nil) }
        #expect(throws: GossipCodecError.unknownMessageType(200)) { try codec.decode([200], cipher: nil) }
        #expect(throws: GossipCodecError.unexpectedMessageType(.pushPull)) { try codec.decode([6, 0x80], cipher: nil) }
        #expect(throws: GossipCodecError.unexpectedMessageType(.encrypt)) { try codec.decode([10], cipher: nil) }
        #expect(throws: GossipCodecError.packetTooLarge(size: 70_000, limit: 65_535)) {
            try codec.decode([UInt8](repeating: 8, count: 70_000), cipher: nil)
        }
        #expect(throws: GossipCodecError.empty) {
            try codec.encode([], options: OutboundPacketOptions(compress: false, checksum: false), cipher: nil)
        }
    }

    @Test func decompressionBombIsStopped() throws {
        // 1 MiB of zeros compresses to a few KiB; with a 64 KiB bound it must be refused.
        let bomb = Compression.wrap([8] + [UInt8](repeating: 0, count: 1 << 20))
        #expect(bomb.count < 10_000)
        var limits = GossipLimits.default
        limits.maxDecompressedPacketBytes = 64 * 1024
        #expect(throws: GossipCodecError.decompressedTooLarge(limit: 64 * 1024)) {
            try PacketCodec(limits: limits).decode(bomb, cipher: nil)
        }
        // Many small compressed parts share one budget: 20 × 4 KiB inflated exceeds a 64 KiB bound.
        let part = Compression.wrap([8] + [UInt8](repeating: 1, count: 4096))
        let many = try Compound.make([[UInt8]](repeating: part, count: 20))
        #expect(many.count < 4000)
        #expect(throws: GossipCodecError.decompressedTooLarge(limit: 64 * 1024)) {
            try PacketCodec(limits: limits).decode(many, cipher: nil)
        }
        #expect(try PacketCodec().decode(many, cipher: nil).messages.count == 20)
        #expect(throws: GossipCodecError.unknownCompressionAlgorithm(1)) {
            var writer = MessagePackWriter(prefix: [9])
            CompressMessage(algorithm: 1, buffer: [1, 2]).write(to: &writer)
            _ = try PacketCodec().decode(writer.bytes, cipher: nil)
        }
    }
}
