/// Standard base64 (RFC 4648 §4, with padding), as Go's `base64.StdEncoding` reads and writes keys.
/// Like Go's decoder: padding required, no URL alphabet, unused trailing bits ignored.
package enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, character) in alphabet.enumerated() { table[Int(character)] = UInt8(value) }
        return table
    }()

    package static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        encode(bytes, appendingTo: &output)
        return String(decoding: output, as: UTF8.self)
    }

    /// Appends the encoding of `bytes` to `output` (a JSON writer's buffer: no string in between).
    package static func encode(_ bytes: [UInt8], appendingTo output: inout [UInt8]) {
        let count = (bytes.count + 2) / 3 * 4
        // Written through raw pointers into space made once: appending byte by byte checks the
        // array's uniqueness and capacity for every output byte.
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: count))
        output.withUnsafeMutableBufferPointer { out in
            alphabet.withUnsafeBufferPointer { alphabet in
                bytes.withUnsafeBufferPointer { input in
                    var read = 0
                    var write = start
                    while read + 3 <= input.count {
                        let chunk = UInt32(input[read]) << 16 | UInt32(input[read + 1]) << 8 | UInt32(input[read + 2])
                        out[write] = alphabet[Int(chunk >> 18 & 0x3F)]
                        out[write + 1] = alphabet[Int(chunk >> 12 & 0x3F)]
                        out[write + 2] = alphabet[Int(chunk >> 6 & 0x3F)]
                        out[write + 3] = alphabet[Int(chunk & 0x3F)]
                        read += 3
                        write += 4
                    }
                    let remaining = input.count - read
                    if remaining > 0 {
                        var chunk = UInt32(input[read]) << 16
                        if remaining == 2 { chunk |= UInt32(input[read + 1]) << 8 }
                        out[write] = alphabet[Int(chunk >> 18 & 0x3F)]
                        out[write + 1] = alphabet[Int(chunk >> 12 & 0x3F)]
                        out[write + 2] = remaining == 2 ? alphabet[Int(chunk >> 6 & 0x3F)] : UInt8(ascii: "=")
                        out[write + 3] = UInt8(ascii: "=")
                    }
                }
            }
        }
    }

    package static func decode(_ text: Substring) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(input.count / 4 * 3)
        var index = 0
        while index < input.count {
            let isLast = index + 4 == input.count
            var values: [UInt8] = []
            var padding = 0
            for offset in 0..<4 {
                let character = input[index + offset]
                if character == UInt8(ascii: "=") {
                    // Padding only at the very end, at most two, and nothing after it.
                    guard isLast, offset >= 2 else { return nil }
                    padding += 1
                    continue
                }
                guard padding == 0 else { return nil }
                let value = reverse[Int(character)]
                guard value != 0xFF else { return nil }
                values.append(value)
            }
            let chunk = values.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << UInt32(18 - 6 * $1.offset) }
            output.append(UInt8(chunk >> 16 & 0xFF))
            if padding < 2 { output.append(UInt8(chunk >> 8 & 0xFF)) }
            if padding < 1 { output.append(UInt8(chunk & 0xFF)) }
            index += 4
        }
        return output
    }
}
