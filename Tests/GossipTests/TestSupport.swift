@testable import Gossip

/// Decodes the hex strings the Go generator printed.
func hexBytes(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(hex.utf8.count / 2)
    var high: UInt8?
    for character in hex.utf8 {
        let nibble: UInt8
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = character - UInt8(ascii: "a") + 10
        default: preconditionFailure("bad hex in test vector")
        }
        if let value = high {
            bytes.append(value << 4 | nibble)
            high = nil
        } else {
            high = nibble
        }
    }
    return bytes
}

/// A golden vector by name; a missing name is a test bug, so it traps loudly.
func golden(_ name: String) -> [UInt8] {
    guard let hex = GoGoldenVectors.hex[name] else { preconditionFailure("no golden vector \(name)") }
    return hexBytes(hex)
}

/// The deterministic input the Go generator compressed (`lcgBytes` in memberlist_vectors_test.go).
func lcgBytes(_ count: Int, alphabet: UInt32) -> [UInt8] {
    var x: UInt32 = 12345
    return (0..<count).map { _ in
        x = x &* 1_103_515_245 &+ 12345
        return UInt8((x >> 16) % alphabet)
    }
}

/// TEST DOUBLE ONLY — not encryption. Stands in for the keyring at the `GossipCipher` seam so the
/// tests can check where in the pipeline sealing happens and what the additional data is. It
/// mimics the envelope shape (`[1][12-byte nonce][body][16-byte tag]`, +29 bytes) and binds the
/// additional data into its "tag" so a wrong header is detected.
struct RecordingTestCipher: GossipCipher {
    struct Failure: Error {}

    func sealedLength(plaintextLength: Int) -> Int { plaintextLength + 29 }

    func seal(_ plaintext: [UInt8], additionalData: [UInt8]) throws -> [UInt8] {
        [1] + [UInt8](repeating: 0xAB, count: 12) + plaintext.map { $0 ^ 0x5A } + tag(plaintext, additionalData)
    }

    func open(_ envelope: [UInt8], additionalData: [UInt8]) throws -> [UInt8] {
        guard envelope.count >= 29, envelope[0] == 1 else { throw Failure() }
        let plaintext = envelope[13..<envelope.count - 16].map { $0 ^ 0x5A }
        guard Array(envelope.suffix(16)) == tag(plaintext, additionalData) else { throw Failure() }
        return plaintext
    }

    private func tag(_ plaintext: [UInt8], _ additionalData: [UInt8]) -> [UInt8] {
        let sum = CRC32.checksum(additionalData + plaintext)
        return (0..<16).map { UInt8(truncatingIfNeeded: sum >> (UInt32($0 % 4) * 8)) }
    }
}
