import Crypto
import Testing
@testable import ConsulCore
@testable import ConsulCrypto

@Suite struct GossipEnvelopeTests {
    /// Fixed key 00..1f and nonce a0..ab; expected bytes computed independently with Python's
    /// `cryptography` AESGCM.
    let fixedKey = try! GossipKey(bytes: Array(0..<32))
    let fixedNonce = Array<UInt8>(0xA0...0xAB)

    @Test func knownAnswerVersion1() throws {
        let ring = Keyring(primary: fixedKey)
        let sealed = ring.encrypt(Array("consul gossip".utf8), additionalData: [], version: .unpadded, nonce: fixedNonce)
        #expect(hex(sealed) == "01a0a1a2a3a4a5a6a7a8a9aaab8577125e30a722d80d16f4ba7774f2bc90cf301b2fd246c3a2cdaec8de")
        #expect(try ring.decrypt(sealed) == Array("consul gossip".utf8))
    }

    @Test func knownAnswerVersion0IsPaddedAndDecrypts() throws {
        let ring = Keyring(primary: fixedKey)
        let sealed = ring.encrypt(Array("consul gossip".utf8), additionalData: [], version: .padded, nonce: fixedNonce)
        #expect(hex(sealed) == "00a0a1a2a3a4a5a6a7a8a9aaab8577125e30a722d80d16f4ba7779c3ddbc8450381099bc18ceaa9f85691a1077")
        #expect(try ring.decrypt(sealed) == Array("consul gossip".utf8))
    }

