import ConsulCore

/// Consul's `?filter=` language (its go-bexpr), parsed once per request and evaluated against
/// each element of a list answer, as the element's JSON shows it (selectors name JSON fields, which
/// are Consul's struct field names):
///
///     Selector == "value"    Selector != "value"    Selector is empty    Selector is not empty
///     "value" in Selector    "value" not in Selector
///     Selector contains "value"    Selector not contains "value"
///     Selector matches "regex"     Selector not matches "regex"
///     ( ... )    not ...    ... and ...    ... or ...      (precedence: not, and, or)
///
/// Selectors are `.`-separated names (`Service.Meta.version`) or `["map key"]`. Values are
/// "double-quoted" (escapes), `back-quoted` (raw) or bare words (`passing`, `8080`, `true`).
/// Where a selector passes through a list (`Checks.Status`), a match holds when any element
/// matches, and the negated forms hold when none does. A field an element does not have counts as
/// absent: `==` is false, `is empty` true.
struct FilterExpression: Sendable {
    indirect enum Node: Sendable {
        case and(Node, Node)
        case or(Node, Node)
        case not(Node)
        case match(Match)
    }

    struct Match: Sendable {
        enum Operator: Sendable, Equatable { case equal, isEmpty, contains, matches }
        var selector: [String]
        var op: Operator
        /// The negated form (`!=`, `is not empty`, `not in`, `not contains`, `not matches`).
        var negated: Bool
        var value: String
        /// For `matches`: compiled once, when the expression is parsed. RE2 syntax matched in
        /// linear time, as Consul's (Go's regexp): a client's pattern cannot make the agent spin.
        var regex: LinearRegex?
    }

    let root: Node

    /// Longer expressions are refused rather than parsed (a query string is no place for more).
    static let maxLength = 4096

    init(parsing text: String) throws(APIError) {
        guard text.utf8.count <= Self.maxLength else { throw .badRequest("Failed to create boolean expression evaluator: expression longer than \(Self.maxLength) bytes") }
        var parser = Parser(tokens: try Self.tokenize(text))
        do throws(ParseError) {
            root = try parser.expression(depth: 0)
            guard parser.atEnd else { throw ParseError("unexpected \(parser.peekDescription)") }
        } catch {
            throw .badRequest("Failed to create boolean expression evaluator: \(error.message)")
        }
    }

    func matches(_ value: ConfigValue) -> Bool { Self.evaluate(root, value) }

    // MARK: - Evaluation

    private static func evaluate(_ node: Node, _ value: ConfigValue) -> Bool {
        switch node {
        case .and(let left, let right): return evaluate(left, value) && evaluate(right, value)
        case .or(let left, let right): return evaluate(left, value) || evaluate(right, value)
        case .not(let inner): return !evaluate(inner, value)
        case .match(let match):
            let found = resolve(match.selector[...], in: value)
            let positive: Bool
            switch match.op {
            case .equal: positive = found.contains { equals($0, match.value) }
            case .isEmpty: positive = found.allSatisfy(isEmpty)
            case .contains: positive = found.contains { contains($0, match.value) }
            case .matches:
                positive = found.contains { candidate in
                    guard case .string(let text) = candidate, let regex = match.regex else { return false }
                    return regex.matches(text)
                }
            }
            return positive != match.negated
        }
    }

    /// Every value the selector reaches (several when it passes through a list).
    private static func resolve(_ path: ArraySlice<String>, in value: ConfigValue) -> [ConfigValue] {
        guard let name = path.first else { return [value] }
        switch value {
        case .object(let object):
            guard let member = object[name] else { return [] }
            return resolve(path.dropFirst(), in: member)
        case .array(let elements):
            return elements.flatMap { resolve(path, in: $0) }
        default:
            return []
        }
    }

