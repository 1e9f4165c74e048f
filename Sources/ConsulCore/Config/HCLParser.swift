/// Reads HCL version 1 — the syntax of Consul's `*.hcl` config files and of ACL rules — into the
/// same `ConfigValue` tree the JSON reader builds.
///
/// Syntax (as hashicorp/hcl v1 accepts it): items `key = value` (`:` is accepted for `=`), blocks
/// `key { ... }`, labelled blocks `key "label" ... { ... }`; keys are bare words or strings; values
/// are strings, heredocs, numbers, `true`/`false`, lists `[a, b,]` and objects `{ ... }`. Commas
/// between items are optional and newlines carry no meaning.
///
/// Shape of the tree. hashicorp/hcl v1 decodes every block into a list of maps and leaves Consul to
/// flatten the single-element ones; we build the flattened (JSON) shape directly, so that the HCL
/// and JSON forms of one config compare equal:
/// - a block is an object: `ports { http = 8500 }` is `{"ports": {"http": 8500}}`;
/// - labels become nested objects: `node_prefix "" { policy = "read" }` is
///   `{"node_prefix": {"": {"policy": "read"}}}`;
/// - labelled blocks with the same key share one object, so `service "web" {..}` followed by
///   `service "db" {..}` is `{"service": {"web": {..}, "db": {..}}}` — how HCL1 decodes ACL rules
///   (struct fields tagged `,expand`) and how their JSON form is written;
/// - a key given again with a block, object or list value collects the values into a list, as HCL1
///   appends to the list it already built: two `services { .. }` blocks give
///   `{"services": [{..}, {..}]}`, and `checks = [a]` then `checks { b }` gives `[a, b]`;
/// - a key given again with a scalar (string, number, bool) on either side: the later one wins.
package struct HCLParser {
    private var lexer: HCLLexer
    private var lookahead: HCLToken?
    private let file: String
    private let limits: ConfigParseLimits
    /// The top-level object is the first level, as in JSON.
    private var depth = 1

    private init(bytes: [UInt8], file: String, limits: ConfigParseLimits) {
        lexer = HCLLexer(bytes: bytes, file: file)
        self.file = file
        self.limits = limits
    }

    /// Reads HCL text. The result is always an object (an empty file is an empty object).
    package static func parse(
        _ text: String, file: String, limits: ConfigParseLimits = .default
    ) throws(ConfigParseError) -> ConfigValue {
        try parse(bytes: Array(text.utf8), file: file, limits: limits)
    }

    /// Reads HCL from raw bytes as read from disk; invalid UTF-8 is reported where it occurs.
    package static func parse(
        bytes: [UInt8], file: String, limits: ConfigParseLimits = .default
    ) throws(ConfigParseError) -> ConfigValue {
        guard bytes.count <= limits.maxInputBytes else {
            throw ConfigParseError(
                file: file, position: SourcePosition(line: 1, column: 1),
                problem: .tooLarge(size: bytes.count, limit: limits.maxInputBytes))
        }
        var parser = HCLParser(bytes: bytes, file: file, limits: limits)
        var builder = HCLObjectBuilder()
        try parser.parseItems(into: &builder, closing: nil)
        return .object(builder.build())
    }

    private mutating func peek() throws(ConfigParseError) -> HCLToken {
        if let lookahead { return lookahead }
        let token = try lexer.next()
        lookahead = token
        return token
    }

    private mutating func take() throws(ConfigParseError) -> HCLToken {
        let token = try peek()
        lookahead = nil
        return token
    }

    private func error(_ problem: ConfigParseError.Problem, at position: SourcePosition) -> ConfigParseError {
        ConfigParseError(file: file, position: position, problem: problem)
    }

    private mutating func enterNesting(at position: SourcePosition, levels: Int = 1) throws(ConfigParseError) {
        depth += levels
        if depth > limits.maxDepth { throw error(.tooDeep(limit: limits.maxDepth), at: position) }
    }

    /// Items up to the end of file (`closing == nil`) or up to the `}` matching the `{` at `closing`.
    private mutating func parseItems(into builder: inout HCLObjectBuilder, closing: SourcePosition?) throws(ConfigParseError) {
        while true {
            let token = try peek()
            switch token.kind {
            case .endOfFile:
                if let closing { throw error(.unclosed(opening: "{", at: closing, found: "end of file"), at: token.start) }
                return
            case .rightBrace where closing != nil:
                _ = try take()
                return
            case .comma:
                // Commas between items are optional, and a stray one is harmless (HCL1 skips it too).
                _ = try take()
            case .identifier, .string:
                try parseItem(into: &builder)
            default:
                let expected = closing == nil ? "a key" : "a key or '}'"
                throw error(.expected(expected, found: token.found), at: token.start)
            }
        }
    }

    /// `key = value`, `key { ... }` or `key "label" ... { ... }`.
    private mutating func parseItem(into builder: inout HCLObjectBuilder) throws(ConfigParseError) {
        var keys: [HCLObjectBuilder.Key] = []
        while true {
            let token = try peek()
            switch token.kind {
            case .identifier(let name), .string(let name):
                _ = try take()
                keys.append(.init(name: name, position: token.start))
                continue
            case .assign:
                guard keys.count == 1 else {
                    throw error(.expected("'{' after the block labels", found: token.found), at: token.start)
                }
                _ = try take()
                let value = try parseValue(after: keys[0].name)
                builder.insert(path: keys[...], value: value)
                return
            case .leftBrace:
                let opening = try take()
                // Labels nest one object level each; count them against the depth limit too.
                try enterNesting(at: opening.start, levels: keys.count)
                defer { depth -= keys.count }
                var body = HCLObjectBuilder()
                try parseItems(into: &body, closing: opening.start)
                builder.insert(path: keys[...], value: .object(body.build()))
                return
            default:
                let expected: String
                if keys.count == 1 {
                    expected = "'=' or '{' after key '\(keys[0].name)'"
                } else {
                    expected = "'{' after the block labels"
                }
                throw error(.expected(expected, found: token.found), at: token.start)
            }
        }
    }

    /// A value after `key =`, or a list element (`key == nil`).
    private mutating func parseValue(after key: String?) throws(ConfigParseError) -> ConfigValue {
        let token = try take()
        switch token.kind {
        case .string(let string), .heredoc(let string): return .string(string)
        case .number(let number): return .number(number)
        case .bool(let bool): return .bool(bool)
        case .leftBracket: return try parseList(opening: token.start)
        case .leftBrace:
            try enterNesting(at: token.start)
            defer { depth -= 1 }
            var body = HCLObjectBuilder()
            try parseItems(into: &body, closing: token.start)
            return .object(body.build())
        case .identifier(let word):
            throw error(.bareWordValue(word), at: token.start)
        default:
            let expected = key.map { "a value for '\($0)'" } ?? "a list element or ']'"
            throw error(.expected(expected, found: token.found), at: token.start)
        }
    }

    private mutating func parseList(opening: SourcePosition) throws(ConfigParseError) -> ConfigValue {
        try enterNesting(at: opening)
        defer { depth -= 1 }
        var elements: [ConfigValue] = []
        while true {
            let token = try peek()
            switch token.kind {
            case .rightBracket:
                _ = try take()
                return .array(elements)
            case .endOfFile:
                throw error(.unclosed(opening: "[", at: opening, found: "end of file"), at: token.start)
            default:
                elements.append(try parseValue(after: nil))
            }
            let separator = try peek()
            switch separator.kind {
            case .comma:
                _ = try take()
            case .rightBracket:
                continue
            case .endOfFile:
                throw error(.unclosed(opening: "[", at: opening, found: "end of file"), at: separator.start)
            default:
                throw error(.expected("',' or ']' after list element", found: separator.found), at: separator.start)
            }
        }
    }
}

