import ConsulCore
import Testing
@testable import Gossip

/// Where we are deliberately stricter than go-msgpack, on inputs no Go encoder produces:
/// - a string field that is not UTF-8: Go keeps the bytes, we refuse rather than rename a node;
/// - a `uint64` above `Int64.max` in an `int64` field: Go wraps it to a negative number (a Go
///   sender writes negatives as `int64`, never like this), we refuse.
func isDeliberateDifference(_ cause: MessagePackError) -> Bool {
    switch cause {
    case .invalidUTF8, .integerOverflow: true
    default: false
    }
}

/// Our message decoders against memberlist's own (go-msgpack into the Go structs) on 900
/// deterministically corrupted messages (vectors from Tools/golden-vectors). Where both accept an
/// input they must read the same values (compared through the re-encoding, which is pinned to Go's
/// by the golden tests). Go-only acceptances must be one of the deliberate differences
/// (`isDeliberateDifference`).
@Suite struct DecodeDifferentialTests {
    /// Mirrors `corrupt` in memberlist_vectors_test.go.
    static func corrupt(_ base: [UInt8], _ index: Int) -> [UInt8] {
        var bytes = base
        var x = UInt32(truncatingIfNeeded: index * 104_729 + 7)
        for _ in 0..<(1 + index % 3) {
            x = x &* 1_103_515_245 &+ 12345
            let position = 1 + Int(x >> 8) % (bytes.count - 1)
            x = x &* 1_103_515_245 &+ 12345
            bytes[position] ^= UInt8(truncatingIfNeeded: x >> 16)
        }
        return bytes
    }

    @Test(arguments: ["alive", "ind", "ping"])
    func agreesWithGo(_ name: String) throws {
        let local: [UInt8] = [127, 0, 0, 1]
        let base: MemberlistMessage = switch name {
        case "ping": .ping(PingMessage(seqNo: 70000, node: "node-b", sourceAddr: local, sourcePort: 7946, sourceNode: "node-a"))
        case "alive": .alive(AliveMessage(incarnation: 300, node: "n1", addr: local, port: 7946, meta: [0xFF, 0x80], vsn: [1, 5, 2, 2, 5, 5]))
        default: .indirectPing(IndirectPingMessage(seqNo: 300, target: [10, 0, 0, 2], port: 8301, node: "target", nack: true,
                                                   sourceAddr: local, sourcePort: 8301, sourceNode: "asker"))
        }
        compareWithGo(name: name, label: "decode differential", base: base.encoded) { bytes throws(GossipCodecError) in
            try MemberlistMessage.decode(bytes)
        } sameValue: { message, goBytes in
            message.encoded == goBytes
        } deliberateCause: { error in
            if case .malformedBody(_, let cause) = error { return cause }
            return nil
        }
    }
}

/// The same differential for serf's decoder (serf 0.9.4 `decodeMessage` into its structs). Values
/// are compared after decoding Go's re-encoding with our (golden-verified) decoder, because Go
/// re-encodes maps in random order.
@Suite struct SerfDecodeDifferentialTests {
    @Test(arguments: ["event", "pushpull", "query"])
    func agreesWithGo(_ name: String) throws {
        let base: SerfMessage = switch name {
        case "event": .userEvent(SerfUserEventMessage(lamportTime: 12, name: "deploy", payload: Array("v1.2".utf8), canCoalesce: true))
        case "pushpull": .pushPull(SerfPushPullMessage(
            lamportTime: 3, statusLamportTimes: ["n1": 2], leftMembers: ["old"], eventLamportTime: 12,
            events: [nil, SerfUserEvents(lamportTime: 11, events: [SerfUserEvent(name: "deploy", payload: Array("v1".utf8))]), nil],
            queryLamportTime: 78))
        default: .query(SerfQueryMessage(
            lamportTime: 77, id: 0xDEAD_BEEF, addr: [127, 0, 0, 1], port: 7946, sourceNode: "n1",
            filters: [SerfQueryFilter.nodes(["a", "b"]).encoded], flags: SerfQueryMessage.flagAck, relayFactor: 2,
            timeoutNanoseconds: 5_000_000_000, name: "q", payload: [7, 0x80]))
        }
        compareWithGo(name: name, label: "serf decode differential", base: base.encoded) { bytes throws(GossipCodecError) in
            try SerfMessage.decode(bytes)
        } sameValue: { message, goBytes in
            (try? SerfMessage.decode(goBytes)) == message
        } deliberateCause: { error in
            if case .malformedSerfBody(_, let cause) = error { return cause }
            return nil
        }
    }
}

/// Runs our decoder on the 300 corrupted variants of `base` that Tools/golden-vectors fed to Go's,
/// and checks each outcome against Go's: where both accept, the values must agree (`sameValue`,
/// given Go's re-encoding); where only Go accepts, our rejection must be a deliberate difference.
/// Inputs only we accept carry no interoperability risk and are just reported.
func compareWithGo<Message>(
    name: String,
    label: String,
    base: [UInt8],
    decode: ([UInt8]) throws(GossipCodecError) -> Message,
    sameValue: (Message, [UInt8]) -> Bool,
    deliberateCause: (GossipCodecError) -> MessagePackError?
) {
    var both = 0
    var onlyGo = 0
    var onlySwift: [Int] = []
    for index in 0..<300 {
        let key = "diff_\(name)_\(String(repeating: "0", count: 3 - String(index).count))\(index)"
        guard let expected = GoGoldenVectors.decodeOutcomes[key] else {
            Issue.record("missing vector \(key)")
            continue
        }
        let input = DecodeDifferentialTests.corrupt(base, index)
        let ours: Message?
        var ourError: GossipCodecError?
        do {
            ours = try decode(input)
        } catch {
            ours = nil
            ourError = error
        }
        switch (ours, expected) {
        case (let message?, let goHex) where goHex != "err":
            both += 1
            #expect(sameValue(message, hexBytes(goHex)), "\(key): both accepted, values differ")
        case (_?, _):
            onlySwift.append(index)
        case (nil, "err"):
            break
        case (nil, _):
            onlyGo += 1
            if let ourError, let cause = deliberateCause(ourError), isDeliberateDifference(cause) {
            } else {
                Issue.record("\(key): Go accepted, we rejected with \(String(describing: ourError))")
            }
        }
    }
    print("\(label) \(name): both=\(both) onlyGo(deliberate)=\(onlyGo) onlySwift=\(onlySwift)")
    #expect(both > 50)
}
