@testable import ConsulAgent
import ConsulCore
import NIOCore
import Testing

/// The agent-RPC frame codec: round trips, partial input, and bad input (garbage, truncation,
/// oversized lengths) that must be refused with an error and never crash.
@Suite struct RPCCodecTests {
    static let request = RPCRequestFrame(
        id: 42, hops: 1, method: "PUT", path: "/v1/kv/a b/ü",
        query: [RPCPair(name: "cas", value: "0"), RPCPair(name: "stale", value: "")],
        headers: [RPCPair(name: "X-Consul-Token", value: "secret")], body: Array("value".utf8))
    static let response = RPCResponseFrame(
        id: 42, status: 200, contentType: "application/json",
        headers: [RPCPair(name: "X-Consul-Index", value: "17"), RPCPair(name: "X-Consul-KnownLeader", value: "true")],
        body: Array("true".utf8))

    static func bytes(_ frame: RPCFrame) throws -> [UInt8] {
        var buffer = try RPCCodec.encode(frame)
        return buffer.readBytes(length: buffer.readableBytes)!
    }

    static func decode(_ bytes: [UInt8], maxFrameBytes: Int = 1 << 20) throws(RPCFrameError) -> RPCFrame? {
        var buffer = ByteBuffer(bytes: bytes)
        return try RPCCodec.nextFrame(from: &buffer, maxFrameBytes: maxFrameBytes)
    }

