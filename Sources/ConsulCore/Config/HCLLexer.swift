/// One token of HCL (version 1 syntax, as hashicorp/hcl v1 scans it).
struct HCLToken {
    enum Kind: Equatable {
        /// A bare word: `service`, `key_prefix`, `node-meta.x` (HCL1 identifiers may contain `-` and `.`).
        case identifier(String)
        case string(String)
        case heredoc(String)
        case number(ConfigNumber)
        case bool(Bool)
        case leftBrace, rightBrace, leftBracket, rightBracket, comma
        /// `=`, or `:` which we accept as its synonym.
        case assign
        case endOfFile
    }

    let kind: Kind
    let start: SourcePosition
    /// The token's source bytes, for "found ..." in messages.
    let text: ArraySlice<UInt8>

    var found: String { kind == .endOfFile ? "end of file" : describeFound(text) }
}

/// Turns HCL source bytes into tokens. Newlines carry no meaning in HCL1, so they are skipped with
/// the other whitespace and the comments (`#`, `//`, `/* */`).
struct HCLLexer {
    private var cursor: SourceCursor
    private let file: String

    init(bytes: [UInt8], file: String) {
        cursor = SourceCursor(bytes: bytes)
        self.file = file
    }

    var position: SourcePosition { cursor.position }

    private func error(_ problem: ConfigParseError.Problem, at position: SourcePosition? = nil) -> ConfigParseError {
        ConfigParseError(file: file, position: position ?? cursor.position, problem: problem)
    }

    mutating func next() throws(ConfigParseError) -> HCLToken {
        try skipWhitespaceAndComments()
        let start = cursor.position
        let first = cursor.offset
        func token(_ kind: HCLToken.Kind, _ cursor: SourceCursor) -> HCLToken {
            HCLToken(kind: kind, start: start, text: cursor.bytes[first..<cursor.offset])
        }
        guard let byte = cursor.peek() else { return token(.endOfFile, cursor) }
        switch byte {
        case UInt8(ascii: "{"): cursor.advance(); return token(.leftBrace, cursor)
        case UInt8(ascii: "}"): cursor.advance(); return token(.rightBrace, cursor)
        case UInt8(ascii: "["): cursor.advance(); return token(.leftBracket, cursor)
        case UInt8(ascii: "]"): cursor.advance(); return token(.rightBracket, cursor)
        case UInt8(ascii: ","): cursor.advance(); return token(.comma, cursor)
        case UInt8(ascii: "="), UInt8(ascii: ":"): cursor.advance(); return token(.assign, cursor)
        case UInt8(ascii: "\""):
            let value = try scanString()
            return token(.string(value), cursor)
        case UInt8(ascii: "<") where cursor.peek(1) == UInt8(ascii: "<"):
            let value = try scanHeredoc()
            return token(.heredoc(value), cursor)
        case UInt8(ascii: "-") where cursor.peek(1)?.isASCIIDigit == true:
            return token(.number(try scanNumber()), cursor)
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            return token(.number(try scanNumber()), cursor)
        default:
            if isIdentifierStart(at: cursor.offset) {
                let word = scanIdentifier()
                switch word {
                case "true": return token(.bool(true), cursor)
                case "false": return token(.bool(false), cursor)
                default: return token(.identifier(word), cursor)
                }
            }
            if byte >= 0x80, cursor.decodeScalar(at: cursor.offset) == nil { throw error(.invalidUTF8) }
            if cursor.offset == 0, cursor.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { throw error(.byteOrderMark) }
            throw error(.unexpectedCharacter(cursor.describeCurrentCharacter()))
        }
    }

