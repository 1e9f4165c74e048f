import Testing
@testable import ConsulAgent

/// NIO's outbound header validator is off (it cost a tenth of a small answer's CPU); our own check
/// keeps a forwarded answer's headers from splitting the response, and JSON strings stay escaped
/// after the copy-whole fast path.
@Suite struct HTTPResponseSafetyTests {
    @Test func headersThatCouldSplitAResponseAreRefused() {
        #expect(HTTPServer.isSafeHeader(("X-Consul-Index", "42")))
        #expect(HTTPServer.isSafeHeader(("Content-Type", "text/plain; charset=utf-8")))
        #expect(!HTTPServer.isSafeHeader(("X-Consul-Index", "1\r\nSet-Cookie: a=b")))
        #expect(!HTTPServer.isSafeHeader(("X-Evil", "a\nb")))
        #expect(!HTTPServer.isSafeHeader(("X-Evil", "a\u{0}b")))
        #expect(!HTTPServer.isSafeHeader(("", "value")))
        #expect(!HTTPServer.isSafeHeader(("Bad Name", "value")))
        #expect(!HTTPServer.isSafeHeader(("Bad:Name", "value")))
    }

    @Test func jsonStringsAreEscapedOrCopiedWhole() {
        var writer = JSONWriter()
        writer.array { w in
            w.string("plain-key/with.dots")
            w.string("quote\" back\\ nl\n tab\t <&> \u{1}")
            w.string("ünïcødé")
            w.base64([0, 1, 2, 250, 251, 252, 253])
        }
        let json = String(decoding: writer.bytes, as: UTF8.self)
        #expect(json == #"["plain-key/with.dots","quote\" back\\ nl\n tab\t \u003c\u0026\u003e \u0001","ünïcødé","AAEC+vv8/Q=="]"#)
    }
}