    /// A frame with this body (length prefix added).
    static func framed(_ body: [UInt8]) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(body.count))
        buffer.writeBytes(body)
        return buffer.readBytes(length: buffer.readableBytes)!
    }

    @Test func requestsAndResponsesRoundTrip() throws {
        #expect(try Self.decode(Self.bytes(.request(Self.request))) == .request(Self.request))
        #expect(try Self.decode(Self.bytes(.response(Self.response))) == .response(Self.response))
        let empty = RPCRequestFrame(id: .max, hops: 0, method: "", path: "", query: [], headers: [], body: [])
        #expect(try Self.decode(Self.bytes(.request(empty))) == .request(empty))
    }

    @Test func partialInputWaitsAndConsumesNothing() throws {
        let bytes = try Self.bytes(.request(Self.request))
        for cut in 0..<bytes.count {
            var buffer = ByteBuffer(bytes: bytes[..<cut])
            #expect(try RPCCodec.nextFrame(from: &buffer, maxFrameBytes: 1 << 20) == nil)
            #expect(buffer.readableBytes == cut)
        }
    }

    @Test func framesFollowingEachOtherDecodeInOrder() throws {
        var buffer = ByteBuffer(bytes: try Self.bytes(.request(Self.request)) + Self.bytes(.response(Self.response)))
        #expect(try RPCCodec.nextFrame(from: &buffer, maxFrameBytes: 1 << 20) == .request(Self.request))
        #expect(try RPCCodec.nextFrame(from: &buffer, maxFrameBytes: 1 << 20) == .response(Self.response))
        #expect(try RPCCodec.nextFrame(from: &buffer, maxFrameBytes: 1 << 20) == nil)
    }

    @Test func anOversizedLengthIsRefusedBeforeAnyBodyArrives() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(2000))
        #expect(throws: RPCFrameError.oversized(length: 2000, limit: 1000)) { try RPCCodec.nextFrame(from: &buffer, maxFrameBytes: 1000) }
        #expect(throws: RPCFrameError.oversized(length: Int(UInt32.max), limit: 1000)) { try Self.decode([0xff, 0xff, 0xff, 0xff], maxFrameBytes: 1000) }
        #expect(throws: RPCFrameError.malformed("empty frame")) { try Self.decode([0, 0, 0, 0]) }
    }

    @Test func everyTruncationOfABodyIsMalformed() throws {
        for frame in [RPCFrame.request(Self.request), .response(Self.response)] {
            let body = Array(try Self.bytes(frame).dropFirst(4))
            for cut in 1..<body.count {
                #expect(throws: RPCFrameError.self) { try Self.decode(Self.framed(Array(body[..<cut]))) }
            }
            #expect(throws: RPCFrameError.malformed("1 bytes after the frame's fields")) { try Self.decode(Self.framed(body + [0])) }
        }
    }

    @Test func badFieldsAreMalformed() throws {
        var body = Array(try Self.bytes(.request(Self.request)).dropFirst(4))
        body[0] = 9
        #expect(throws: RPCFrameError.malformed("unknown kind 9")) { try Self.decode(Self.framed(body)) }

        // A method that is not UTF-8.
        var bad = ByteBuffer()
        bad.writeInteger(RPCCodec.kindRequest)
        bad.writeInteger(UInt64(1))
        bad.writeInteger(UInt8(0))
        bad.writeInteger(UInt32(2))
        bad.writeBytes([0xc3, 0x28])
        #expect(throws: RPCFrameError.malformed("method is not UTF-8")) { try Self.decode(Self.framed(bad.readBytes(length: bad.readableBytes)!)) }

        // A string length over the limit, and more pairs than allowed.
        var long = ByteBuffer()
        long.writeInteger(RPCCodec.kindRequest)
        long.writeInteger(UInt64(1))
        long.writeInteger(UInt8(0))
        long.writeInteger(UInt32(1 << 30))
        #expect(throws: RPCFrameError.self) { try Self.decode(Self.framed(long.readBytes(length: long.readableBytes)!)) }
        var many = ByteBuffer()
        many.writeInteger(RPCCodec.kindResponse)
        many.writeInteger(UInt64(1))
        many.writeInteger(UInt16(200))
        many.writeInteger(UInt32(0))
        many.writeInteger(UInt16(60_000))
        #expect(throws: RPCFrameError.malformed("60000 headers over the limit of 256")) { try Self.decode(Self.framed(many.readBytes(length: many.readableBytes)!)) }

        var status = Self.response
        status.status = 42
        var statusBytes = try Self.bytes(.response(Self.response))
        statusBytes[13] = 0
        statusBytes[14] = 42
        #expect(throws: RPCFrameError.malformed("status 42")) { try Self.decode(statusBytes) }
        #expect(throws: RPCFrameError.self) { try RPCCodec.encode(.response(status)) }
    }

    /// Seeded random bodies and random single-byte corruptions of valid frames: every outcome is a
    /// frame or an `RPCFrameError`, never a trap.
    @Test func garbageNeverCrashes() throws {
        var random = SeededRandom(seed: 0x5EED_0005)
        let valid = [try Self.bytes(.request(Self.request)), try Self.bytes(.response(Self.response))]
        var refused = 0
        for round in 0..<4000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                let count = Int(random.next() % 96)
                bytes = Self.framed((0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            } else {
                bytes = valid[Int(random.next() % 2)]
                let position = 4 + Int(random.next() % UInt64(bytes.count - 4))
                bytes[position] = UInt8(truncatingIfNeeded: random.next())
            }
            do {
                _ = try Self.decode(bytes)
            } catch {
                refused += 1
            }
        }
        #expect(refused > 1000)
    }

    @Test func encodingRefusesWhatAPeerWouldRefuse() {
        var limits = RPCCodec.Limits()
        limits.maxRequestFrameBytes = 1000
        limits.maxPairs = 2
        var big = Self.request
        big.body = [UInt8](repeating: 1, count: 2000)
        #expect(throws: RPCFrameError.tooLarge("a body of 2000 bytes (limit 1000)")) { try RPCCodec.encode(.request(big), limits: limits) }
        big.body = [UInt8](repeating: 1, count: 990)
        #expect(throws: RPCFrameError.self) { try RPCCodec.encode(.request(big), limits: limits) }
        var headers = Self.request
        headers.headers = (0..<3).map { RPCPair(name: "H\($0)", value: "") }
        #expect(throws: RPCFrameError.tooLarge("3 headers (limit 2)")) { try RPCCodec.encode(.request(headers), limits: limits) }
        // A failed encode leaves the buffer as it was.
        var buffer = ByteBuffer(bytes: [7])
        #expect(throws: RPCFrameError.self) { try RPCCodec.encode(.request(headers), limits: limits, into: &buffer) }
        #expect(buffer.readableBytes == 1)
    }

    @Test func apiRequestsTravelWithoutConnectionHeaders() {
        let request = APIRequest(
            method: "GET", path: "/v1/kv/k", query: ["stale": "", "index": "5"],
            headers: [("Host", "x"), ("Connection", "keep-alive"), ("X-Consul-Token", "t"), ("Content-Length", "0"), ("Accept", "*/*")], body: [])
        let frame = RPCRequestFrame(request, hops: 1)
        #expect(frame.query.map(\.name) == ["index", "stale"])
        #expect(frame.headers == [RPCPair(name: "X-Consul-Token", value: "t"), RPCPair(name: "Accept", value: "*/*")])
        let arrived = frame.apiRequest
        #expect(arrived.forwardHops == 1)
        #expect(arrived.token == "t")
        #expect(arrived.query == request.query)
        #expect(arrived.method == "GET" && arrived.path == "/v1/kv/k")

        var response = APIResponse.text("No cluster leader", status: 500)
        response.headers = [("X-Consul-Index", "3")]
        let back = RPCResponseFrame(response, id: 9).apiResponse
        #expect(back.status == 500 && back.body == response.body && back.contentType == response.contentType)
        #expect(back.headers.map(\.name) == ["X-Consul-Index"])
    }
}
