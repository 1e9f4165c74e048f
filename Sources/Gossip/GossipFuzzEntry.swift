import ConsulCore

/// One entry point that feeds arbitrary bytes to every gossip decoder, for the seeded fuzz tests
/// now and a libFuzzer target later (`LLVMFuzzerTestOneInput` would call `run`). It returns how
/// many decoders accepted the input so callers can see coverage; it must never trap.
package enum GossipFuzzEntry {
    package static func run(_ input: [UInt8], limits: GossipLimits = .default) -> Int {
        var accepted = 0
        func attempt(_ body: () throws -> Void) {
            do {
                try body()
                accepted += 1
            } catch {
                // Rejection is the expected outcome for most inputs; only a trap would be a bug.
            }
        }
        let packets = PacketCodec(limits: limits)
        let streams = StreamCodec(limits: limits)
        attempt { _ = try packets.decode(input, cipher: nil) }
        attempt { _ = try MemberlistMessage.decode(input, limits: limits.messagePack) }
        attempt { _ = try streams.decode(input, cipher: nil) }
        attempt { _ = try SerfMessage.decode(input, limits: limits.messagePack) }
        attempt { _ = try SerfQueryFilter.decode(input, limits: limits.messagePack) }
        attempt { _ = try SerfTags.decode(input, limits: limits.messagePack) }
        attempt { _ = try SerfPingPayload.decodeAckPayload(input, limits: limits.messagePack) }
        attempt { _ = try Compound.split(input[...]) }
        attempt { _ = try LZW.decompress(input, maxOutput: limits.maxDecompressedPacketBytes) }
        attempt { _ = try MessagePackValue.decode(input, limits: limits.messagePack) }
        return accepted
    }
}
