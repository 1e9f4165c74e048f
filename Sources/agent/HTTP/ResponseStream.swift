import NIOCore

/// A response body produced over time (`/v1/agent/monitor`): the server sends the head at once,
/// then the stream writes chunks until the client goes away. Ordinary responses never carry one,
/// so their path through the server is unchanged.
protocol ResponseStream: AnyObject, Sendable {
    /// On the connection's event loop, right after the head was flushed.
    func attach(_ connection: StreamConnection)
    /// On the loop: the connection can take more bytes again.
    func resume()
    /// On the loop: the connection closed (client gone, agent stopping); produce nothing more.
    func detach()
}

/// What a stream may do with its connection; used only on the connection's event loop.
final class StreamConnection {
    private let context: ChannelHandlerContext
    /// HTTP/1.1: each write is one chunk of chunked encoding; HTTP/1.0: raw bytes until the close.
    private let chunked: Bool

    init(context: ChannelHandlerContext, chunked: Bool) {
        self.context = context
        self.chunked = chunked
    }

    var eventLoop: any EventLoop { context.eventLoop }

    /// False while NIO holds more unsent bytes than its high watermark: the stream should wait for `resume`.
    var isWritable: Bool { context.channel.isActive && context.channel.isWritable }

    /// Writes one chunk and flushes it (a monitor's lines are wanted as they happen).
    func write(_ text: String) {
        let count = text.utf8.count
        guard count > 0 else { return }  // an empty chunk would end a chunked body
        var buffer = context.channel.allocator.buffer(capacity: count + 16)
        if chunked {
            buffer.writeString(String(count, radix: 16))
            buffer.writeStaticString("\r\n")
        }
        buffer.writeString(text)
        if chunked { buffer.writeStaticString("\r\n") }
        context.writeAndFlush(NIOAny(buffer), promise: nil)
    }
}