    /// McGrew & Viega GCM spec, test case 16 (AES-256, 96-bit IV, with additional data): checks the
    /// raw cipher against the published vector.
    @Test func gcmSpecTestCase16() throws {
        let key = try GossipKey(bytes: hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"))
        let nonce = hex("cafebabefacedbaddecaf888")
        let plaintext = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let sealed = Keyring(primary: key).encrypt(plaintext, additionalData: aad, version: .unpadded, nonce: nonce)
        #expect(hex(Array(sealed[13..<(sealed.count - 16)])) == "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662")
        #expect(hex(Array(sealed.suffix(16))) == "76fc6ece0f4e1768cddf8853bb2d551b")
    }

    @Test(arguments: [16, 24, 32])
    func roundTripsEveryKeySizeAndLength(keySize: Int) throws {
        var random = SeededRandom(seed: UInt64(keySize))
        let ring = Keyring(primary: try GossipKey(bytes: (0..<keySize).map { _ in UInt8.random(in: 0...255, using: &random) }))
        for length in [0, 1, 15, 16, 17, 64, 512, 1400, 65_536] {
            let plaintext = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let aad: [UInt8] = length % 2 == 0 ? [] : [10, 0, 0, 1, 0]
            for version in [GossipEnvelope.Version.unpadded, .padded] {
                let sealed = ring.encrypt(plaintext, additionalData: aad, version: version)
                #expect(sealed.count == length + GossipEnvelope.overhead(version: version, plaintextLength: length))
                #expect(sealed[0] == version.rawValue)
                #expect(try ring.decrypt(sealed, additionalData: aad) == plaintext)
            }
        }
    }

    @Test func version1OverheadIsExactly29Bytes() {
        #expect(GossipEnvelope.overhead(plaintextLength: 100) == 29)
        #expect(GossipEnvelope.overhead(version: .padded, plaintextLength: 16) == 45)
        #expect(GossipEnvelope.overhead(version: .padded, plaintextLength: 15) == 30)
    }

    /// Nonces come from a pool refilled from OpenSSL every 341 nonces; none may repeat across refills.
    @Test func noncesAreFreshPerMessage() {
        let ring = Keyring(primary: GossipKey.generate())
        let count = NoncePool.refillSize / 12 * 3 + 7
        let nonces = (0..<count).map { _ in Array(ring.encrypt([1, 2, 3])[1..<13]) }
        #expect(Set(nonces.map(hex)).count == count)
    }

    /// Every single flipped bit — version, nonce, body, tag, or the additional data — is rejected.
    @Test func everyFlippedBitIsRejected() throws {
        let ring = Keyring(primary: fixedKey)
        let header: [UInt8] = [10, 0, 0, 0, 33]
        let sealed = ring.encrypt(Array("flip".utf8), additionalData: header)
        #expect(try ring.decrypt(sealed, additionalData: header) == Array("flip".utf8))
        for byteIndex in sealed.indices {
            for bit in 0..<8 {
                var damaged = sealed
                damaged[byteIndex] ^= 1 << bit
                #expect(throws: GossipDecryptError.self) { try ring.decrypt(damaged, additionalData: header) }
            }
        }
        for byteIndex in header.indices {
            for bit in 0..<8 {
                var damagedHeader = header
                damagedHeader[byteIndex] ^= 1 << bit
                #expect(throws: GossipDecryptError.noKeyCouldDecrypt) { try ring.decrypt(sealed, additionalData: damagedHeader) }
            }
        }
        // Missing additional data where the sender used some is a different message too.
        #expect(throws: GossipDecryptError.noKeyCouldDecrypt) { try ring.decrypt(sealed) }
    }

    @Test func wrongKeyIsRejectedWithMemberlistsMessage() {
        let sender = Keyring(primary: GossipKey.generate())
        let receiver = Keyring(primary: GossipKey.generate(), secondary: [GossipKey.generate()])
        #expect(throws: GossipDecryptError.noKeyCouldDecrypt) { try receiver.decrypt(sender.encrypt([1, 2, 3])) }
        #expect(GossipDecryptError.noKeyCouldDecrypt.description == "No installed keys could decrypt the message")
    }

    @Test func malformedEnvelopesGetClearErrors() {
        let ring = Keyring(primary: fixedKey)
        #expect(throws: GossipDecryptError.emptyPayload) { try ring.decrypt([]) }
        #expect(throws: GossipDecryptError.unsupportedVersion(2)) { try ring.decrypt([2] + [UInt8](repeating: 0, count: 40)) }
        #expect(throws: GossipDecryptError.payloadTooSmall(28)) { try ring.decrypt([1] + [UInt8](repeating: 0, count: 27)) }
        #expect(throws: GossipDecryptError.payloadTooSmall(29)) { try ring.decrypt([0] + [UInt8](repeating: 0, count: 28)) }
        // Fuzz: random junk of every short length never traps and never "decrypts".
        var random = SeededRandom(seed: 77)
        for length in 0..<200 {
            let junk = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            #expect(throws: GossipDecryptError.self) { try ring.decrypt(junk) }
        }
    }

    /// The version byte is not authenticated (memberlist's format), so padding is what stands
    /// between a relabelled or broken message and a wrong plaintext.
    @Test func version0WithBadPaddingIsRejected() throws {
        let ring = Keyring(primary: fixedKey)
        let badBodies: [[UInt8]] = [
            Array("abcdefghijklmno".utf8) + [0],            // zero padding length
            Array("abcdefghijklm".utf8) + [2, 3, 3],        // inconsistent padding bytes
            Array("abcdefghijklmn".utf8) + [1, 17],         // padding longer than a block
            Array("abcdefghijklmn".utf8) + [4, 4, 4],       // not a whole number of blocks
        ]
        for body in badBodies {
            var relabelled = ring.encrypt(body, additionalData: [], version: .unpadded, nonce: fixedNonce)
            relabelled[0] = GossipEnvelope.Version.padded.rawValue
            #expect(throws: GossipDecryptError.badPadding) { try ring.decrypt(relabelled) }
        }
        // A version-1 message whose last byte happens to look like padding is still rejected when
        // relabelled, because its length is not a whole number of blocks.
        var lookalike = ring.encrypt(Array("this message ends in one".utf8) + [1])
        lookalike[0] = 0
        #expect(throws: GossipDecryptError.badPadding) { try ring.decrypt(lookalike) }
    }

    // MARK: - swift-crypto (BoringSSL) as an independent oracle

    @Test(arguments: [16, 24, 32])
    func swiftCryptoOpensWhatWeSeal(keySize: Int) throws {
        let key = try GossipKey(bytes: SecureRandom.bytes(keySize))
        let ring = Keyring(primary: key)
        var random = SeededRandom(seed: 1234)
        for length in [0, 1, 33, 1400] {
            let plaintext = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let aad: [UInt8] = [10, 0, 0, 5, 120]
            let sealed = ring.encrypt(plaintext, additionalData: aad)
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: sealed[1..<13]),
                ciphertext: sealed[13..<(sealed.count - 16)],
                tag: sealed.suffix(16))
            let opened = try AES.GCM.open(box, using: SymmetricKey(data: key.bytes), authenticating: aad)
            #expect(Array(opened) == plaintext)
        }
    }

    @Test(arguments: [16, 24, 32])
    func weOpenWhatSwiftCryptoSeals(keySize: Int) throws {
        let key = try GossipKey(bytes: SecureRandom.bytes(keySize))
        let ring = Keyring(primary: GossipKey.generate(), secondary: [key])
        var random = SeededRandom(seed: 4321)
        for length in [0, 7, 512, 1400] {
            let plaintext = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let aad: [UInt8] = length == 0 ? [] : [10, 0, 0, 2, 0]
            let box = try AES.GCM.seal(plaintext, using: SymmetricKey(data: key.bytes), authenticating: aad)
            let envelope = [UInt8(1)] + Array(box.nonce) + Array(box.ciphertext) + Array(box.tag)
            #expect(try ring.decrypt(envelope, additionalData: aad) == plaintext)
        }
    }
}
