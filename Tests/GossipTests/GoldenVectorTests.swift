import ConsulCore
import Testing
@testable import Gossip

/// Byte-for-byte agreement with the real Go encoders (vectors from Tools/golden-vectors, built
/// against Debian's memberlist 0.2.2, serf 0.9.4 and go-msgpack). Each test checks both
/// directions: our encoding equals Go's, and Go's bytes decode to the same value.
@Suite struct MemberlistGoldenTests {
    private let local: [UInt8] = [127, 0, 0, 1]
    private let vsn: [UInt8] = [1, 5, 2, 2, 5, 5]

    private func check(_ message: MemberlistMessage, _ name: String) throws {
        #expect(message.encoded == golden(name), "encoding of \(name)")
        #expect(try MemberlistMessage.decode(golden(name)) == message, "decoding of \(name)")
    }

    @Test func ping() throws {
        try check(.ping(PingMessage(seqNo: 1, node: "n1")), "ping_min")
        try check(.ping(PingMessage(seqNo: 70000, node: "node-b", sourceAddr: local, sourcePort: 7946, sourceNode: "node-a")), "ping_full")
    }

    @Test func indirectPing() throws {
        try check(.indirectPing(IndirectPingMessage(
            seqNo: 300, target: [10, 0, 0, 2], port: 8301, node: "target", nack: true,
            sourceAddr: local, sourcePort: 8301, sourceNode: "asker")), "indirect_ping")
    }

    @Test func ackNackError() throws {
        try check(.ack(AckMessage(seqNo: 5)), "ack_empty")
        try check(.ack(AckMessage(seqNo: .max, payload: [1, 2, 3])), "ack_payload")
        try check(.nack(NackMessage(seqNo: 9)), "nack")
        try check(.error(ErrorMessage(error: "Encryption is configured but remote state is not encrypted")), "err")
    }

    @Test func suspectAliveDead() throws {
        try check(.suspect(SuspectMessage(incarnation: 3, node: "n2", from: "n1")), "suspect")
        let alive = AliveMessage(incarnation: 300, node: "n1", addr: local, port: 7946, meta: [0xFF, 0x80], vsn: vsn)
        try check(.alive(alive), "alive")
        #expect(alive.versions == .serfDefault)
        try check(.dead(DeadMessage(incarnation: 7, node: "n3", from: "n3")), "dead")
    }