    private static func equals(_ candidate: ConfigValue, _ text: String) -> Bool {
        switch candidate {
        case .string(let string): return string == text
        case .bool(let bool): return Bool(text.lowercased()) == bool
        case .number(let number):
            switch number.value {
            case .integer(let integer): return Int64(text) == integer
            case .float(let float): return Double(text) == float
            }
        case .null: return text.isEmpty
        case .object, .array: return false
        }
    }

    private static func isEmpty(_ candidate: ConfigValue) -> Bool {
        switch candidate {
        case .string(let string): return string.isEmpty
        case .array(let elements): return elements.isEmpty
        case .object(let object): return object.members.isEmpty
        case .null: return true
        case .number, .bool: return false
        }
    }

    private static func contains(_ candidate: ConfigValue, _ text: String) -> Bool {
        switch candidate {
        case .string(let string): return string.contains(text)
        case .array(let elements): return elements.contains { equals($0, text) }
        case .object(let object): return object[text] != nil
        default: return false
        }
    }

    // MARK: - Tokens

    enum Token: Equatable {
        case word(String)
        case quoted(String)
        case symbol(String)
    }

    struct ParseError: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    static func tokenize(_ text: String) throws(APIError) -> [Token] {
        var tokens: [Token] = []
        let characters = Array(text)
        var index = 0
        func fail(_ message: String) -> APIError { .badRequest("Failed to create boolean expression evaluator: \(message)") }
        while index < characters.count {
            let character = characters[index]
            if character.isWhitespace {
                index += 1
            } else if character == "(" || character == ")" || character == "[" || character == "]" || character == "." {
                tokens.append(.symbol(String(character)))
                index += 1
            } else if character == "=" || character == "!" {
                guard index + 1 < characters.count, characters[index + 1] == "=" else { throw fail("expected \(character)= at position \(index)") }
                tokens.append(.symbol(String(character) + "="))
                index += 2
            } else if character == "\"" {
                var value = ""
                index += 1
                while true {
                    guard index < characters.count else { throw fail("unterminated string") }
                    let next = characters[index]
                    index += 1
                    if next == "\"" { break }
                    if next == "\\" {
                        guard index < characters.count else { throw fail("unterminated string") }
                        let escaped = characters[index]
                        index += 1
                        switch escaped {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        case "r": value.append("\r")
                        default: value.append(escaped)
                        }
                    } else {
                        value.append(next)
                    }
                }
                tokens.append(.quoted(value))
            } else if character == "`" {
                guard let close = characters[(index + 1)...].firstIndex(of: "`") else { throw fail("unterminated raw string") }
                tokens.append(.quoted(String(characters[(index + 1)..<close])))
                index = close + 1
            } else if character.isLetter || character.isNumber || character == "_" || character == "-" || character == "+" || character == "/" || character == ":" {
                var word = ""
                while index < characters.count {
                    let next = characters[index]
                    guard next.isLetter || next.isNumber || "_-+/:".contains(next) || (next == "." && word.first.map { $0.isNumber || $0 == "-" } == true) else { break }
                    word.append(next)
                    index += 1
                }
                tokens.append(.word(word))
            } else {
                throw fail("unexpected character \"\(character)\" at position \(index)")
            }
        }
        return tokens
    }

    // MARK: - Parser (recursive descent: or → and → not → match)

    private struct Parser {
        let tokens: [Token]
        var position = 0
        /// Nesting beyond this is refused: a request must not be able to exhaust the stack.
        static let maxDepth = 64

        init(tokens: [Token]) { self.tokens = tokens }

        var atEnd: Bool { position >= tokens.count }
        var peekDescription: String {
            guard position < tokens.count else { return "end of expression" }
            switch tokens[position] {
            case .word(let word): return "\"\(word)\""
            case .quoted(let text): return "string \"\(text)\""
            case .symbol(let symbol): return "\"\(symbol)\""
            }
        }

        func peek(_ token: Token) -> Bool { position < tokens.count && tokens[position] == token }

        mutating func take(_ token: Token) -> Bool {
            guard peek(token) else { return false }
            position += 1
            return true
        }

