import ConsulCore

/// Command-line flags parsed exactly as Go's `flag` package parses them, because Consul's operators
/// and scripts are written against that: `-name value`, `-name=value`, `--name` (two dashes mean
/// the same as one), booleans as `-server` or `-server=false` (never `-server false`), parsing stops
/// at the first non-flag argument or after `--`.
///
/// Each flag writes into an options struct through a key path, so a command's options are plain
/// typed values and the parser has no per-command code.
struct FlagSet<Options> {
    struct Flag {
        let name: String
        let usage: String
        /// Nil for booleans, which take no separate value.
        let valueName: String?
        let apply: (inout Options, String) throws(FlagError) -> Void
    }

    let commandName: String
    private(set) var flags: [Flag] = []
    private var index: [String: Int] = [:]

    init(commandName: String) {
        self.commandName = commandName
    }

    // MARK: Declaring flags

    mutating func bool(_ name: String, _ keyPath: WritableKeyPath<Options, Bool>, usage: String) {
        add(Flag(name: name, usage: usage, valueName: nil) { options, text throws(FlagError) in
            guard let value = GoBool.parse(text) else { throw .invalidValue(flag: name, value: text, reason: "parse error") }
            options[keyPath: keyPath] = value
        })
    }

    /// A boolean that remembers whether it was given at all (Consul's `flags.BoolValue`).
    mutating func optionalBool(_ name: String, _ keyPath: WritableKeyPath<Options, Bool?>, usage: String) {
        add(Flag(name: name, usage: usage, valueName: nil) { options, text throws(FlagError) in
            guard let value = GoBool.parse(text) else { throw .invalidValue(flag: name, value: text, reason: "parse error") }
            options[keyPath: keyPath] = value
        })
    }

    mutating func string(_ name: String, _ keyPath: WritableKeyPath<Options, String?>, usage: String, valueName: String = "value") {
        add(Flag(name: name, usage: usage, valueName: valueName) { options, text throws(FlagError) in
            options[keyPath: keyPath] = text
        })
    }

    /// A flag that may be given many times; every occurrence is kept, in order.
    mutating func repeated(_ name: String, _ keyPath: WritableKeyPath<Options, [String]>, usage: String, valueName: String = "value") {
        add(Flag(name: name, usage: usage, valueName: valueName) { options, text throws(FlagError) in
            options[keyPath: keyPath].append(text)
        })
    }

    /// A repeatable flag whose values also go, in order, into a list shared with other flags, for
    /// when the interleaving of two flags matters (`-config-file` and `-config-dir`).
    mutating func repeated(
        _ name: String, _ keyPath: WritableKeyPath<Options, [String]>, alsoInto shared: WritableKeyPath<Options, [String]>,
        usage: String, valueName: String = "value"
    ) {
        add(Flag(name: name, usage: usage, valueName: valueName) { options, text throws(FlagError) in
            options[keyPath: keyPath].append(text)
            options[keyPath: shared].append(text)
        })
    }

    /// Integers as Go's `flag.Int` reads them: decimal, or `0x`/`0o`/`0b` prefixed.
    mutating func int(_ name: String, _ keyPath: WritableKeyPath<Options, Int?>, usage: String, valueName: String = "int") {
        add(Flag(name: name, usage: usage, valueName: valueName) { options, text throws(FlagError) in
            guard let value = GoInt.parse(text) else { throw .invalidValue(flag: name, value: text, reason: "parse error") }
            options[keyPath: keyPath] = value
        })
    }

    mutating func duration(_ name: String, _ keyPath: WritableKeyPath<Options, Duration?>, usage: String) {
        add(Flag(name: name, usage: usage, valueName: "duration") { options, text throws(FlagError) in
            do throws(GoDuration.ParseError) {
                options[keyPath: keyPath] = try GoDuration.parse(text)
            } catch {
                throw .invalidValue(flag: name, value: text, reason: error.description)
            }
        })
    }

    /// A flag Consul once had whose feature is gone. It is still read, so old command lines from
    /// tutorials keep working, and the command is told why it has no effect.
    mutating func retired(_ name: String, takesValue: Bool, _ keyPath: WritableKeyPath<Options, [String]>, reason: String) {
        add(Flag(name: name, usage: "(retired) \(reason)", valueName: takesValue ? "value" : nil) { options, _ throws(FlagError) in
            options[keyPath: keyPath].append("-\(name) is ignored: \(reason)")
        })
    }

