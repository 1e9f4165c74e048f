/// A strict RFC 8259 JSON reader that keeps member order and source positions.
///
/// Foundation's `JSONSerialization` forgets both, and errors without a line and column are of
/// little help to an operator with a broken `web3.json`. Where RFC 8259 leaves a choice, we do
/// what Go's `encoding/json` does when Consul decodes a config file into `map[string]interface{}`:
/// - a repeated key: the last value wins (the member keeps the place of its first appearance);
/// - invalid UTF-8 inside strings and unpaired `\uD800`-style surrogates become U+FFFD;
/// - numbers that do not fit a float64 (`1e999`) are an error.
/// Integers without fraction or exponent that fit in 64 bits stay integers; others are floats.
package struct JSONConfigParser {
    private var cursor: SourceCursor
    private let file: String
    private let limits: ConfigParseLimits
    private var depth = 0

    private init(bytes: [UInt8], file: String, limits: ConfigParseLimits) {
        cursor = SourceCursor(bytes: bytes)
        self.file = file
        self.limits = limits
    }

    /// Reads a config document: its top level must be an object, as Consul requires.
    package static func parse(
        _ text: String, file: String, limits: ConfigParseLimits = .default
    ) throws(ConfigParseError) -> ConfigValue {
        try parse(bytes: Array(text.utf8), file: file, limits: limits)
    }

    /// Reads a config document from raw bytes (as read from disk); its top level must be an object.
    package static func parse(
        bytes: [UInt8], file: String, limits: ConfigParseLimits = .default
    ) throws(ConfigParseError) -> ConfigValue {
        var parser = try JSONConfigParser(checked: bytes, file: file, limits: limits)
        parser.skipWhitespace()
        guard parser.cursor.peek() == UInt8(ascii: "{") else {
            throw parser.error(.expected("'{' at the start of the configuration", found: parser.describeToken()))
        }
        let value = try parser.parseValue()
        try parser.expectEnd()
        return value
    }

    /// Reads any single JSON value (an HTTP body, a rules document that may not be an object).
    package static func parseValue(
        bytes: [UInt8], file: String, limits: ConfigParseLimits = .default
    ) throws(ConfigParseError) -> ConfigValue {
        var parser = try JSONConfigParser(checked: bytes, file: file, limits: limits)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        try parser.expectEnd()
        return value
    }

    private init(checked bytes: [UInt8], file: String, limits: ConfigParseLimits) throws(ConfigParseError) {
        self.init(bytes: bytes, file: file, limits: limits)
        if bytes.count > limits.maxInputBytes {
            throw error(.tooLarge(size: bytes.count, limit: limits.maxInputBytes))
        }
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { throw error(.byteOrderMark) }
    }

    private func error(_ problem: ConfigParseError.Problem, at position: SourcePosition? = nil) -> ConfigParseError {
        ConfigParseError(file: file, position: position ?? cursor.position, problem: problem)
    }

    private mutating func expectEnd() throws(ConfigParseError) {
        skipWhitespace()
        guard cursor.isAtEnd else {
            throw error(.expected("end of file after the top-level value", found: describeToken()))
        }
    }

    private mutating func skipWhitespace() {
        while let byte = cursor.peek(),
            byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
        {
            cursor.advance()
        }
    }

    /// The token at the cursor as it would be shown after "found": a whole string literal, or the
    /// run of characters up to the next delimiter.
    private func describeToken() -> String {
        guard let byte = cursor.peek() else { return "end of file" }
        switch byte {
        case UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: ","), UInt8(ascii: ":"):
            return "'\(Character(Unicode.Scalar(byte)))'"
        case UInt8(ascii: "\""):
            var end = cursor.offset + 1
            while end < cursor.bytes.count, cursor.bytes[end] != UInt8(ascii: "\""), cursor.bytes[end] != UInt8(ascii: "\n") {
                end += cursor.bytes[end] == UInt8(ascii: "\\") ? 2 : 1
            }
            end = min(end + 1, cursor.bytes.count)
            return describeFound(cursor.bytes[cursor.offset..<end])
        default:
            if byte < 0x20 || byte >= 0x80 { return cursor.describeCurrentCharacter() }
            var end = cursor.offset
            while end < cursor.bytes.count, end - cursor.offset < 32 {
                let next = cursor.bytes[end]
                if next <= 0x20 || next >= 0x80 || "{}[],:\"".utf8.contains(next) { break }
                end += 1
            }
            return describeFound(cursor.bytes[cursor.offset..<max(end, cursor.offset + 1)])
        }
    }

    private mutating func parseValue() throws(ConfigParseError) -> ConfigValue {
        guard let byte = cursor.peek() else {
            throw error(.expected("a value", found: "end of file"))
        }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        case UInt8(ascii: "t"): return try parseLiteral("true", .bool(true))
        case UInt8(ascii: "f"): return try parseLiteral("false", .bool(false))
        case UInt8(ascii: "n"): return try parseLiteral("null", .null)
        default: throw error(.expected("a value", found: describeToken()))
        }
    }

    private mutating func parseLiteral(_ word: String, _ value: ConfigValue) throws(ConfigParseError) -> ConfigValue {
        let start = cursor.position
        for (offset, expected) in word.utf8.enumerated() where cursor.peek(offset) != expected {
            throw error(.expected("a value", found: describeToken()), at: start)
        }
        // "trueish" is one bad word, not `true` followed by garbage.
        if let next = cursor.peek(word.utf8.count), next.isASCIILetterOrDigit {
            throw error(.expected("a value", found: describeToken()), at: start)
        }
        cursor.advance(by: word.utf8.count)
        return value
    }

    private mutating func enterNesting() throws(ConfigParseError) {
        depth += 1
        if depth > limits.maxDepth { throw error(.tooDeep(limit: limits.maxDepth)) }
    }

    private mutating func parseObject() throws(ConfigParseError) -> ConfigValue {
        let opening = cursor.position
        try enterNesting()
        defer { depth -= 1 }
        cursor.advance()  // {
        var object = ConfigObject()
        skipWhitespace()
        if cursor.peek() == UInt8(ascii: "}") {
            cursor.advance()
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard cursor.peek() == UInt8(ascii: "\"") else {
                if cursor.isAtEnd { throw error(.unclosed(opening: "{", at: opening, found: "end of file")) }
                throw error(.expected("a string as object key", found: describeToken()))
            }
            let keyPosition = cursor.position
            let key = try parseString()
            skipWhitespace()
            guard cursor.peek() == UInt8(ascii: ":") else {
                throw error(.expected("':' after object key", found: describeToken()))
            }
            cursor.advance()
            skipWhitespace()
            let value = try parseValue()
            object.set(.init(key: key, value: value, position: keyPosition))
            skipWhitespace()
            switch cursor.peek() {
            case UInt8(ascii: ","):
                cursor.advance()
                skipWhitespace()
                if cursor.peek() == UInt8(ascii: "}") { throw error(.trailingCommaInJSON(closing: "}")) }
            case UInt8(ascii: "}"):
                cursor.advance()
                return .object(object)
            case nil:
                throw error(.unclosed(opening: "{", at: opening, found: "end of file"))
            default:
                throw error(.expected("',' or '}' after object member", found: describeToken()))
            }
        }
    }

    private mutating func parseArray() throws(ConfigParseError) -> ConfigValue {
        let opening = cursor.position
        try enterNesting()
        defer { depth -= 1 }
        cursor.advance()  // [
        var elements: [ConfigValue] = []
        skipWhitespace()
        if cursor.peek() == UInt8(ascii: "]") {
            cursor.advance()
            return .array(elements)
        }
        while true {
            skipWhitespace()
            if cursor.isAtEnd { throw error(.unclosed(opening: "[", at: opening, found: "end of file")) }
            elements.append(try parseValue())
            skipWhitespace()
            switch cursor.peek() {
            case UInt8(ascii: ","):
                cursor.advance()
                skipWhitespace()
                if cursor.peek() == UInt8(ascii: "]") { throw error(.trailingCommaInJSON(closing: "]")) }
            case UInt8(ascii: "]"):
                cursor.advance()
                return .array(elements)
            case nil:
                throw error(.unclosed(opening: "[", at: opening, found: "end of file"))
            default:
                throw error(.expected("',' or ']' after list element", found: describeToken()))
            }
        }
    }

    /// Reads a string literal at the cursor (which is on the opening quote).
    private mutating func parseString() throws(ConfigParseError) -> String {
        let start = cursor.position
        cursor.advance()  // "
        var bytes: [UInt8] = []
        while true {
            guard let byte = cursor.peek() else { throw error(.unterminatedString, at: start) }
            switch byte {
            case UInt8(ascii: "\""):
                cursor.advance()
                return String(decoding: bytes, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try parseEscape(into: &bytes)
            case 0x00..<0x20:
                if byte == UInt8(ascii: "\n") { throw error(.unterminatedString, at: start) }
                throw error(.controlCharacterInString(byte))
            default:
                bytes.append(byte)
                cursor.advance()
            }
        }
    }

    private mutating func parseEscape(into bytes: inout [UInt8]) throws(ConfigParseError) {
        let start = cursor.position
        cursor.advance()  // backslash
        guard let letter = cursor.peek() else { throw error(.unterminatedString) }
        let simple: UInt8?
        switch letter {
        case UInt8(ascii: "\""): simple = UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): simple = UInt8(ascii: "\\")
        case UInt8(ascii: "/"): simple = UInt8(ascii: "/")
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"): simple = nil
        default:
            throw error(.invalidEscape("\\" + String(decoding: cursor.restOfToken(limit: 1), as: UTF8.self)), at: start)
        }
        if let simple {
            bytes.append(simple)
            cursor.advance()
            return
        }
        cursor.advance()  // u
        guard let unit = readHex4() else {
            let digits = cursor.restOfToken(limit: 4).prefix { $0.hexDigitValue != nil }
            throw error(.invalidEscape("\\u" + String(decoding: digits, as: UTF8.self)), at: start)
        }
        var scalar = Unicode.Scalar(unit)
        if (0xD800..<0xDC00).contains(unit), cursor.peek() == UInt8(ascii: "\\"), cursor.peek(1) == UInt8(ascii: "u") {
            // A high surrogate: combine it with the low surrogate that should follow.
            var lookahead = cursor
            lookahead.advance(by: 2)
            var probe = self
            probe.cursor = lookahead
            if let low = probe.readHex4(), (0xDC00..<0xE000).contains(low) {
                cursor = probe.cursor
                scalar = Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
            }
        }
        bytes.append(contentsOf: String(Character(scalar ?? "\u{FFFD}")).utf8)
    }

    /// Four hex digits at the cursor, consumed only when all four are there.
    private mutating func readHex4() -> UInt32? {
        var value: UInt32 = 0
        for offset in 0..<4 {
            guard let digit = cursor.peek(offset)?.hexDigitValue else { return nil }
            value = value << 4 | UInt32(digit)
        }
        cursor.advance(by: 4)
        return value
    }

    private mutating func parseNumber() throws(ConfigParseError) -> ConfigNumber {
        let start = cursor.position
        let first = cursor.offset
        var isInteger = true
        if cursor.peek() == UInt8(ascii: "-") { cursor.advance() }
        func fail(_ reason: String, _ cursor: SourceCursor) -> ConfigParseError {
            var end = cursor.offset
            while end < cursor.bytes.count, end - first < 32, cursor.bytes[end].isNumberCharacter { end += 1 }
            let text = String(decoding: cursor.bytes[first..<max(end, first + 1)], as: UTF8.self)
            return ConfigParseError(file: file, position: start, problem: .invalidNumber(text, reason: reason))
        }
        guard let lead = cursor.peek(), lead.isASCIIDigit else { throw fail("a digit must follow '-'", cursor) }
        cursor.advance()
        if lead == UInt8(ascii: "0"), let next = cursor.peek(), next.isASCIIDigit {
            throw fail("leading zeros are not allowed in JSON", cursor)
        }
        while let digit = cursor.peek(), digit.isASCIIDigit { cursor.advance() }
        if cursor.peek() == UInt8(ascii: ".") {
            isInteger = false
            cursor.advance()
            guard let digit = cursor.peek(), digit.isASCIIDigit else { throw fail("a digit must follow '.'", cursor) }
            while let digit = cursor.peek(), digit.isASCIIDigit { cursor.advance() }
        }
        if cursor.peek() == UInt8(ascii: "e") || cursor.peek() == UInt8(ascii: "E") {
            isInteger = false
            cursor.advance()
            if cursor.peek() == UInt8(ascii: "+") || cursor.peek() == UInt8(ascii: "-") { cursor.advance() }
            guard let digit = cursor.peek(), digit.isASCIIDigit else { throw fail("the exponent needs digits", cursor) }
            while let digit = cursor.peek(), digit.isASCIIDigit { cursor.advance() }
        }
        if let next = cursor.peek(), next.isASCIILetterOrDigit || next == UInt8(ascii: ".") {
            throw fail("unexpected character after the number", cursor)
        }
        let text = String(decoding: cursor.bytes[first..<cursor.offset], as: UTF8.self)
        if isInteger, let integer = Int64(text) {
            return ConfigNumber(text: text, value: .integer(integer))
        }
        guard let float = Double(text), float.isFinite else {
            throw ConfigParseError(file: file, position: start, problem: .numberOutOfRange(text))
        }
        return ConfigNumber(text: text, value: .float(float))
    }
}

extension UInt8 {
    var isASCIIDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }

    var isASCIILetter: Bool {
        (self >= UInt8(ascii: "a") && self <= UInt8(ascii: "z")) || (self >= UInt8(ascii: "A") && self <= UInt8(ascii: "Z"))
    }

    var isASCIILetterOrDigit: Bool { isASCIILetter || isASCIIDigit }

    /// Characters that can appear in a (possibly malformed) number, for quoting it whole in errors.
    var isNumberCharacter: Bool {
        isASCIILetterOrDigit || self == UInt8(ascii: ".") || self == UInt8(ascii: "-") || self == UInt8(ascii: "+")
    }

    var hexDigitValue: UInt8? {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return self - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return self - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return self - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