        mutating func expression(depth: Int) throws(ParseError) -> Node {
            guard depth < Self.maxDepth else { throw ParseError("expression nested too deeply") }
            var node = try conjunction(depth: depth)
            while take(.word("or")) { node = .or(node, try conjunction(depth: depth)) }
            return node
        }

        mutating func conjunction(depth: Int) throws(ParseError) -> Node {
            var node = try unary(depth: depth)
            while take(.word("and")) { node = .and(node, try unary(depth: depth)) }
            return node
        }

        mutating func unary(depth: Int) throws(ParseError) -> Node {
            if take(.word("not")) { return .not(try unary(depth: depth + 1)) }
            if take(.symbol("(")) {
                let inner = try expression(depth: depth + 1)
                guard take(.symbol(")")) else { throw ParseError("expected \")\", found \(peekDescription)") }
                return inner
            }
            return .match(try match())
        }

        /// `"value" [not] in Selector`, or `Selector <op> ...`.
        mutating func match() throws(ParseError) -> Match {
            if position < tokens.count, case .quoted(let value) = tokens[position] {
                position += 1
                let negated = take(.word("not"))
                guard take(.word("in")) else { throw ParseError("expected \"in\" after a value, found \(peekDescription)") }
                return Match(selector: try selector(), op: .contains, negated: negated, value: value)
            }
            if position + 1 < tokens.count, case .word = tokens[position], tokens[position + 1] == .word("in") || (tokens[position + 1] == .word("not") && position + 2 < tokens.count && tokens[position + 2] == .word("in")) {
                // A bare value before `in`.
                let value = try self.value()
                let negated = take(.word("not"))
                _ = take(.word("in"))
                return Match(selector: try selector(), op: .contains, negated: negated, value: value)
            }
            let path = try selector()
            if take(.symbol("==")) { return Match(selector: path, op: .equal, negated: false, value: try value()) }
            if take(.symbol("!=")) { return Match(selector: path, op: .equal, negated: true, value: try value()) }
            if take(.word("is")) {
                let negated = take(.word("not"))
                guard take(.word("empty")) else { throw ParseError("expected \"empty\", found \(peekDescription)") }
                return Match(selector: path, op: .isEmpty, negated: negated, value: "")
            }
            let negated = take(.word("not"))
            if take(.word("contains")) { return Match(selector: path, op: .contains, negated: negated, value: try value()) }
            if take(.word("matches")) {
                let pattern = try value()
                let regex: LinearRegex
                do throws(LinearRegex.SyntaxError) { regex = try LinearRegex(pattern) } catch {
                    throw ParseError("invalid regular expression \"\(pattern)\": \(error.description)")
                }
                return Match(selector: path, op: .matches, negated: negated, value: pattern, regex: regex)
            }
            throw ParseError("expected a match operator after \(path.joined(separator: ".")), found \(peekDescription)")
        }

        mutating func selector() throws(ParseError) -> [String] {
            guard position < tokens.count, case .word(let first) = tokens[position], first.first?.isLetter == true else {
                throw ParseError("expected a selector, found \(peekDescription)")
            }
            position += 1
            var path = [first]
            while true {
                if take(.symbol(".")) {
                    guard position < tokens.count, case .word(let name) = tokens[position] else { throw ParseError("expected a name after \".\"") }
                    position += 1
                    path.append(name)
                } else if take(.symbol("[")) {
                    guard position < tokens.count, case .quoted(let key) = tokens[position] else { throw ParseError("expected a quoted key after \"[\"") }
                    position += 1
                    guard take(.symbol("]")) else { throw ParseError("expected \"]\"") }
                    path.append(key)
                } else {
                    return path
                }
            }
        }

        mutating func value() throws(ParseError) -> String {
            guard position < tokens.count else { throw ParseError("expected a value, found end of expression") }
            switch tokens[position] {
            case .quoted(let text), .word(let text):
                position += 1
                return text
            case .symbol:
                throw ParseError("expected a value, found \(peekDescription)")
            }
        }
    }
}