    @Test func compound() throws {
        let parts = [MemberlistMessage.ping(PingMessage(seqNo: 1, node: "n1")).encoded,
                     MemberlistMessage.suspect(SuspectMessage(incarnation: 3, node: "n2", from: "n1")).encoded]
        #expect(try Compound.make(parts) == golden("compound"))
        let decoded = try PacketCodec().decode(golden("compound"), cipher: nil)
        #expect(decoded.messages == [.ping(PingMessage(seqNo: 1, node: "n1")),
                                     .suspect(SuspectMessage(incarnation: 3, node: "n2", from: "n1"))])
        #expect(decoded.truncatedParts == 0)
        #expect(!decoded.hadChecksum)
    }

    /// A typical serf gossip datagram: hasCrc > compress > compound[alive, user>serf join].
    @Test func fullGossipPacket() throws {
        let alive = MemberlistMessage.alive(AliveMessage(incarnation: 300, node: "n1", addr: local, port: 7946, meta: [0xFF, 0x80], vsn: vsn))
        let join = SerfMessage.join(SerfJoinMessage(lamportTime: 5, node: "n1"))
        let messages = [alive.encoded, join.memberlistMessage.encoded]
        #expect(try Compound.make(messages) == golden("gossip_plain"))
        // The generator compressed unconditionally (Go's compressPayload + CRC header)...
        #expect(PacketCodec.withChecksum(Compression.wrap(golden("gossip_plain"))) == golden("gossip_packet"))
        // ...but this small compound grows under LZW, so the pipeline sends it uncompressed, as
        // memberlist's rawSendMsgPacket does ("only use compression if it reduced the size").
        let packet = try PacketCodec().encode(messages, options: OutboundPacketOptions(compress: true, checksum: true), cipher: nil)
        #expect(golden("gossip_packet").count > golden("gossip_plain").count + 5)
        #expect(packet == PacketCodec.withChecksum(golden("gossip_plain")))
        #expect(try PacketCodec().decode(packet, cipher: nil).messages.count == 2)

        let decoded = try PacketCodec().decode(golden("gossip_packet"), cipher: nil)
        #expect(decoded.hadChecksum && decoded.wasCompressed)
        #expect(decoded.messages.count == 2)
        #expect(decoded.messages.first == alive)
        guard case .user(let payload)? = decoded.messages.last else {
            Issue.record("second message is not a user message")
            return
        }
        #expect(try SerfMessage.decode(payload) == join)
    }

    @Test func pushPullStreamBody() throws {
        let message = PushPullMessage(join: true, nodes: [
            PushNodeState(name: "n1", addr: local, port: 7946, meta: [0xFF, 0x80], incarnation: 1, state: .alive, vsn: vsn),
            PushNodeState(name: "n2", addr: [127, 0, 0, 2], port: 7947, meta: [], incarnation: 9, state: .dead, vsn: vsn),
        ], userState: [2, 0x81, 0xA1, 0x41, 0x01])
        #expect(StreamMessage.pushPull(message).encoded == golden("push_pull"))
        let result = try StreamCodec().decode(golden("push_pull"), cipher: nil)
        #expect(result == .message(.pushPull(message), consumed: golden("push_pull").count))
    }

    @Test func userMessageHeader() {
        var writer = MessagePackWriter(prefix: [MemberlistMessageType.user.rawValue])
        UserMessageHeader(userMessageLength: 1000).write(to: &writer)
        #expect(writer.bytes == golden("user_msg_header"))
    }

    @Test func crc32() {
        #expect(String(CRC32.checksum(Array("hello".utf8)), radix: 16) == String(decoding: golden("crc_hello"), as: UTF8.self))
    }
}

/// LZW against Go's `compress/lzw` output for inputs that exercise the width growth 9→12 bits and
/// the table reset (clear code) when all 4096 codes are used.
@Suite struct LZWGoldenTests {
    private static let inputs: [String: [UInt8]] = [
        "lzw_empty": [],
        "lzw_one": [0x41],
        "lzw_text": Array("TOBEORNOTTOBEORTOBEORNOT#TOBEORNOTTOBEORTOBEORNOT".utf8),
        "lzw_zeros": [UInt8](repeating: 0, count: 5000),
        "lzw_lcg16": lcgBytes(30000, alphabet: 16),
        "lzw_lcg256": lcgBytes(3000, alphabet: 256),
    ]

    @Test(arguments: inputs.keys.sorted())
    func matchesGo(_ name: String) throws {
        let input = Self.inputs[name]!
        // The vector is the whole compress message: [9][msgpack{Algo, Buf}].
        #expect(Compression.wrap(input) == golden(name))
        var reader = try MessagePackReader(golden(name), range: 1..<golden(name).count)
        let message = try CompressMessage(from: &reader)
        #expect(LZW.compress(input) == message.buffer)
        #expect(try LZW.decompress(message.buffer, maxOutput: 1 << 20) == input)
    }
}

@Suite struct SerfGoldenTests {
    private func check(_ message: SerfMessage, _ name: String) throws {
        #expect(message.encoded == golden(name), "encoding of \(name)")
        #expect(try SerfMessage.decode(golden(name)) == message, "decoding of \(name)")
    }

    @Test func membershipIntents() throws {
        try check(.join(SerfJoinMessage(lamportTime: 5, node: "n1")), "serf_join")
        try check(.leave(SerfLeaveMessage(lamportTime: 300, node: "n2", prune: true)), "serf_leave")
    }

    @Test func userEvent() throws {
        try check(.userEvent(SerfUserEventMessage(lamportTime: 12, name: "deploy", payload: Array("v1.2".utf8), canCoalesce: true)), "serf_user_event")
    }

