import ConsulCrypto

/// The real cipher at the packet and stream pipelines' encryption seam: memberlist's AES-GCM
/// envelope (version 1), sealed with the primary key and opened with any installed key.
extension Keyring: GossipCipher {
    package func sealedLength(plaintextLength: Int) -> Int {
        plaintextLength + GossipEnvelope.overhead(plaintextLength: plaintextLength)
    }

    package func seal(_ plaintext: [UInt8], additionalData: [UInt8]) throws -> [UInt8] {
        encrypt(plaintext, additionalData: additionalData)
    }

    package func open(_ envelope: [UInt8], additionalData: [UInt8]) throws -> [UInt8] {
        try decrypt(envelope, additionalData: additionalData)
    }
}
