import NIOCore
import Synchronization

/// What agent RPC did, refused or lost, on one side (the server's inbound handler or a client pool).
struct RPCStats: Sendable, Hashable {
    /// Frames that did not decode, or of a kind this side never receives (the connection was closed).
    var malformedFrames = 0
    /// Length prefixes over the limit (the connection was closed).
    var oversizedFrames = 0
    /// Inbound: requests answered (whatever the status).
    var requestsServed = 0
    /// Inbound: requests answered 429 because too many were in flight.
    var requestsRejectedBusy = 0
    /// Outbound: calls refused before sending because the pool's in-flight limit was reached.
    var callsRejectedInFlight = 0
    var connectsSucceeded = 0
    var connectsFailed = 0
    /// Outbound: calls whose answer did not come in time.
    var callsTimedOut = 0
    /// Outbound: calls sent on a connection that closed before their answer came.
    var callsLost = 0
    /// Outbound: answers for no waiting call (it timed out meanwhile).
    var unmatchedResponses = 0
}

final class RPCCounters: Sendable {
    private let values = Mutex(RPCStats())

    func add(_ counter: WritableKeyPath<RPCStats, Int> & Sendable, _ amount: Int = 1) {
        values.withLock { $0[keyPath: counter] += amount }
    }

    var snapshot: RPCStats { values.withLock { $0 } }
}

/// Splits an agent-RPC byte stream into frames (the `0x00` byte was already read). Any framing
/// problem is counted and thrown, and the pipeline's handler closes the connection: after a bad
/// frame nothing that follows can be trusted.
struct RPCFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = RPCFrame

    /// `accepts`: the kind this side receives (`RPCCodec.kindRequest` on a server); the other kind
    /// is malformed here.
    let accepts: UInt8
    let limits: RPCCodec.Limits
    let counters: RPCCounters

    init(accepts: UInt8, limits: RPCCodec.Limits = .default, counters: RPCCounters) {
        self.accepts = accepts
        self.limits = limits
        self.counters = counters
    }

    private var maxFrameBytes: Int {
        accepts == RPCCodec.kindRequest ? limits.maxRequestFrameBytes : limits.maxResponseFrameBytes
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let frame: RPCFrame?
        do {
            frame = try RPCCodec.nextFrame(from: &buffer, maxFrameBytes: maxFrameBytes, limits: limits)
        } catch {
            if case .oversized = error { counters.add(\.oversizedFrames) } else { counters.add(\.malformedFrames) }
            throw error
        }
        guard let frame else { return .needMoreData }
        let kind: UInt8
        if case .request = frame { kind = RPCCodec.kindRequest } else { kind = RPCCodec.kindResponse }
        guard kind == accepts else {
            counters.add(\.malformedFrames)
            throw RPCFrameError.malformed("a frame of kind \(kind) where only kind \(accepts) is expected")
        }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