    @Test func queryWithFilters() throws {
        let nodes = SerfQueryFilter.nodes(["a", "b"])
        let tag = SerfQueryFilter.tag("role", expression: "web.*")
        #expect(nodes.encoded == golden("serf_filter_node"))
        #expect(tag.encoded == golden("serf_filter_tag"))
        #expect(try SerfQueryFilter.decode(golden("serf_filter_node")) == nodes)
        #expect(try SerfQueryFilter.decode(golden("serf_filter_tag")) == tag)
        let query = SerfQueryMessage(
            lamportTime: 77, id: 0xDEAD_BEEF, addr: [127, 0, 0, 1], port: 7946, sourceNode: "n1",
            filters: [nodes.encoded, tag.encoded], flags: SerfQueryMessage.flagAck, relayFactor: 2,
            timeoutNanoseconds: 5_000_000_000, name: "_serf_list-keys", payload: [7, 0x80])
        try check(.query(query), "serf_query")
        #expect(query.wantsAck && !query.noBroadcast)
        #expect(query.timeout == .seconds(5))
        try check(.queryResponse(SerfQueryResponseMessage(lamportTime: 77, id: 0xDEAD_BEEF, from: "n2", flags: SerfQueryMessage.flagAck)), "serf_query_response")
    }

    @Test func keyManagement() throws {
        try check(.keyRequest(SerfKeyRequest(key: Array(0..<32))), "serf_key_request")
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        try check(.keyResponse(SerfKeyResponse(result: true, keys: [key], primaryKey: key)), "serf_key_response")
        try check(.keyResponse(SerfKeyResponse(result: false, message: "No keyring to modify (encryption not enabled)")), "serf_key_response_error")
    }

    @Test func conflictResponse() throws {
        try check(.conflictResponse(SerfMember(name: "n1", addr: [127, 0, 0, 1], port: 7946, tags: ["role": "web"], status: 1, versions: .serfDefault)), "serf_conflict_response")
        #expect(SerfMessage.conflictResponse(nil).encoded == [6, 0xC0])
        #expect(try SerfMessage.decode([6, 0xC0]) == .conflictResponse(nil))
    }

    @Test func pushPull() throws {
        try check(.pushPull(SerfPushPullMessage(
            lamportTime: 3, statusLamportTimes: ["n1": 2], leftMembers: ["old"], eventLamportTime: 12,
            events: [nil, nil, SerfUserEvents(lamportTime: 11, events: [SerfUserEvent(name: "deploy", payload: Array("v1".utf8))]), nil],
            queryLamportTime: 78)), "serf_push_pull")
    }

    @Test func relay() throws {
        let inner = SerfMessage.queryResponse(SerfQueryResponseMessage(lamportTime: 1, id: 2, from: "n3", payload: Array("ok".utf8)))
        let ipv4Mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 127, 0, 0, 1]
        try check(.relay(SerfRelayHeader(destinationIP: ipv4Mapped, destinationPort: 7946, destinationName: "n2"), inner: inner.encoded), "serf_relay")
        guard case .relay(_, let bytes) = try SerfMessage.decode(golden("serf_relay")) else {
            Issue.record("not a relay")
            return
        }
        #expect(try SerfMessage.decode(bytes) == inner)
    }

    @Test func tags() throws {
        #expect(try SerfTags.encode(["dc": "dc1"]) == golden("serf_tags"))
        #expect(try SerfTags.encode([:]) == golden("serf_tags_empty"))
        #expect(try SerfTags.decode(golden("serf_tags")) == ["dc": "dc1"])
        #expect(try SerfTags.decode(Array("web".utf8)) == ["role": "web"])
        #expect(try SerfTags.decode([]) == ["role": ""])
        let many = Dictionary(uniqueKeysWithValues: (0..<20).map { ("key\($0)", "value\($0)") })
        #expect(try SerfTags.decode(SerfTags.encode(many)) == many)
        #expect(throws: GossipCodecError.self) { try SerfTags.encode(["big": String(repeating: "x", count: 600)]) }
    }

    @Test func ackPayloadCoordinate() throws {
        let coordinate = SerfPingPayload(vector: [0.001, 0, 0, 0, 0, 0, 0, 0], error: 1.5, adjustment: 0, height: 1.0e-5)
        #expect(coordinate.ackPayload == golden("serf_ack_payload"))
        #expect(try SerfPingPayload.decodeAckPayload(golden("serf_ack_payload")) == coordinate)
    }
}
