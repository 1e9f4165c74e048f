import ConsulCore
import Testing
@testable import Gossip

/// Our message decoders against memberlist's own (go-msgpack into the Go structs) on 900
/// deterministically corrupted messages (vectors from Tools/golden-vectors). Where both accept an
/// input they must read the same values (compared through the re-encoding, which is pinned to Go's
/// by the golden tests). The one deliberate difference: Go accepts any bytes in a string field,
/// we reject invalid UTF-8 rather than alter a node name; every Go-only acceptance must be that.
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
        var both = 0
        var onlyGo: [Int] = []
        var onlySwift: [Int] = []
        for index in 0..<300 {
            let key = "diff_\(name)_\(String(repeating: "0", count: 3 - String(index).count))\(index)"
            guard let expected = GoGoldenVectors.decodeOutcomes[key] else {
                Issue.record("missing vector \(key)")
                continue
            }
            let input = Self.corrupt(base.encoded, index)
            let ours: MemberlistMessage?
            var ourError: GossipCodecError?
            do {
                ours = try MemberlistMessage.decode(input)
            } catch {
                ours = nil
                ourError = error
            }
            switch (ours, expected) {
            case (let message?, let goHex) where goHex != "err":
                both += 1
                #expect(message.encoded == hexBytes(goHex), "\(key): both accepted, values differ")
            case (_?, _):
                onlySwift.append(index)
            case (nil, "err"):
                break
            case (nil, _):
                onlyGo.append(index)
                if case .malformedBody(_, .invalidUTF8)? = ourError {
                } else {
                    Issue.record("\(key): Go accepted, we rejected with \(String(describing: ourError))")
                }
            }
        }
        // Where we accept more than Go (for example a value skipped as an unknown field that Go's
        // decoder chokes on) there is no interoperability risk; the count is only reported.
        print("decode differential \(name): both=\(both) onlyGo(invalid UTF-8)=\(onlyGo.count) onlySwift=\(onlySwift)")
        #expect(both > 50)
    }
}