    private mutating func add(_ flag: Flag) {
        precondition(index[flag.name] == nil, "flag -\(flag.name) declared twice for \(commandName)")
        index[flag.name] = flags.count
        flags.append(flag)
    }

    // MARK: Parsing

    /// Applies the flags in `arguments` to `options` and returns the arguments left after them.
    func parse(_ arguments: [String], into options: inout Options) throws(FlagError) -> [String] {
        var position = 0
        while position < arguments.count {
            let argument = arguments[position]
            guard argument.count >= 2, argument.hasPrefix("-") else { break }  // "-" alone is positional
            var name = Substring(argument.dropFirst())
            if name.hasPrefix("-") {
                name = name.dropFirst()
                if name.isEmpty {  // "--" ends the flags
                    position += 1
                    break
                }
            }
            if name.hasPrefix("-") || name.hasPrefix("=") { throw .badSyntax(argument) }
            position += 1

            var inlineValue: String?
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = name[..<equals]
            }
            let flagName = String(name)
            if flagName == "h" || flagName == "help" { throw .helpRequested }
            guard let flagIndex = index[flagName] else { throw .notDefined(flagName) }
            let flag = flags[flagIndex]

            if flag.valueName == nil {
                try flag.apply(&options, inlineValue ?? "true")
            } else if let inlineValue {
                try flag.apply(&options, inlineValue)
            } else {
                guard position < arguments.count else { throw .missingValue(flagName) }
                try flag.apply(&options, arguments[position])
                position += 1
            }
        }
        return Array(arguments[position...])
    }

    /// The flag list for help output, in Go's layout, sorted by name.
    var usage: String {
        flags.sorted { $0.name < $1.name }.map { flag in
            let head = flag.valueName.map { "  -\(flag.name)=<\($0)>" } ?? "  -\(flag.name)"
            return head + "\n     " + flag.usage
        }.joined(separator: "\n\n")
    }
}

enum FlagError: Error, Equatable, CustomStringConvertible {
    case notDefined(String)
    case missingValue(String)
    case invalidValue(flag: String, value: String, reason: String)
    case badSyntax(String)
    case helpRequested

    /// Go's wording, which is what Consul prints.
    var description: String {
        switch self {
        case .notDefined(let name): return "flag provided but not defined: -\(name)"
        case .missingValue(let name): return "flag needs an argument: -\(name)"
        case .invalidValue(let flag, let value, let reason): return "invalid value \"\(value)\" for flag -\(flag): \(reason)"
        case .badSyntax(let argument): return "bad flag syntax: \(argument)"
        case .helpRequested: return "help requested"
        }
    }
}

/// Go's `strconv.ParseBool`.
enum GoBool {
    static func parse(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "true", "TRUE", "True": return true
        case "0", "f", "F", "false", "FALSE", "False": return false
        default: return nil
        }
    }
}

/// Go's `strconv.ParseInt(text, 0, 64)`: optional sign, then decimal or a 0x/0o/0b prefix, `_` allowed
/// between digits only with a prefix.
enum GoInt {
    static func parse(_ text: String) -> Int? {
        var digits = Substring(text)
        var negative = false
        if let sign = digits.first, sign == "+" || sign == "-" {
            negative = sign == "-"
            digits = digits.dropFirst()
        }
        var radix = 10
        let lowered = digits.lowercased()
        if lowered.hasPrefix("0x") { radix = 16 } else if lowered.hasPrefix("0o") { radix = 8 } else if lowered.hasPrefix("0b") { radix = 2 }
        if radix != 10 {
            digits = digits.dropFirst(2).filter { $0 != "_" }[...]
        } else if digits.count > 1, digits.first == "0" {
            radix = 8  // Go reads a leading 0 as octal
            digits = digits.dropFirst()
        }
        // Int(_:radix:) would accept a second sign; Go does not.
        guard let first = digits.first, first.isHexDigit, let magnitude = Int(digits, radix: radix) else { return nil }
        return negative ? -magnitude : magnitude
    }
}
