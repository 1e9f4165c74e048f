import Testing
@testable import ConsulCrypto
import ConsulCore

@Suite struct GossipKeyTests {
    @Test(arguments: [16, 24, 32])
    func acceptsAllowedSizes(size: Int) throws {
        let raw = (0..<size).map { UInt8($0) }
        let key = try GossipKey(bytes: raw)
        #expect(key.bytes == raw)
        #expect(try GossipKey(base64: key.base64) == key)
        #expect(key.algorithm == "AES-\(size * 8)-GCM")
    }

    @Test(arguments: [0, 1, 8, 15, 17, 20, 31, 33, 64])
    func rejectsOtherSizesNamingTheAllowedOnes(size: Int) {
        let raw = [UInt8](repeating: 7, count: size)
        #expect(throws: GossipKeyError.wrongSize(size)) { try GossipKey(bytes: raw) }
        let message = GossipKeyError.wrongSize(size).description
        #expect(message.contains("16, 24 or 32 bytes"))
        #expect(message.contains("got \(size) bytes"))
    }

    @Test func rejectsNonBase64AndEmptyInput() {
        #expect(throws: GossipKeyError.notBase64) { try GossipKey(base64: "not base64 at all!") }
        #expect(throws: GossipKeyError.notBase64) { try GossipKey(base64: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8") }
        #expect(throws: GossipKeyError.empty) { try GossipKey(base64: "   ") }
        // A base64 string of the wrong decoded size is a size error, not a parse error.
        #expect(throws: GossipKeyError.wrongSize(12)) { try GossipKey(base64: "AAAAAAAAAAAAAAAA") }
    }

    @Test func parsesWhatOperatorsPaste() throws {
        let key = try GossipKey(base64: "  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")
        #expect(key.bytes == Array(0..<32))
        #expect(key.base64 == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    }

    @Test func generatedKeysAreFreshAndFullSize() {
        let keys = (0..<32).map { _ in GossipKey.generate() }
        #expect(Set(keys).count == keys.count)
        for key in keys {
            #expect(key.bytes.count == 32)
            #expect(key.base64.count == 44)
        }
    }

    @Test func base64MatchesKnownEncodings() {
        // RFC 4648 §10 test vectors.
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(Substring(encoded)) == Array(plain.utf8))
        }
        #expect(Base64.decode("Zg=") == nil)
        #expect(Base64.decode("Z===") == nil)
        #expect(Base64.decode("Zg==Zg==") == nil)
        #expect(Base64.decode("Zm9v-_==") == nil)
    }
}
