import ConsulCore
import Testing
@testable import Gossip

@Suite struct StreamCodecTests {
    private let codec = StreamCodec()
    private let pushPull = StreamMessage.pushPull(PushPullMessage(
        join: false,
        nodes: (0..<40).map {
            PushNodeState(name: "node-\($0)", addr: [10, 0, 0, UInt8($0)], port: 8301, meta: [0xFF, 0x80],
                          incarnation: UInt32($0), state: NodeState(rawValue: $0 % 4), vsn: ProtocolVersions.serfDefault.vsn)
        },
        userState: Array(repeating: 0xC0, count: 512)))

    /// Every prefix of a plaintext message asks for more data; the whole asks for nothing more.
    @Test(arguments: [false, true])
    func incrementalDecoding(compress: Bool) throws {
        let bytes = try codec.encode(pushPull, compress: compress, cipher: nil)
        var calls = 0
        var cut = 0
        for prefix in stride(from: 0, to: bytes.count, by: compress ? 1 : 7) {
            guard case .needMoreData(let minimum) = try codec.decode(Array(bytes.prefix(prefix)), cipher: nil) else {
                Issue.record("prefix \(prefix) decoded")
                continue
            }
            // The hint is a true lower bound: more than we have, never more than the message.
            #expect(minimum > prefix && minimum <= bytes.count, "prefix \(prefix): hint \(minimum)")
        }
        // A reader that waits for the hint gets there; with compression (serf's default) the hint
        // is the exact frame length after the first few bytes, so it takes a handful of calls.
        while case .needMoreData(let minimum) = try codec.decode(Array(bytes.prefix(cut)), cipher: nil) {
            cut = minimum
            calls += 1
        }
        #expect(cut == bytes.count)
        if compress { #expect(calls <= 12) }  // a few for the compress header fields, then the exact length
        #expect(try codec.decode(bytes, cipher: nil) == .message(pushPull, consumed: bytes.count))
        // Trailing bytes (the next message) are left for the caller.
        #expect(try codec.decode(bytes + [0, 1, 2], cipher: nil) == .message(pushPull, consumed: bytes.count))
    }

    @Test func everyStreamMessageRoundTrips() throws {
        let messages: [StreamMessage] = [
            pushPull,
            .ping(PingMessage(seqNo: 3, node: "n", sourceAddr: [1, 2, 3, 4], sourcePort: 9, sourceNode: "m")),
            .ack(AckMessage(seqNo: 3, payload: [1, 2])),
            .user(Array(0...255)),
            .user([]),
            .error(ErrorMessage(error: "nope")),
        ]
        let cipher = RecordingTestCipher()
        for message in messages {
            for compress in [false, true] {
                for key in [nil, cipher] as [RecordingTestCipher?] {
                    let bytes = try codec.encode(message, compress: compress, cipher: key)
                    #expect(try codec.decode(bytes, cipher: key) == .message(message, consumed: bytes.count))
                }
            }
        }
    }

    /// `[10][len][envelope]` with the 5-byte header authenticated, as memberlist's encryptLocalState.
    @Test func encryptedFrameLayout() throws {
        let cipher = RecordingTestCipher()
        let bytes = try codec.encode(pushPull, compress: true, cipher: cipher)
        #expect(bytes[0] == MemberlistMessageType.encrypt.rawValue)
        let length = Int(bytes[1]) << 24 | Int(bytes[2]) << 16 | Int(bytes[3]) << 8 | Int(bytes[4])
        #expect(length == bytes.count - 5)
        let plain = try cipher.open(Array(bytes[5...]), additionalData: Array(bytes[0..<5]))
        #expect(plain.first == MemberlistMessageType.compress.rawValue)
        // A frame whose header was altered fails authentication.
        var tampered = bytes + [0]
        tampered[4] &+= 1
        #expect(throws: GossipCodecError.self) { try codec.decode(tampered, cipher: cipher) }
        // Partial frames wait.
        #expect(try codec.decode(Array(bytes.prefix(3)), cipher: cipher) == .needMoreData(minimumBytes: 5))
        #expect(try codec.decode(Array(bytes.dropLast()), cipher: cipher) == .needMoreData(minimumBytes: bytes.count))
    }

    @Test func encryptionPolicy() throws {
        let cipher = RecordingTestCipher()
        let plain = try codec.encode(pushPull, compress: false, cipher: nil)
        #expect(throws: GossipCodecError.plaintextRejected) { try codec.decode(plain, cipher: cipher) }
        #expect(try codec.decode(plain, cipher: cipher, verifyIncoming: false) == .message(pushPull, consumed: plain.count))
        let sealed = try codec.encode(pushPull, compress: false, cipher: cipher)
        #expect(throws: GossipCodecError.encryptedButNoKeys) { try codec.decode(sealed, cipher: nil) }
    }

    @Test func forgedLengthsAreRefused() throws {
        let cipher = RecordingTestCipher()
        #expect(throws: GossipCodecError.streamFrameTooLarge(size: 0x7FFF_FFFF, limit: 20 * 1024 * 1024)) {
            try codec.decode([10, 0x7F, 0xFF, 0xFF, 0xFF], cipher: cipher)
        }
        var writer = MessagePackWriter(prefix: [6])
        PushPullHeader(nodes: -1, userStateLength: 0, join: false).write(to: &writer)
        #expect(throws: GossipCodecError.self) { try codec.decode(writer.bytes, cipher: nil) }
        var huge = MessagePackWriter(prefix: [6])
        PushPullHeader(nodes: 0, userStateLength: Int(Int32.max), join: false).write(to: &huge)
        #expect(throws: GossipCodecError.self) { try codec.decode(huge.bytes, cipher: nil) }
        var user = MessagePackWriter(prefix: [8])
        UserMessageHeader(userMessageLength: -5).write(to: &user)
        #expect(throws: GossipCodecError.self) { try codec.decode(user.bytes, cipher: nil) }
        // A complete encrypted frame whose content is cut short is an error, not a wait.
        let short = try codec.encode(.error(ErrorMessage(error: "x")), compress: false, cipher: nil).dropLast()
        let framed = try frame(Array(short), cipher: cipher)
        #expect(throws: GossipCodecError.self) { try codec.decode(framed, cipher: cipher) }
        // Datagram-only and wrapper types are not stream messages.
        #expect(throws: GossipCodecError.unexpectedMessageType(.suspect)) {
            try codec.decode(MemberlistMessage.suspect(SuspectMessage(incarnation: 1, node: "a", from: "b")).encoded, cipher: nil)
        }
    }

    @Test func oversizedPlaintextBufferIsRefused() throws {
        var limits = GossipLimits.default
        limits.maxStreamBytes = 1000
        var writer = MessagePackWriter(prefix: [6])
        PushPullHeader(nodes: 0, userStateLength: 900, join: false).write(to: &writer)
        let partial = writer.bytes + [UInt8](repeating: 0, count: 100)
        #expect(try StreamCodec(limits: limits).decode(partial, cipher: nil) == .needMoreData(minimumBytes: writer.bytes.count + 900))
        var large = MessagePackWriter(prefix: [6])
        PushPullHeader(nodes: 0, userStateLength: 999, join: false).write(to: &large)
        let overLimit = large.bytes + [UInt8](repeating: 0, count: 980)
        #expect(throws: GossipCodecError.streamFrameTooLarge(size: large.bytes.count + 999, limit: 1000)) {
            try StreamCodec(limits: limits).decode(overLimit, cipher: nil)
        }
    }

    private func frame(_ body: [UInt8], cipher: RecordingTestCipher) throws -> [UInt8] {
        let length = UInt32(cipher.sealedLength(plaintextLength: body.count))
        let header: [UInt8] = [10, UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
        return header + (try cipher.seal(body, additionalData: header))
    }
}
