import NIOCore
import Synchronization

/// The inbound side of agent RPC on the server port: connections whose first byte is `0x00` carry
/// forwarded API requests, each answered by `serve` (the agent's `APIDispatcher`, so the forwarder
/// and the ACL gate run here, on the server that answers). Requests on one connection are
/// independent: each is answered when it is done, tagged with its id, so a blocking query that
/// waits ten minutes holds back nothing else.
final class RPCServer: Sendable {
    struct Limits: Sendable {
        /// Requests being answered on one connection; more are answered 429 at once.
        var maxInFlightPerConnection = 4096
        /// Requests being answered across all connections; more are answered 429 at once.
        var maxInFlight = 16_384
        var codec = RPCCodec.Limits.default

        init() {}
    }

    typealias Serve = @Sendable (APIRequest, any EventLoop) -> EventLoopFuture<APIResponse>

    let limits: Limits
    let counters = RPCCounters()
    fileprivate let serve: Serve
    fileprivate let inFlight = Atomic<Int>(0)

    init(limits: Limits = Limits(), serve: @escaping Serve) {
        self.limits = limits
        self.serve = serve
    }

    /// Serves `channel` as agent RPC; its `0x00` byte was already read. Call on its event loop.
    func installHandlers(on channel: any Channel) throws {
        try channel.pipeline.syncOperations.addHandlers(
            ByteToMessageHandler(RPCFrameDecoder(accepts: RPCCodec.kindRequest, limits: limits.codec, counters: counters)),
            RPCServerHandler(server: self))
    }

    fileprivate func reserve() -> Bool {
        while true {
            let current = inFlight.load(ordering: .relaxed)
            guard current < limits.maxInFlight else { return false }
            if inFlight.compareExchange(expected: current, desired: current + 1, ordering: .relaxed).exchanged { return true }
        }
    }

    fileprivate func release() {
        inFlight.subtract(1, ordering: .relaxed)
    }
}

/// One inbound RPC connection: requests in, answers out in the order they finish.
private final class RPCServerHandler: ChannelInboundHandler {
    typealias InboundIn = RPCFrame
    typealias OutboundOut = ByteBuffer

    private let server: RPCServer
    private var inFlight = 0

    init(server: RPCServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .request(let request) = unwrapInboundIn(data) else { return }  // the decoder lets only requests through
        guard inFlight < server.limits.maxInFlightPerConnection, server.reserve() else {
            server.counters.add(\.requestsRejectedBusy)
            let busy = APIError.tooManyRequests("too many RPC requests in flight on this server; try again").response
            write(busy, id: request.id, context: context)
            return
        }
        inFlight += 1
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let server = self.server
        let id = request.id
        server.serve(request.apiRequest, context.eventLoop).hop(to: context.eventLoop).whenComplete { result in
            server.release()
            server.counters.add(\.requestsServed)
            let (handler, context) = loopBound.value
            handler.inFlight -= 1
            let response: APIResponse
            switch result {
            case .success(let answer): response = answer
            case .failure(let error): response = APIError.internalError("\(error)").response
            }
            handler.write(response, id: id, context: context)
        }
    }

    private func write(_ response: APIResponse, id: UInt64, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var buffer = context.channel.allocator.buffer(capacity: response.body.count + 256)
        do {
            try RPCCodec.encode(.response(RPCResponseFrame(response, id: id)), limits: server.limits.codec, into: &buffer)
        } catch {
            let failure = APIError.internalError("rpc error: the answer cannot be forwarded: \(error)").response
            buffer.clear()
            try? RPCCodec.encode(.response(RPCResponseFrame(failure, id: id)), limits: server.limits.codec, into: &buffer)
        }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A bad frame (counted by the decoder) or a socket error: the stream cannot go on.
        context.close(promise: nil)
    }
}
