import ConsulCrypto
import Testing
@testable import Gossip

/// The packet and stream pipelines with the real OpenSSL keyring at the encryption seam.
@Suite struct KeyringCipherTests {
    let key = GossipKey.generate()

    func ping(_ sequence: UInt32) -> [UInt8] {
        MemberlistMessage.ping(PingMessage(seqNo: sequence, node: "n\(sequence)")).encoded
    }

    @Test func encryptedPacketRoundTripsThroughTheKeyring() throws {
        let ring = Keyring(primary: key)
        let codec = PacketCodec()
        let datagram = try codec.encode([ping(1), ping(2)], options: OutboundPacketOptions(compress: true, checksum: true), cipher: ring)
        #expect(datagram[0] == 1)  // envelope version 1, as serf sends
        let decoded = try codec.decode(datagram, cipher: Keyring(primary: GossipKey.generate(), secondary: [key]))
        #expect(decoded.messages == [.ping(PingMessage(seqNo: 1, node: "n1")), .ping(PingMessage(seqNo: 2, node: "n2"))])
        #expect(decoded.hadChecksum)
    }

    @Test func wrongKeyIsRefusedWithMemberlistsMessage() throws {
        let codec = PacketCodec()
        let datagram = try codec.encode([ping(1)], options: OutboundPacketOptions(compress: false, checksum: false), cipher: Keyring(primary: key))
        #expect(throws: GossipCodecError.decryptionFailed("No installed keys could decrypt the message")) {
            try codec.decode(datagram, cipher: Keyring(primary: GossipKey.generate()))
        }
        // Plaintext is dropped while incoming verification is on.
        let plaintext = try codec.encode([ping(3)], options: OutboundPacketOptions(compress: false, checksum: false), cipher: nil)
        #expect(throws: GossipCodecError.self) { try codec.decode(plaintext, cipher: Keyring(primary: key)) }
        // ...and read during a rollout, when it is off.
        #expect(try codec.decode(plaintext, cipher: Keyring(primary: key), verifyIncoming: false).messages.count == 1)
    }
}
