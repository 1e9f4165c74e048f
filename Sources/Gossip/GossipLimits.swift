import ConsulCore

/// Every bound the gossip codec applies to what a peer sends. Named so a shell and the tests agree
/// on them, and chosen from memberlist's own constants where it has one.
package struct GossipLimits: Sendable, Equatable {
    /// Largest UDP datagram accepted (the IPv4 payload maximum; memberlist reads into 64 KiB).
    package var maxPacketBytes: Int
    /// Bytes memberlist packs into one outgoing gossip datagram (`UDPBufferSize`).
    package var udpBufferSize: Int
    /// Largest encrypted TCP frame or plaintext push/pull accepted (`maxPushStateBytes`, 20 MiB).
    package var maxStreamBytes: Int
    /// Largest result of inflating a compressed UDP packet (guards against LZW bombs; a real
    /// packet inflates to well under 64 KiB).
    package var maxDecompressedPacketBytes: Int
    /// Largest result of inflating a compressed TCP message (a push/pull of a large cluster).
    package var maxDecompressedStreamBytes: Int
    /// Parts in one compound message: the count is one byte on the wire.
    package var maxCompoundParts: Int
    /// How deeply compound/compress wrappers may nest inside one packet (Go nests without bound;
    /// real senders use at most compress > compound).
    package var maxWrapperDepth: Int
    /// Messages one packet may expand to in total, across nested compounds.
    package var maxMessagesPerPacket: Int
    /// Node states in one push/pull.
    package var maxPushPullNodes: Int
    /// Node meta (serf tags) size (`MetaMaxSize`).
    package var maxMetaBytes: Int
    /// Bounds for each msgpack object inside a message.
    package var messagePack: MessagePackLimits
    /// Serf send-side limits (serf `DefaultConfig`): a user event's name plus payload, a query's
    /// encoded size, and a query response's encoded size. Enforced by the serf layer when it
    /// creates those messages, so a peer running serf defaults accepts ours.
    package var serfUserEventSizeLimit: Int
    package var serfQuerySizeLimit: Int
    package var serfQueryResponseSizeLimit: Int

    package init(
        maxPacketBytes: Int = 65_535,
        udpBufferSize: Int = 1400,
        maxStreamBytes: Int = 20 * 1024 * 1024,
        maxDecompressedPacketBytes: Int = 1024 * 1024,
        maxDecompressedStreamBytes: Int = 64 * 1024 * 1024,
        maxCompoundParts: Int = 255,
        maxWrapperDepth: Int = 4,
        maxMessagesPerPacket: Int = 1024,
        maxPushPullNodes: Int = 100_000,
        maxMetaBytes: Int = 512,
        messagePack: MessagePackLimits = GossipLimits.defaultMessagePack,
        serfUserEventSizeLimit: Int = 512,
        serfQuerySizeLimit: Int = 1024,
        serfQueryResponseSizeLimit: Int = 1024
    ) {
        self.maxPacketBytes = maxPacketBytes
        self.udpBufferSize = udpBufferSize
        self.maxStreamBytes = maxStreamBytes
        self.maxDecompressedPacketBytes = maxDecompressedPacketBytes
        self.maxDecompressedStreamBytes = maxDecompressedStreamBytes
        self.maxCompoundParts = maxCompoundParts
        self.maxWrapperDepth = maxWrapperDepth
        self.maxMessagesPerPacket = maxMessagesPerPacket
        self.maxPushPullNodes = maxPushPullNodes
        self.maxMetaBytes = maxMetaBytes
        self.messagePack = messagePack
        self.serfUserEventSizeLimit = serfUserEventSizeLimit
        self.serfQuerySizeLimit = serfQuerySizeLimit
        self.serfQueryResponseSizeLimit = serfQueryResponseSizeLimit
    }

    /// The msgpack bounds for gossip: no gossip struct nests deeper than 4, and serf's push/pull
    /// holds the largest collections (512 event slots, a status time per member).
    package static let defaultMessagePack = MessagePackLimits(
        maxDepth: 16,
        maxCollectionCount: 1 << 20,
        maxRawLength: 64 * 1024 * 1024,
        maxInputBytes: 64 * 1024 * 1024
    )

    package static let `default` = GossipLimits()
}
