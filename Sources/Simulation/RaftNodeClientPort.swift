import ConsulCore
import NIOCore
import NIOPosix
import Raft

/// `raft-node`'s client port: one request per line, answered in order per connection (see
/// `RaftNodeCommand`). It runs on the node's event loop, so a `PUT` is proposed straight from the
/// read and answered straight from the node's apply (`RaftNode.propose(_:completion:)`): the
/// client's write costs no thread hand-off of its own. Other requests go through a task.
enum RaftNodeClientPort {
    /// A request that takes longer than this is answered `ERR timeout` (the write may still happen).
    static let requestTimeout: TimeAmount = .seconds(10)
    /// Requests read from one connection and not yet answered; past it the connection is closed.
    static let maxPendingRequests = 1024

    static func listen(host: String, port: Int, node: RaftNode<StringKVMachine>) async throws -> any Channel {
        try await ServerBootstrap(group: node.eventLoop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(LineDecoder(maxLineBytes: LineClient.maxLineBytes)), ClientHandler(node: node))
                }
            }
            .bind(host: host, port: port).get()
    }

    /// Splits the stream into lines (without the newline); a line over the limit closes the connection.
    struct LineDecoder: ByteToMessageDecoder {
        typealias InboundOut = String
        let maxLineBytes: Int

        struct LineTooLong: Error {}

        mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
            guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
                if buffer.readableBytes > maxLineBytes { throw LineTooLong() }
                return .needMoreData
            }
            let length = newline - buffer.readerIndex
            let line = buffer.readString(length: length) ?? ""
            buffer.moveReaderIndex(forwardBy: 1)
            context.fireChannelRead(wrapInboundOut(line))
            return .continue
        }

        mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
            while try decode(context: context, buffer: &buffer) == .continue {}
            return .needMoreData
        }
    }

    /// Answers one request at a time per connection, in the order they came.
    final class ClientHandler: ChannelInboundHandler {
        typealias InboundIn = String
        typealias OutboundOut = ByteBuffer
        private let node: RaftNode<StringKVMachine>
        private var pending: [String] = []
        private var head = 0
        /// Bumped per request, so a late answer to an earlier one (after its timeout) is ignored.
        private var generation: UInt64 = 0
        private var busy = false
        private var startedAt = NIODeadline.now()
        /// Checks once a second for a request past `requestTimeout` (one timer per connection,
        /// not one per request).
        private var watchdog: RepeatedTask?

        init(node: RaftNode<StringKVMachine>) {
            self.node = node
        }

        func handlerAdded(context: ChannelHandlerContext) {
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            watchdog = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                let (handler, context) = bound.value
                if handler.busy, NIODeadline.now() - handler.startedAt > RaftNodeClientPort.requestTimeout {
                    handler.answer("ERR timeout", for: handler.generation, context)
                }
            }
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            watchdog?.cancel()
            watchdog = nil
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard pending.count - head < RaftNodeClientPort.maxPendingRequests else {
                context.close(promise: nil)
                return
            }
            pending.append(unwrapInboundIn(data))
            if !busy { next(context) }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        private func next(_ context: ChannelHandlerContext) {
            guard head < pending.count else {
                pending.removeAll(keepingCapacity: true)
                head = 0
                return
            }
            let line = pending[head]
            head += 1
            if head >= 1024 {
                pending.removeFirst(head)
                head = 0
            }
            busy = true
            startedAt = .now()
            generation += 1
            let current = generation
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let answer: @Sendable (String) -> Void = { text in
                let (handler, context) = bound.value
                handler.answer(text, for: current, context)
            }
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            if words.count == 3, words[0] == "PUT", node.eventLoop === context.eventLoop {
                guard words[1].utf8.count <= StringKVMachine.maxKeyBytes, words[2].utf8.count <= StringKVMachine.maxValueBytes else {
                    return answer("ERR too large")
                }
                let command = StringKVMachine.put(String(words[1]), String(words[2]))
                node.assumeIsolated { node in
                    node.propose(command) { result in answer(RaftNodeCommand.putAnswer(result)) }
                }
            } else {
                let node = node
                let loop = context.eventLoop
                Task {
                    let text = await RaftNodeCommand.handle(line, node: node)
                    loop.execute { answer(text) }
                }
            }
        }

        private func answer(_ text: String, for request: UInt64, _ context: ChannelHandlerContext) {
            guard busy, request == generation else { return }
            busy = false
            var buffer = context.channel.allocator.buffer(capacity: text.utf8.count + 1)
            buffer.writeString(text)
            buffer.writeInteger(UInt8(ascii: "\n"))
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            next(context)
        }
    }
}
