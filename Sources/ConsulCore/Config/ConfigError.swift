/// A config file (or ACL rules text) that could not be read, with the place and the reason.
///
/// `description` is what the agent prints after `==> `, in the usual `file:line:column: problem`
/// form editors and terminals can jump to, e.g.
/// `conf/web3.json:4:17: expected ',' or '}' after object member, found '"port"'`.
package struct ConfigParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The name the caller gave for the source (usually the path as the operator wrote it).
    package let file: String
    package let position: SourcePosition
    package let problem: Problem

    package init(file: String, position: SourcePosition, problem: Problem) {
        self.file = file
        self.position = position
        self.problem = problem
    }

    package var line: Int { position.line }
    package var column: Int { position.column }

    package var description: String { "\(file):\(position.line):\(position.column): \(problem)" }

    /// What went wrong, in words an operator understands. Tokens found in the source are shown as
    /// written (shortened when long), or as "end of file".
    package enum Problem: Sendable, Equatable, CustomStringConvertible {
        /// The reader wanted `expected` (in words, e.g. "',' or '}' after object member") but found `found`.
        case expected(String, found: String)
        case unexpectedCharacter(String)
        case invalidUTF8
        case byteOrderMark
        case unterminatedString
        case newlineInString
        case controlCharacterInString(UInt8)
        case invalidEscape(String)
        case unterminatedComment
        case unterminatedHeredoc(anchor: String)
        case heredocMarkerNeedsNewline
        case invalidNumber(String, reason: String)
        case numberOutOfRange(String)
        case bareWordValue(String)
        case trailingCommaInJSON(closing: Character)
        case unclosed(opening: Character, at: SourcePosition, found: String)
        case tooDeep(limit: Int)
        case tooLarge(size: Int, limit: Int)

        package var description: String {
            switch self {
            case .expected(let expected, let found):
                return "expected \(expected), found \(found)"
            case .unexpectedCharacter(let character):
                return "unexpected character \(character)"
            case .invalidUTF8:
                return "invalid UTF-8 encoding; config files must be UTF-8 text"
            case .byteOrderMark:
                return "file starts with a byte order mark; save it as UTF-8 without BOM"
            case .unterminatedString:
                return "string is not terminated (missing closing '\"')"
            case .newlineInString:
                return "string is not terminated before the end of the line (use \\n for a newline, or a heredoc)"
            case .controlCharacterInString(let byte):
                let hex = String(byte, radix: 16, uppercase: true)
                return "control character U+\(String(repeating: "0", count: 4 - hex.count))\(hex) in string must be escaped"
            case .invalidEscape(let escape):
                return "invalid escape sequence '\(escape)' in string"
            case .unterminatedComment:
                return "comment starting here is not terminated (missing '*/')"
            case .unterminatedHeredoc(let anchor):
                return "heredoc <<\(anchor) is not terminated; expected a line containing only '\(anchor)'"
            case .heredocMarkerNeedsNewline:
                return "heredoc marker must be followed by a newline"
            case .invalidNumber(let text, let reason):
                return "invalid number '\(text)': \(reason)"
            case .numberOutOfRange(let text):
                return "number \(text) is out of range"
            case .bareWordValue(let word):
                return "unquoted word '\(word)' cannot be a value; write \"\(word)\" if it is a string"
            case .trailingCommaInJSON(let closing):
                return "JSON does not allow a comma before '\(closing)'"
            case .unclosed(let opening, let at, let found):
                let closing: Character = opening == "{" ? "}" : "]"
                return "expected '\(closing)' to close the '\(opening)' opened at \(at), found \(found)"
            case .tooDeep(let limit):
                return "values are nested more than \(limit) levels deep"
            case .tooLarge(let size, let limit):
                return "input is \(size) bytes, more than the limit of \(limit) bytes"
            }
        }
    }
}

/// Bounds on what the config readers accept, so that no file can exhaust memory or the stack.
package struct ConfigParseLimits: Sendable, Equatable {
    /// Largest accepted source, in bytes. Real Consul configs are a few KiB; service catalogs
    /// generated into config dirs reach hundreds of KiB.
    package var maxInputBytes: Int
    /// Deepest nesting of objects and lists (HCL block labels count as levels). The readers and
    /// the tree operations recurse once per level, so this bounds their stack use.
    package var maxDepth: Int

    package init(maxInputBytes: Int = ConfigParseLimits.defaultMaxInputBytes, maxDepth: Int = ConfigParseLimits.defaultMaxDepth) {
        self.maxInputBytes = maxInputBytes
        self.maxDepth = maxDepth
    }

    package static let defaultMaxInputBytes = 16 << 20
    package static let defaultMaxDepth = 100
    package static let `default` = ConfigParseLimits()
}

/// Describes a stretch of source for "found ..." in messages: quoted as written, cut short when long.
func describeFound(_ bytes: ArraySlice<UInt8>) -> String {
    if bytes.isEmpty { return "end of file" }
    let maximum = 32
    var text = String(decoding: bytes, as: UTF8.self)
    if text.count > maximum { text = String(text.prefix(maximum)) + "…" }
    return "'\(text)'"
}
