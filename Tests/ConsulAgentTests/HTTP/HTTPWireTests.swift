import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
@testable import ConsulAgent

/// The HTTP/1.x answers this server encodes itself: framing, keep-alive, pipelining in order, and
/// the refusal of a request that cannot be parsed. A real listener on 127.0.0.233.
@Suite(.serialized) struct HTTPWireTests {
    @Test func answersAreFramedAsHTTPOneOne() {
        var response = APIResponse(status: 200, contentType: "application/json", body: Array(#"{"a":1}"#.utf8))
        response.headers = [("X-Consul-Index", "7"), ("Content-Length", "999"), ("Connection", "upgrade"), ("X-Evil", "a\r\nb")]
        let keptAlive = Self.text(HTTPAnswer.encode(response, version: .http1_1, keepAlive: true, omitBody: false, allocator: ByteBufferAllocator()))
        // A forwarded answer's own framing headers and unsafe values never reach the client.
        #expect(keptAlive == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\nVary: Accept-Encoding\r\nX-Consul-Index: 7\r\n\r\n{\"a\":1}")
        let closing = Self.text(HTTPAnswer.encode(APIResponse(status: 429, body: []), version: .http1_0, keepAlive: false, omitBody: false, allocator: ByteBufferAllocator()))
        #expect(closing == "HTTP/1.0 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: 0\r\nVary: Accept-Encoding\r\nConnection: close\r\n\r\n")
        let head = Self.text(HTTPAnswer.encode(response, version: .http1_0, keepAlive: true, omitBody: true, allocator: ByteBufferAllocator()))
        #expect(head.hasSuffix("Content-Length: 7\r\nVary: Accept-Encoding\r\nX-Consul-Index: 7\r\nConnection: keep-alive\r\n\r\n"))
    }

    @Test func pipelinedRequestsAreAnsweredInOrderAndCloseIsHonoured() async throws {
        try await Self.withServer { port in
            let requests = (0..<20).map { n in "GET /v1/agent/self?n=\(n) HTTP/1.1\r\nHost: x\r\n\r\n" }.joined()
                + "GET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n"
                + "GET /v1/agent/self HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                + "GET /v1/agent/self HTTP/1.1\r\nHost: x\r\n\r\n"  // after the close: never answered
            let answer = try Self.exchange(port, requests)
            // Each answer's status line (bodies end without a line break, so split on the version).
            let statuses = answer.components(separatedBy: "HTTP/1.1 ").dropFirst().map { "HTTP/1.1 " + $0.components(separatedBy: "\r\n")[0] }
            #expect(statuses == Array(repeating: "HTTP/1.1 200 OK", count: 20) + ["HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK"])
            #expect(answer.contains("Connection: close\r\n"))
        }
    }

    /// Far more pipelined requests than wait before reading pauses: all answered, none lost, and
    /// reading resumes after the pause (or the exchange would stop short).
    @Test func aLongPipelineIsAnsweredWhole() async throws {
        try await Self.withServer { port in
            let requests = (0..<300).map { n in "GET /v1/agent/self?n=\(n) HTTP/1.1\r\nHost: x\r\n\r\n" }.joined()
                + "GET /v1/agent/self HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let answer = try Self.exchange(port, requests)
            #expect(answer.components(separatedBy: "HTTP/1.1 200 OK\r\n").count - 1 == 301)
        }
    }

    @Test func httpOneZeroAndUnparsableRequests() async throws {
        try await Self.withServer { port in
            let old = try Self.exchange(port, "GET /v1/agent/self HTTP/1.0\r\n\r\n")
            #expect(old.hasPrefix("HTTP/1.0 200 OK\r\n") && old.contains("Connection: close\r\n"))
            let garbage = try Self.exchange(port, "NOT HTTP AT ALL\r\n\r\n")
            #expect(garbage.hasPrefix("HTTP/1.1 400 Bad Request\r\n") && garbage.contains("Connection: close\r\n"))
            let badEscape = try Self.exchange(port, "GET /v1/kv/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(badEscape.hasPrefix("HTTP/1.1 400 Bad Request\r\n") && badEscape.hasSuffix("Invalid URL encoding in /v1/kv/%zz"))
        }
    }

    static func text(_ buffer: ByteBuffer) -> String { String(decoding: buffer.readableBytesView, as: UTF8.self) }

    static func withServer(_ body: (Int) throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let runtime = MonitorLockTests.runtime(logger: AgentLogger(level: .error, json: false, write: { _ in }))
        let server = try await HTTPServer.start(host: "127.0.0.233", port: 0, dispatcher: APIDispatcher(agent: runtime, seed: 1), group: group)
        do {
            try body(try #require(server.port))
        } catch {
            Issue.record("\(error)")
        }
        await server.close()
        try await group.shutdownGracefully()
    }

    /// Sends `text` and reads until the server closes (bounded: 10 s).
    static func exchange(_ port: Int, _ text: String) throws -> String {
        let socket = Darwinless.socket()
        defer { close(socket) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        try Darwinless.connect(socket, host: "127.0.0.233", port: port)
        try Darwinless.send(socket, Array(text.utf8))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
