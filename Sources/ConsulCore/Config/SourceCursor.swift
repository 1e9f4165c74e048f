/// A read position in a byte buffer that keeps line and column up to date.
///
/// Both readers work on UTF-8 bytes (every character that means something in HCL or JSON is
/// ASCII) and only decode text when they build strings. Columns advance once per UTF-8 lead byte,
/// so they count characters.
struct SourceCursor {
    let bytes: [UInt8]
    private(set) var offset = 0
    private(set) var position = SourcePosition(line: 1, column: 1)

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    var isAtEnd: Bool { offset >= bytes.count }

    /// The byte `ahead` places after the current one, or `nil` past the end.
    func peek(_ ahead: Int = 0) -> UInt8? {
        let index = offset + ahead
        return index < bytes.count ? bytes[index] : nil
    }

    mutating func advance() {
        guard offset < bytes.count else { return }
        let byte = bytes[offset]
        offset += 1
        if byte == UInt8(ascii: "\n") {
            position.line += 1
            position.column = 1
        } else if byte & 0xC0 != 0x80 {
            position.column += 1
        }
    }

    mutating func advance(by count: Int) {
        for _ in 0..<count { advance() }
    }

    /// Bytes of the current line from here, up to (not including) the newline, at most `limit`.
    func restOfToken(limit: Int = 32) -> ArraySlice<UInt8> {
        var end = offset
        while end < bytes.count, end - offset < limit {
            let byte = bytes[end]
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
                break
            }
            end += 1
        }
        return bytes[offset..<end]
    }

    /// The character at the cursor for "unexpected character" messages, e.g. `'@'` or `U+0007`.
    func describeCurrentCharacter() -> String {
        guard let byte = peek() else { return "end of file" }
        if byte >= 0x20 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        if byte < 0x80 {
            let hex = String(byte, radix: 16, uppercase: true)
            return "U+\(String(repeating: "0", count: 4 - hex.count))\(hex)"
        }
        if let (scalar, _) = decodeScalar(at: offset) { return "'\(Character(scalar))'" }
        return "byte 0x\(String(byte, radix: 16, uppercase: true))"
    }

    /// Decodes one UTF-8 scalar starting at `index`, returning it and its length, or `nil` when the
    /// bytes there are not valid UTF-8 (overlong forms and surrogates included).
    func decodeScalar(at index: Int) -> (Unicode.Scalar, Int)? {
        guard index < bytes.count else { return nil }
        let lead = bytes[index]
        let length: Int
        let initial: UInt32
        let minimum: UInt32
        switch lead {
        case 0x00...0x7F: return (Unicode.Scalar(lead), 1)
        case 0xC2...0xDF: length = 2; initial = UInt32(lead & 0x1F); minimum = 0x80
        case 0xE0...0xEF: length = 3; initial = UInt32(lead & 0x0F); minimum = 0x800
        case 0xF0...0xF4: length = 4; initial = UInt32(lead & 0x07); minimum = 0x10000
        default: return nil
        }
        guard index + length <= bytes.count else { return nil }
        var value = initial
        for next in 1..<length {
            let byte = bytes[index + next]
            guard byte & 0xC0 == 0x80 else { return nil }
            value = (value << 6) | UInt32(byte & 0x3F)
        }
        guard value >= minimum, let scalar = Unicode.Scalar(value) else { return nil }
        return (scalar, length)
    }
}
