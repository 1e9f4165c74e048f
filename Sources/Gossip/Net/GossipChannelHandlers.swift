#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore
import NIOCore

/// Converting between NIO socket addresses and the raw IP bytes memberlist carries.
enum GossipSocketAddress {
    static func gossip(_ address: SocketAddress?) -> GossipAddress? {
        switch address {
        case .v4(let v4)?:
            let raw = v4.address
            let ip = withUnsafeBytes(of: raw.sin_addr) { Array($0) }
            return GossipAddress(ip: ip, port: UInt16(bigEndian: raw.sin_port))
        case .v6(let v6)?:
            let raw = v6.address
            var ip = withUnsafeBytes(of: raw.sin6_addr) { Array($0) }
            // A v4-mapped address is memberlist's 16-byte form of an IPv4 peer; keep it as 4 bytes.
            if ip.prefix(12).elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]) { ip = Array(ip.suffix(4)) }
            return GossipAddress(ip: ip, port: UInt16(bigEndian: raw.sin6_port))
        default:
            return nil
        }
    }

    static func socket(_ address: GossipAddress) -> SocketAddress? {
        var ip = address.ip
        if ip.count == 16, ip.prefix(12).elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]) { ip = Array(ip.suffix(4)) }
        switch ip.count {
        case 4:
            var raw = sockaddr_in()
            raw.sin_family = sa_family_t(AF_INET)
            raw.sin_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &raw.sin_addr) { $0.copyBytes(from: ip) }
            return SocketAddress(raw, host: "")
        case 16:
            var raw = sockaddr_in6()
            raw.sin6_family = sa_family_t(AF_INET6)
            raw.sin6_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &raw.sin6_addr) { $0.copyBytes(from: ip) }
            return SocketAddress(raw, host: "")
        default:
            return nil
        }
    }
}

/// Every datagram goes straight to the node (decrypt, decode, hand to the core).
final class GossipDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let node: GossipNode

    init(node: GossipNode) { self.node = node }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        node.receiveDatagram(Array(envelope.data.readableBytesView), from: envelope.remoteAddress)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A UDP socket error (e.g. ICMP unreachable surfaced on read) is not fatal for the listener.
        node.logNetwork(.debug, "UDP error: \(error)")
    }
}

/// Accumulates a stream until `StreamCodec` sees one whole message, never beyond the codec's limit.
struct StreamAccumulator {
    var buffered: [UInt8] = []
    var needed = 1

    /// Appends `buffer`; nil until `needed` bytes are in, then the codec's verdict.
    mutating func append(_ buffer: ByteBuffer, decode: ([UInt8]) throws(GossipCodecError) -> StreamDecodeResult) -> Result<StreamMessage, GossipCodecError>? {
        buffered.append(contentsOf: buffer.readableBytesView)
        guard buffered.count >= needed else { return nil }
        do throws(GossipCodecError) {
            switch try decode(buffered) {
            case .needMoreData(let minimum):
                needed = max(minimum, buffered.count + 1)
                return nil
            case .message(let message, _):
                return .success(message)
            }
        } catch {
            return .failure(error)
        }
    }
}

/// A stream a peer opened: read one message, let the core answer, write the answer, close.
final class GossipStreamServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let node: GossipNode
    private var accumulator = StreamAccumulator()
    private var done = false
    private var admitted = false

    init(node: GossipNode) { self.node = node }

    func channelActive(context: ChannelHandlerContext) {
        admitted = node.admitStream()
        guard admitted else {
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        channel.eventLoop.scheduleTask(in: node.streamTimeout) { channel.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard admitted, !done else { return }
        let buffer = unwrapInboundIn(data)
        node.countStreamBytesIn(buffer.readableBytes)
        guard let result = accumulator.append(buffer, decode: { bytes throws(GossipCodecError) in try node.decodeStream(bytes) }) else { return }
        done = true
        let peer = GossipSocketAddress.gossip(context.channel.remoteAddress)
        switch result {
        case .success(let message):
            node.inboundStream(context.channel, from: peer, message: message)
        case .failure(let error):
            node.refuseStream(context.channel, from: peer, error: error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if admitted { node.releaseStream() }
        admitted = false
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// The end of one stream we opened, delivered to the core exactly once.
final class GossipStreamClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    /// Fired into the pipeline from outside the event loop.
    enum Signal: Sendable {
        case deadline
        case written
    }

    private let node: GossipNode
    private let id: OutboundStreamID
    private let expectsReply: Bool
    private var accumulator = StreamAccumulator()
    private var finished = false

    init(node: GossipNode, id: OutboundStreamID, expectsReply: Bool) {
        self.node = node
        self.id = id
        self.expectsReply = expectsReply
    }

    private func finish(_ outcome: StreamOutcome, context: ChannelHandlerContext) {
        guard !finished else { return }
        finished = true
        node.streamFinished(id, outcome)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else { return }
        let buffer = unwrapInboundIn(data)
        node.countStreamBytesIn(buffer.readableBytes)
        guard expectsReply else { return }
        guard let result = accumulator.append(buffer, decode: { bytes throws(GossipCodecError) in try node.decodeStream(bytes) }) else { return }
        switch result {
        case .success(let message): finish(.reply(message), context: context)
        case .failure(let error): finish(.failed(GossipStreamError(GossipNode.describe(error))), context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event as? Signal {
        case .deadline?: finish(.failed(GossipStreamError("i/o timeout")), context: context)
        case .written?: if !expectsReply { finish(.sent, context: context) }
        case nil: context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failed(GossipStreamError(accumulator.buffered.isEmpty ? "EOF" : "unexpected EOF")), context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failed(GossipStreamError("\(error)")), context: context)
    }
}