    private mutating func skipWhitespaceAndComments() throws(ConfigParseError) {
        while let byte = cursor.peek() {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                cursor.advance()
            case UInt8(ascii: "#"):
                skipLineComment()
            case UInt8(ascii: "/") where cursor.peek(1) == UInt8(ascii: "/"):
                skipLineComment()
            case UInt8(ascii: "/") where cursor.peek(1) == UInt8(ascii: "*"):
                let start = cursor.position
                cursor.advance(by: 2)
                while true {
                    guard let next = cursor.peek() else { throw error(.unterminatedComment, at: start) }
                    if next == UInt8(ascii: "*"), cursor.peek(1) == UInt8(ascii: "/") {
                        cursor.advance(by: 2)
                        break
                    }
                    cursor.advance()
                }
            default:
                return
            }
        }
    }

    private mutating func skipLineComment() {
        while let byte = cursor.peek(), byte != UInt8(ascii: "\n") { cursor.advance() }
    }

    /// HCL1 identifiers start with a letter or `_` (Unicode letters included) and continue with
    /// letters, digits, `_`, `-` and `.`.
    private func isIdentifierStart(at index: Int) -> Bool {
        guard let (scalar, _) = cursor.decodeScalar(at: index) else { return false }
        return scalar == "_" || scalar.properties.isAlphabetic
    }

    private mutating func scanIdentifier() -> String {
        let first = cursor.offset
        while let byte = cursor.peek() {
            if byte.isASCIILetterOrDigit || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") {
                cursor.advance()
            } else if byte >= 0x80, let (scalar, length) = cursor.decodeScalar(at: cursor.offset),
                scalar.properties.isAlphabetic || scalar.properties.numericType != nil
            {
                cursor.advance(by: length)
            } else {
                break
            }
        }
        return String(decoding: cursor.bytes[first..<cursor.offset], as: UTF8.self)
    }

    /// A double-quoted string. Escapes are Go's (HCL1 unquotes with Go rules): `\n \t \r \a \b \f \v
    /// \\ \" \'`, octal `\NNN`, `\xHH`, `\uHHHH`, `\UHHHHHHHH`. Text inside `${ ... }` is kept
    /// literally, braces and quotes included, as HCL1 does: Consul never evaluates interpolations.
    /// A newline ends the line before the string is closed (except inside `${ }`) and is an error.
    private mutating func scanString() throws(ConfigParseError) -> String {
        let start = cursor.position
        cursor.advance()  // "
        var bytes: [UInt8] = []
        var braces = 0
        while true {
            guard let byte = cursor.peek() else { throw error(.unterminatedString, at: start) }
            if braces > 0 {
                // Inside an interpolation everything is literal; only the braces are counted.
                if byte == UInt8(ascii: "{") { braces += 1 }
                if byte == UInt8(ascii: "}") { braces -= 1 }
                bytes.append(byte)
                cursor.advance()
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                cursor.advance()
                return try makeString(bytes, start: start)
            case UInt8(ascii: "\n"):
                throw error(.newlineInString, at: start)
            case UInt8(ascii: "\\"):
                try scanEscape(into: &bytes)
            case UInt8(ascii: "$") where cursor.peek(1) == UInt8(ascii: "{"):
                braces = 1
                bytes.append(contentsOf: [UInt8(ascii: "$"), UInt8(ascii: "{")])
                cursor.advance(by: 2)
            default:
                bytes.append(byte)
                cursor.advance()
            }
        }
    }

    private func makeString(_ bytes: [UInt8], start: SourcePosition) throws(ConfigParseError) -> String {
        // Source bytes were checked as they were copied only for ASCII; check the whole string once.
        // (Bytes from \x and octal escapes may legitimately form UTF-8 sequences together.)
        guard let string = String(validating: bytes, as: UTF8.self) else { throw error(.invalidUTF8, at: start) }
        return string
    }

    private mutating func scanEscape(into bytes: inout [UInt8]) throws(ConfigParseError) {
        let start = cursor.position
        cursor.advance()  // backslash
        guard let letter = cursor.peek() else { throw error(.unterminatedString) }
        func invalid(_ length: Int, _ cursor: SourceCursor) -> ConfigParseError {
            var end = cursor.offset
            while end < cursor.bytes.count, end - cursor.offset < length, cursor.bytes[end] != UInt8(ascii: "\n"),
                cursor.bytes[end] != UInt8(ascii: "\"")
            {
                end += 1
            }
            let text = "\\" + String(decoding: cursor.bytes[cursor.offset..<end], as: UTF8.self)
            return ConfigParseError(file: file, position: start, problem: .invalidEscape(text))
        }
        let simple: UInt8?
        switch letter {
        case UInt8(ascii: "a"): simple = 0x07
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "v"): simple = 0x0B
        case UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "'"): simple = letter
        default: simple = nil
        }
        if let simple {
            bytes.append(simple)
            cursor.advance()
            return
        }
        switch letter {
        case UInt8(ascii: "0")...UInt8(ascii: "7"):
            var value = 0
            for offset in 0..<3 {
                guard let digit = cursor.peek(offset), digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "7") else {
                    throw invalid(3, cursor)
                }
                value = value * 8 + Int(digit - UInt8(ascii: "0"))
            }
            guard value <= 0xFF else { throw invalid(3, cursor) }
            bytes.append(UInt8(value))
            cursor.advance(by: 3)
        case UInt8(ascii: "x"), UInt8(ascii: "u"), UInt8(ascii: "U"):
            let digits = letter == UInt8(ascii: "x") ? 2 : (letter == UInt8(ascii: "u") ? 4 : 8)
            var value: UInt32 = 0
            for offset in 1...digits {
                guard let digit = cursor.peek(offset)?.hexDigitValue else { throw invalid(digits + 1, cursor) }
                value = value << 4 | UInt32(digit)
            }
            if letter == UInt8(ascii: "x") {
                bytes.append(UInt8(value))
            } else {
                guard let scalar = Unicode.Scalar(value) else { throw invalid(digits + 1, cursor) }
                bytes.append(contentsOf: String(Character(scalar)).utf8)
            }
            cursor.advance(by: digits + 1)
        default:
            throw invalid(1, cursor)
        }
    }

    /// `<<EOF` ... `EOF`, or `<<-EOF` whose closing marker may be indented.
    ///
    /// The heredoc ends at the first line that, trimmed of spaces and tabs, is the marker. Its value
    /// is every line in between, each ending in "\n". For `<<-`, hashicorp/hcl v1 removes the closing
    /// marker's indentation from every line, but only when every line starts with it; otherwise the
    /// text is kept as written. We do the same.
    private mutating func scanHeredoc() throws(ConfigParseError) -> String {
        let start = cursor.position
        cursor.advance(by: 2)  // <<
        var indented = false
        if cursor.peek() == UInt8(ascii: "-") {
            indented = true
            cursor.advance()
        }
        guard isIdentifierStart(at: cursor.offset) else {
            throw error(.expected("a marker name after '<<' (for example <<EOF)", found: describeFound(cursor.restOfToken())))
        }
        let anchor = scanIdentifier()
        if cursor.peek() == UInt8(ascii: "\r") { cursor.advance() }
        guard cursor.peek() == UInt8(ascii: "\n") else { throw error(.heredocMarkerNeedsNewline) }
        cursor.advance()

        var lines: [ArraySlice<UInt8>] = []
        let anchorBytes = Array(anchor.utf8)
        while true {
            guard !cursor.isAtEnd else { throw error(.unterminatedHeredoc(anchor: anchor), at: start) }
            let lineStart = cursor.offset
            while let byte = cursor.peek(), byte != UInt8(ascii: "\n") { cursor.advance() }
            let line = cursor.bytes[lineStart..<cursor.offset]
            let trimmed = line.trimmingSpacesAndTabs()
            if trimmed.elementsEqual(anchorBytes) {
                let content: [UInt8]
                let prefix = line.prefix { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                if indented, lines.allSatisfy({ $0.starts(with: prefix) }) {
                    content = lines.flatMap { $0.dropFirst(prefix.count) + [UInt8(ascii: "\n")] }
                } else {
                    content = lines.flatMap { $0 + [UInt8(ascii: "\n")] }
                }
                return try makeString(content, start: start)
            }
            lines.append(line)
            guard !cursor.isAtEnd else { throw error(.unterminatedHeredoc(anchor: anchor), at: start) }
            cursor.advance()  // \n
        }
    }

    /// Numbers as HCL1 scans and Go's strconv reads them: decimal integers, `0x` hex, a leading `0`
    /// meaning octal (`010` is 8, as `strconv.ParseInt(_, 0, 0)` reads it), and floats with a
    /// fraction and/or exponent. A leading `-` belongs to the number.
    private mutating func scanNumber() throws(ConfigParseError) -> ConfigNumber {
        let start = cursor.position
        let first = cursor.offset
        var negative = false
        if cursor.peek() == UInt8(ascii: "-") {
            negative = true
            cursor.advance()
        }
        func text(_ cursor: SourceCursor) -> String {
            String(decoding: cursor.bytes[first..<cursor.offset], as: UTF8.self)
        }
        func invalid(_ reason: String, _ cursor: SourceCursor) -> ConfigParseError {
            var end = cursor.offset
            while end < cursor.bytes.count, end - first < 32, cursor.bytes[end].isNumberCharacter { end += 1 }
            let shown = String(decoding: cursor.bytes[first..<end], as: UTF8.self)
            return ConfigParseError(file: file, position: start, problem: .invalidNumber(shown, reason: reason))
        }
        let digitsStart = cursor.offset
        if cursor.peek() == UInt8(ascii: "0"), cursor.peek(1) == UInt8(ascii: "x") || cursor.peek(1) == UInt8(ascii: "X") {
            cursor.advance(by: 2)
            var magnitude: UInt64 = 0
            var overflow = false
            var count = 0
            while let digit = cursor.peek()?.hexDigitValue {
                let (shifted, o1) = magnitude.multipliedReportingOverflow(by: 16)
                let (sum, o2) = shifted.addingReportingOverflow(UInt64(digit))
                overflow = overflow || o1 || o2
                magnitude = sum
                count += 1
                cursor.advance()
            }
            guard count > 0 else { throw invalid("hexadecimal numbers need digits after 0x", cursor) }
            try checkDelimiter(invalid)
            guard !overflow, let value = Self.signed(magnitude, negative: negative) else {
                throw error(.numberOutOfRange(text(cursor)), at: start)
            }
            return ConfigNumber(text: text(cursor), value: .integer(value))
        }
        while let digit = cursor.peek(), digit.isASCIIDigit { cursor.advance() }
        let integerDigits = cursor.bytes[digitsStart..<cursor.offset]
        var isFloat = false
        if cursor.peek() == UInt8(ascii: ".") {
            isFloat = true
            cursor.advance()
            while let digit = cursor.peek(), digit.isASCIIDigit { cursor.advance() }
        }
        if cursor.peek() == UInt8(ascii: "e") || cursor.peek() == UInt8(ascii: "E") {
            isFloat = true
            cursor.advance()
            if cursor.peek() == UInt8(ascii: "+") || cursor.peek() == UInt8(ascii: "-") { cursor.advance() }
            guard let digit = cursor.peek(), digit.isASCIIDigit else { throw invalid("the exponent needs digits", cursor) }
            while let digit = cursor.peek(), digit.isASCIIDigit { cursor.advance() }
        }
        try checkDelimiter(invalid)
        if isFloat {
            guard let value = Double(text(cursor)) else { throw invalid("not a valid float", cursor) }
            guard value.isFinite else { throw error(.numberOutOfRange(text(cursor)), at: start) }
            return ConfigNumber(text: text(cursor), value: .float(value))
        }
        let octal = integerDigits.count > 1 && integerDigits.first == UInt8(ascii: "0")
        if octal, integerDigits.contains(where: { $0 == UInt8(ascii: "8") || $0 == UInt8(ascii: "9") }) {
            throw invalid("a leading 0 makes it octal, and octal has no digits 8 or 9", cursor)
        }
        var magnitude: UInt64 = 0
        for digit in integerDigits {
            let (shifted, o1) = magnitude.multipliedReportingOverflow(by: octal ? 8 : 10)
            let (sum, o2) = shifted.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
            guard !o1, !o2 else { throw error(.numberOutOfRange(text(cursor)), at: start) }
            magnitude = sum
        }
        guard let value = Self.signed(magnitude, negative: negative) else {
            throw error(.numberOutOfRange(text(cursor)), at: start)
        }
        return ConfigNumber(text: text(cursor), value: .integer(value))
    }

    /// A number must not run straight into a word: `10s` is a mistake for `"10s"`, not `10` then `s`.
    private func checkDelimiter(
        _ invalid: (String, SourceCursor) -> ConfigParseError
    ) throws(ConfigParseError) {
        if let next = cursor.peek(), next.isASCIILetterOrDigit || next == UInt8(ascii: "_") || next == UInt8(ascii: ".") {
            throw invalid("a number cannot run into letters; quote it if it is a string such as \"10s\"", cursor)
        }
    }

    private static func signed(_ magnitude: UInt64, negative: Bool) -> Int64? {
        if negative {
            if magnitude == UInt64(Int64.max) + 1 { return Int64.min }
            guard magnitude <= UInt64(Int64.max) else { return nil }
            return -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }
}

extension ArraySlice where Element == UInt8 {
    func trimmingSpacesAndTabs() -> ArraySlice<UInt8> {
        var slice = self
        while let first = slice.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") || first == UInt8(ascii: "\r") {
            slice = slice.dropFirst()
        }
        while let last = slice.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") || last == UInt8(ascii: "\r") {
            slice = slice.dropLast()
        }
        return slice
    }
}