/// Collects the items of one HCL object body and applies the repeated-key rules described on
/// `HCLParser`. Labelled blocks stay open (as nested builders) until the body ends, so that later
/// blocks with the same key can add labels to them.
struct HCLObjectBuilder {
    struct Key {
        let name: String
        let position: SourcePosition
    }

    private enum Entry {
        case value(ConfigValue)
        /// The object that labels of blocks with this key open; later labelled blocks add to it.
        case labelled(HCLObjectBuilder)
        /// Composite values given under a repeated key, gathered in place so that a file with many
        /// repetitions is read in linear time.
        case collected([ConfigValue])

        func build() -> ConfigValue {
            switch self {
            case .value(let value): return value
            case .labelled(let builder): return .object(builder.build())
            case .collected(let elements): return .array(elements)
            }
        }
    }

    private var names: [String] = []
    private var positions: [SourcePosition] = []
    private var entries: [Entry] = []
    private var index: [String: Int] = [:]

    /// Inserts `value` under `path`: the item's key followed by its block labels.
    mutating func insert(path: ArraySlice<Key>, value: ConfigValue) {
        guard let key = path.first else { return }
        let rest = path.dropFirst()
        guard let slot = index[key.name] else {
            index[key.name] = entries.count
            names.append(key.name)
            positions.append(key.position)
            if rest.isEmpty {
                entries.append(.value(value))
            } else {
                var nested = HCLObjectBuilder()
                nested.insert(path: rest, value: value)
                entries.append(.labelled(nested))
            }
            return
        }
        // Take the entry out so that the builder or list inside it is uniquely referenced and
        // can be extended in place.
        var existing = entries[slot]
        entries[slot] = .value(.null)
        if case .labelled(var nested) = existing, !rest.isEmpty {
            existing = .value(.null)
            nested.insert(path: rest, value: value)
            entries[slot] = .labelled(nested)
            return
        }
        var later = value
        if !rest.isEmpty {
            var nested = HCLObjectBuilder()
            nested.insert(path: rest, value: value)
            later = .object(nested.build())
        }
        // A repeated key: composite values (objects, lists) are collected into one list, in source
        // order; when a scalar is involved the later value replaces the earlier.
        let incoming: [ConfigValue]
        switch later {
        case .array(let elements): incoming = elements
        case .object: incoming = [later]
        default:
            entries[slot] = .value(later)
            return
        }
        switch existing {
        case .collected(var elements):
            existing = .value(.null)
            elements.append(contentsOf: incoming)
            entries[slot] = .collected(elements)
        case .labelled:
            entries[slot] = .collected([existing.build()] + incoming)
        case .value(let earlier):
            switch earlier {
            case .array(let elements): entries[slot] = .collected(elements + incoming)
            case .object: entries[slot] = .collected([earlier] + incoming)
            default: entries[slot] = .value(later)
            }
        }
    }

    func build() -> ConfigObject {
        var object = ConfigObject()
        for offset in entries.indices {
            object.set(.init(key: names[offset], value: entries[offset].build(), position: positions[offset]))
        }
        return object
    }
}
