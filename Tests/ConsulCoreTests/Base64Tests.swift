import ConsulCore
import Foundation
import Testing

/// Our base64 against Foundation's, for every length around the padding cases and random bytes,
/// and appended after existing output.
@Suite struct Base64Tests {
    @Test func matchesFoundationAndRoundTrips() {
        var random = SeededRandom(seed: 64)
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let expected = Data(bytes).base64EncodedString()
            #expect(Base64.encode(bytes) == expected)
            var output = Array("prefix:".utf8)
            Base64.encode(bytes, appendingTo: &output)
            #expect(String(decoding: output, as: UTF8.self) == "prefix:" + expected)
            #expect(Base64.decode(Substring(expected)) == bytes)
        }
    }
}
