import NIOCore

package enum RaftTransportError: Error, Hashable, Sendable {
    /// An inbound connection started with another byte than RPCRaft.
    case notRaftConnection(firstByte: UInt8)
    /// A length prefix over `RaftWireCodec.maxFrameBytes`: the stream's framing cannot be trusted.
    case frameTooLarge(Int)
}

/// Splits an inbound byte stream into Raft messages: the RPCRaft byte first (when this handler
/// is the first to see the connection), then length-prefixed frames. A frame whose body does not
/// decode is dropped and counted; the stream goes on, since its length still delimits it.
struct RaftFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = Message
    private var expectingProtocolByte: Bool
    private let counters: TransportCounters

    init(expectingProtocolByte: Bool, counters: TransportCounters) {
        self.expectingProtocolByte = expectingProtocolByte
        self.counters = counters
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if expectingProtocolByte {
            guard let first = buffer.readInteger(as: UInt8.self) else { return .needMoreData }
            guard first == RaftTCPTransport.protocolByte else {
                counters.add(\.rejectedConnections)
                throw RaftTransportError.notRaftConnection(firstByte: first)
            }
            expectingProtocolByte = false
        }
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else {
            return .needMoreData
        }
        guard length <= RaftWireCodec.maxFrameBytes else {
            counters.add(\.oversizedFrames)
            throw RaftTransportError.frameTooLarge(Int(length))
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let body = buffer.readBytes(length: Int(length)) ?? []
        do {
            context.fireChannelRead(wrapInboundOut(try RaftWireCodec.decodeBody(body)))
        } catch {
            counters.add(\.garbageFrames)
        }
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// Collects the messages of one read burst and hands them to the transport as one batch.
final class RaftInboundHandler: ChannelInboundHandler {
    typealias InboundIn = Message
    private let transport: RaftTCPTransport
    private var batch: [Message] = []

    init(transport: RaftTCPTransport) {
        self.transport = transport
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        batch.append(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        flush()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        flush()
        context.close(promise: nil)
    }

    private func flush() {
        guard !batch.isEmpty else { return }
        let messages = batch
        batch.removeAll(keepingCapacity: true)
        transport.deliver(messages)
    }
}
