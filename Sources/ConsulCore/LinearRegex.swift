/// Regular expressions in RE2's syntax (what Consul's `?filter=` `matches` and its event filters
/// take), matched in time linear in the text: the pattern compiles to an NFA that a Pike VM runs
/// over the text once, every thread in step, never backtracking. A pattern from an API client
/// (`(a*)*b`, `(a|a)*$`) therefore cannot make the agent spin, as it could with a backtracking
/// engine (Foundation's and Swift's own `Regex` both backtrack).
///
/// Supported: literals, `.`, `[...]` classes with ranges, negation and `[:alpha:]`-style names,
/// `\d \D \s \S \w \W`, `\A \z \b \B`, `^ $`, groups `(...)`, `(?:...)`, `(?P<name>...)`,
/// alternation, `* + ? {n} {n,} {n,m}` (non-greedy forms accepted: only whether there is a match
/// matters), flags `(?i) (?s) (?m) (?U)` and `(?flags:...)`, `\Q...\E`, `\x7f`, `\x{263a}`, octal
/// `\123`, `\n \t \r \f \v \a`. Not supported, and refused with an error: Unicode classes (`\pL`).
/// Matching is over Unicode scalars; case folding is the simple one-to-one mapping.
public struct LinearRegex: Sendable {
    public struct SyntaxError: Error, Equatable, CustomStringConvertible {
        /// Go's wording: `error parsing regexp: missing closing ]: `[a``.
        public let description: String

        init(_ code: String, _ fragment: Substring) {
            description = "error parsing regexp: \(code): `\(fragment)`"
        }
    }

    /// More instructions than this (counted repetition expands) is refused, as RE2 refuses
    /// programs past its size limit: matching cost grows with it.
    public static let maxInstructions = 10_000
    /// RE2's limit on one `{n,m}`.
    public static let maxRepeat = 1000

    private let program: [Instruction]

    public init(_ pattern: String) throws(SyntaxError) {
        var parser = Parser(pattern)
        let tree = try parser.parse()
        var compiler = Compiler()
        try compiler.emit(tree, pattern: pattern[...])
        compiler.instructions.append(.match)
        program = compiler.instructions
    }

    /// Whether the pattern matches anywhere in `text` (Go's `MatchString`).
    public func matches(_ text: String) -> Bool {
        let scalars = Array(text.unicodeScalars)
        var machine = PikeVM(program: program, text: scalars)
        return machine.run()
    }
}

// MARK: - Syntax tree

private enum Assertion: Sendable {
    case textStart, textEnd, lineStart, lineEnd, wordBoundary, notWordBoundary
}

/// A set of scalars: ranges, perhaps negated, perhaps compared after simple case folding.
private struct ScalarSet: Sendable {
    var ranges: [ClosedRange<UInt32>] = []
    var negated = false
    var foldCase = false

    init(ranges: [ClosedRange<UInt32>] = [], negated: Bool = false, foldCase: Bool = false) {
        self.ranges = ranges
        self.negated = negated
        self.foldCase = foldCase
    }

    func contains(_ scalar: Unicode.Scalar) -> Bool {
        var hit = inRanges(scalar.value)
        if !hit && foldCase {
            for other in ScalarSet.simpleFolds(scalar) where inRanges(other) {
                hit = true
                break
            }
        }
        return hit != negated
    }

    private func inRanges(_ value: UInt32) -> Bool {
        for range in ranges where range.contains(value) { return true }
        return false
    }

    /// The other cases of a scalar (one-to-one mappings only, as RE2's simple folding).
    static func simpleFolds(_ scalar: Unicode.Scalar) -> [UInt32] {
        let value = scalar.value
        if value < 0x80 {
            switch value {
            case 0x41...0x5A: return [value + 0x20]
            case 0x61...0x7A: return [value - 0x20]
            default: return []
            }
        }
        var folds: [UInt32] = []
        for mapping in [scalar.properties.lowercaseMapping, scalar.properties.uppercaseMapping] {
            let mapped = mapping.unicodeScalars
            if mapped.count == 1, let only = mapped.first, only != scalar { folds.append(only.value) }
        }
        return folds
    }

    static let digits = ScalarSet(ranges: [0x30...0x39])
    static let space = ScalarSet(ranges: [0x09...0x0A, 0x0C...0x0D, 0x20...0x20])
    static let word = ScalarSet(ranges: [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A])

    /// `[:name:]` inside a class (RE2's ASCII classes).
    static func posix(_ name: Substring) -> [ClosedRange<UInt32>]? {
        switch name {
        case "alnum": return [0x30...0x39, 0x41...0x5A, 0x61...0x7A]
        case "alpha": return [0x41...0x5A, 0x61...0x7A]
        case "ascii": return [0x00...0x7F]
        case "blank": return [0x09...0x09, 0x20...0x20]
        case "cntrl": return [0x00...0x1F, 0x7F...0x7F]
        case "digit": return [0x30...0x39]
        case "graph": return [0x21...0x7E]
        case "lower": return [0x61...0x7A]
        case "print": return [0x20...0x7E]
        case "punct": return [0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E]
        case "space": return [0x09...0x0D, 0x20...0x20]
        case "upper": return [0x41...0x5A]
        case "word": return word.ranges
        case "xdigit": return [0x30...0x39, 0x41...0x46, 0x61...0x66]
        default: return nil
        }
    }

    /// The complement of sorted, merged ranges.
    static func complement(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        var out: [ClosedRange<UInt32>] = []
        var next: UInt32 = 0
        for range in merged(ranges) {
            if range.lowerBound > next { out.append(next...(range.lowerBound - 1)) }
            if range.upperBound == 0x10FFFF { return out }
            next = range.upperBound + 1
        }
        out.append(next...0x10FFFF)
        return out
    }

    static func merged(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        var out: [ClosedRange<UInt32>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = out.last, range.lowerBound <= last.upperBound &+ 1 {
                out[out.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                out.append(range)
            }
        }
        return out
    }
}

private indirect enum Node: Sendable {
    case empty
    case set(ScalarSet)
    /// `.`: any scalar, or any but `\n` unless `(?s)`.
    case any(matchesNewline: Bool)
    case assertion(Assertion)
    case concat([Node])
    case alternate([Node])
    case repetition(Node, min: Int, max: Int?)
}

// MARK: - Parser

private struct Flags {
    var caseInsensitive = false
    var dotMatchesNewline = false
    var multiLine = false
}

private struct Parser {
    let scalars: [Unicode.Scalar]
    let pattern: String
    var position = 0
    var flags = Flags()

    init(_ pattern: String) {
        self.pattern = pattern
        scalars = Array(pattern.unicodeScalars)
    }

    var atEnd: Bool { position >= scalars.count }
    var peek: Unicode.Scalar? { atEnd ? nil : scalars[position] }

    /// The pattern text from scalar `start` to the current position (for error messages).
    func fragment(from start: Int, to end: Int? = nil) -> Substring {
        var text = String.UnicodeScalarView()
        text.append(contentsOf: scalars[start..<min(end ?? position, scalars.count)])
        return String(text)[...]
    }

    mutating func parse() throws(LinearRegex.SyntaxError) -> Node {
        let tree = try parseAlternation()
        if !atEnd { throw LinearRegex.SyntaxError("unexpected )", pattern[...]) }
        return tree
    }

    mutating func parseAlternation() throws(LinearRegex.SyntaxError) -> Node {
        var branches = [try parseConcatenation()]
        while peek == "|" {
            position += 1
            branches.append(try parseConcatenation())
        }
        return branches.count == 1 ? branches[0] : .alternate(branches)
    }

    mutating func parseConcatenation() throws(LinearRegex.SyntaxError) -> Node {
        var items: [Node] = []
        while let next = peek, next != "|", next != ")" {
            // A flag group without a body changes the flags for the rest of this group.
            if let flagged = try parseFlagsOnly() {
                flags = flagged
                continue
            }
            let start = position
            var atom = try parseAtom()
            var repeated = false
            while let (min, max) = try parseRepetition() {
                if repeated { throw LinearRegex.SyntaxError("invalid nested repetition operator", fragment(from: start)) }
                repeated = true
                atom = .repetition(atom, min: min, max: max)
            }
            items.append(atom)
        }
        return items.count == 1 ? items[0] : (items.isEmpty ? .empty : .concat(items))
    }

    /// `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}` (each perhaps followed by `?`); nil when none follows.
    mutating func parseRepetition() throws(LinearRegex.SyntaxError) -> (Int, Int?)? {
        guard let next = peek else { return nil }
        let bounds: (Int, Int?)
        switch next {
        case "*": bounds = (0, nil); position += 1
        case "+": bounds = (1, nil); position += 1
        case "?": bounds = (0, 1); position += 1
        case "{":
            guard let counted = try parseCount() else { return nil }
            bounds = counted
        default:
            return nil
        }
        if peek == "?" { position += 1 }
        return bounds
    }

    /// `{n}`, `{n,}` or `{n,m}` at the position; nil (nothing consumed) when the brace does not
    /// start one, and is then a literal `{`, as in RE2.
    mutating func parseCount() throws(LinearRegex.SyntaxError) -> (Int, Int?)? {
        let open = position
        var cursor = position + 1
        func number() -> Int? {
            var value = 0
            var digits = 0
            while cursor < scalars.count, let digit = Int(String(scalars[cursor])), scalars[cursor].isASCII {
                value = min(value * 10 + digit, 100_000)
                digits += 1
                cursor += 1
            }
            return digits > 0 ? value : nil
        }
        guard let low = number() else { return nil }
        var high: Int? = low
        if cursor < scalars.count, scalars[cursor] == "," {
            cursor += 1
            high = nil
            if cursor < scalars.count, scalars[cursor] != "}" {
                guard let upper = number() else { return nil }
                high = upper
            }
        }
        guard cursor < scalars.count, scalars[cursor] == "}" else { return nil }
        position = cursor + 1
        if low > LinearRegex.maxRepeat || (high ?? 0) > LinearRegex.maxRepeat || (high.map { $0 < low } ?? false) {
            throw LinearRegex.SyntaxError("invalid repeat count", fragment(from: open))
        }
        return (low, high)
    }

    /// `(?flags)` with no body: the new flags; nil when the position holds something else.
    mutating func parseFlagsOnly() throws(LinearRegex.SyntaxError) -> Flags? {
        guard peek == "(", position + 1 < scalars.count, scalars[position + 1] == "?" else { return nil }
        let start = position
        var cursor = position + 2
        var updated = flags
        var negate = false
        var sawFlag = false
        while cursor < scalars.count {
            switch scalars[cursor] {
            case "i": updated.caseInsensitive = !negate; sawFlag = true
            case "s": updated.dotMatchesNewline = !negate; sawFlag = true
            case "m": updated.multiLine = !negate; sawFlag = true
            case "U": sawFlag = true  // ungreedy: no effect on whether a match exists
            case "-":
                guard !negate else { throw LinearRegex.SyntaxError("invalid or unsupported Perl syntax", fragment(from: start, to: cursor + 1)) }
                negate = true
                sawFlag = false
            case ")":
                guard sawFlag || !negate else { throw LinearRegex.SyntaxError("invalid or unsupported Perl syntax", fragment(from: start, to: cursor + 1)) }
                guard cursor > position + 2 else { throw LinearRegex.SyntaxError("missing argument to repetition operator", fragment(from: start, to: cursor + 1)) }
                position = cursor + 1
                return updated
            default:
                // `(?:`, `(?i:`, `(?P<`: a group with a body, parsed as an atom.
                return nil
            }
            cursor += 1
        }
        throw LinearRegex.SyntaxError("missing closing )", fragment(from: start))
    }

    mutating func parseAtom() throws(LinearRegex.SyntaxError) -> Node {
        let start = position
        let scalar = scalars[position]
        position += 1
        switch scalar {
        case "(":
            return try parseGroup(start: start)
        case ".":
            return .any(matchesNewline: flags.dotMatchesNewline)
        case "^":
            return .assertion(flags.multiLine ? .lineStart : .textStart)
        case "$":
            return .assertion(flags.multiLine ? .lineEnd : .textEnd)
        case "[":
            return .set(try parseClass(start: start))
        case "\\":
            return try parseEscape(start: start, inClass: false)
        case "*", "+", "?":
            throw LinearRegex.SyntaxError("missing argument to repetition operator", fragment(from: start))
        case "{":
            // A brace that starts a valid count has nothing to repeat; any other is a literal.
            position = start
            if try parseCount() != nil {
                throw LinearRegex.SyntaxError("missing argument to repetition operator", fragment(from: start))
            }
            position = start + 1
            return literal(scalar)
        default:
            return literal(scalar)
        }
    }

    func literal(_ scalar: Unicode.Scalar) -> Node {
        .set(ScalarSet(ranges: [scalar.value...scalar.value], foldCase: flags.caseInsensitive))
    }

    mutating func parseGroup(start: Int) throws(LinearRegex.SyntaxError) -> Node {
        let saved = flags
        defer { flags = saved }
        if peek == "?" {
            position += 1
            if peek == "P" || peek == "<" {
                // (?P<name>re) or (?<name>re): a named capture; the name is only checked.
                if peek == "P" { position += 1 }
                guard peek == "<" else { throw LinearRegex.SyntaxError("invalid or unsupported Perl syntax", fragment(from: start)) }
                position += 1
                let nameStart = position
                while let next = peek, next != ">" {
                    guard next == "_" || next.properties.isAlphabetic || ("0"..."9").contains(next) else {
                        throw LinearRegex.SyntaxError("invalid named capture", fragment(from: start))
                    }
                    position += 1
                }
                guard peek == ">", position > nameStart else {
                    throw LinearRegex.SyntaxError("invalid named capture", fragment(from: start, to: position + 1))
                }
                position += 1
            } else {
                var negate = false
                flagLoop: while let next = peek {
                    position += 1
                    switch next {
                    case "i": flags.caseInsensitive = !negate
                    case "s": flags.dotMatchesNewline = !negate
                    case "m": flags.multiLine = !negate
                    case "U": break
                    case "-" where !negate: negate = true
                    case ":": break flagLoop
                    default: throw LinearRegex.SyntaxError("invalid or unsupported Perl syntax", fragment(from: start))
                    }
                }
            }
        }
        let body = try parseAlternation()
        guard peek == ")" else { throw LinearRegex.SyntaxError("missing closing )", fragment(from: start)) }
        position += 1
        return body
    }

    mutating func parseClass(start: Int) throws(LinearRegex.SyntaxError) -> ScalarSet {
        var set = ScalarSet(foldCase: flags.caseInsensitive)
        if peek == "^" {
            set.negated = true
            position += 1
        }
        var first = true
        while true {
            guard let next = peek else { throw LinearRegex.SyntaxError("missing closing ]", fragment(from: start)) }
            if next == "]" && !first { break }
            first = false
            // [:name:] and [:^name:]
            if next == "[", position + 1 < scalars.count, scalars[position + 1] == ":" {
                var cursor = position + 2
                var negated = false
                if cursor < scalars.count, scalars[cursor] == "^" {
                    negated = true
                    cursor += 1
                }
                let nameStart = cursor
                while cursor + 1 < scalars.count, !(scalars[cursor] == ":" && scalars[cursor + 1] == "]") { cursor += 1 }
                if cursor + 1 < scalars.count {
                    let name = fragment(from: nameStart, to: cursor)
                    guard let ranges = ScalarSet.posix(name) else {
                        throw LinearRegex.SyntaxError("invalid character class range", fragment(from: position, to: cursor + 2))
                    }
                    set.ranges += negated ? ScalarSet.complement(ranges) : ranges
                    position = cursor + 2
                    continue
                }
            }
            let itemStart = position
            let low: UInt32
            if next == "\\" {
                position += 1
                let escaped = try parseEscape(start: itemStart, inClass: true)
                guard case .set(let inner) = escaped else { throw LinearRegex.SyntaxError("invalid escape sequence", fragment(from: itemStart)) }
                if inner.ranges.count != 1 || inner.negated || inner.ranges[0].count != 1 {
                    // \d, \s, \w and their negations: a whole class, not the start of a range.
                    set.ranges += inner.negated ? ScalarSet.complement(inner.ranges) : inner.ranges
                    continue
                }
                low = inner.ranges[0].lowerBound
            } else {
                low = next.value
                position += 1
            }
            // A range `a-z`; a `-` just before `]` is a literal.
            if peek == "-", position + 1 < scalars.count, scalars[position + 1] != "]" {
                position += 1
                let highScalar = scalars[position]
                let high: UInt32
                if highScalar == "\\" {
                    position += 1
                    let escaped = try parseEscape(start: position - 1, inClass: true)
                    guard case .set(let inner) = escaped, inner.ranges.count == 1, inner.ranges[0].count == 1, !inner.negated else {
                        throw LinearRegex.SyntaxError("invalid character class range", fragment(from: itemStart))
                    }
                    high = inner.ranges[0].lowerBound
                } else {
                    high = highScalar.value
                    position += 1
                }
                guard low <= high else { throw LinearRegex.SyntaxError("invalid character class range", fragment(from: itemStart)) }
                set.ranges.append(low...high)
            } else {
                set.ranges.append(low...low)
            }
        }
        position += 1
        set.ranges = ScalarSet.merged(set.ranges)
        return set
    }

    /// After a backslash (already consumed).
    mutating func parseEscape(start: Int, inClass: Bool) throws(LinearRegex.SyntaxError) -> Node {
        guard let next = peek else { throw LinearRegex.SyntaxError("trailing backslash at end of expression", ""[...]) }
        position += 1
        let fold = flags.caseInsensitive
        func single(_ value: UInt32) -> Node { .set(ScalarSet(ranges: [value...value], foldCase: fold)) }
        switch next {
        case "d": return .set(ScalarSet.digits)
        case "D": return .set(ScalarSet(ranges: ScalarSet.digits.ranges, negated: true))
        case "s": return .set(ScalarSet.space)
        case "S": return .set(ScalarSet(ranges: ScalarSet.space.ranges, negated: true))
        case "w": return .set(ScalarSet.word)
        case "W": return .set(ScalarSet(ranges: ScalarSet.word.ranges, negated: true))
        case "A" where !inClass: return .assertion(.textStart)
        case "z" where !inClass: return .assertion(.textEnd)
        case "b" where !inClass: return .assertion(.wordBoundary)
        case "B" where !inClass: return .assertion(.notWordBoundary)
        case "n": return single(0x0A)
        case "t": return single(0x09)
        case "r": return single(0x0D)
        case "f": return single(0x0C)
        case "v": return single(0x0B)
        case "a": return single(0x07)
        case "Q" where !inClass:
            // Literal text up to \E (or the end).
            var items: [Node] = []
            while !atEnd {
                if scalars[position] == "\\", position + 1 < scalars.count, scalars[position + 1] == "E" {
                    position += 2
                    break
                }
                items.append(literal(scalars[position]))
                position += 1
            }
            return items.isEmpty ? .empty : .concat(items)
        case "x":
            var digits = ""
            if peek == "{" {
                position += 1
                while let digit = peek, digit != "}" {
                    digits.unicodeScalars.append(digit)
                    position += 1
                }
                guard peek == "}" else { throw LinearRegex.SyntaxError("invalid escape sequence", fragment(from: start)) }
                position += 1
            } else {
                for _ in 0..<2 {
                    guard let digit = peek else { break }
                    digits.unicodeScalars.append(digit)
                    position += 1
                }
            }
            guard !digits.isEmpty, digits.count <= 8, let value = UInt32(digits, radix: 16), Unicode.Scalar(value) != nil else {
                throw LinearRegex.SyntaxError("invalid escape sequence", fragment(from: start))
            }
            return single(value)
        case "0"..."7":
            // Octal, up to three digits (\0 alone is NUL); \8 and \9 are refused below.
            var value = next.value - 0x30
            for _ in 0..<2 {
                guard let digit = peek, ("0"..."7").contains(digit) else { break }
                value = value * 8 + digit.value - 0x30
                position += 1
            }
            if next != "0" && value == next.value - 0x30 {
                // \1 ... \7 alone: a backreference, which RE2 does not have.
                throw LinearRegex.SyntaxError("invalid escape sequence", fragment(from: start))
            }
            return single(value)
        case "p", "P":
            throw LinearRegex.SyntaxError("invalid character class range (Unicode classes are not supported by this agent)", fragment(from: start))
        default:
            // Any punctuation may be escaped; a letter or digit with no meaning is an error.
            guard next.isASCII, !next.properties.isAlphabetic, !("0"..."9").contains(next) else {
                throw LinearRegex.SyntaxError("invalid escape sequence", fragment(from: start))
            }
            return single(next.value)
        }
    }
}

// MARK: - Program

private enum Instruction: Sendable {
    case set(ScalarSet)
    case any(matchesNewline: Bool)
    /// Continue at both (an alternation or a repetition's choice).
    case split(Int, Int)
    case jump(Int)
    case assertion(Assertion)
    case match
}

private struct Compiler {
    var instructions: [Instruction] = []

    mutating func emit(_ node: Node, pattern: Substring) throws(LinearRegex.SyntaxError) {
        guard instructions.count < LinearRegex.maxInstructions else { throw LinearRegex.SyntaxError("expression too large", pattern) }
        switch node {
        case .empty:
            break
        case .set(let set):
            instructions.append(.set(set))
        case .any(let matchesNewline):
            instructions.append(.any(matchesNewline: matchesNewline))
        case .assertion(let assertion):
            instructions.append(.assertion(assertion))
        case .concat(let items):
            for item in items { try emit(item, pattern: pattern) }
        case .alternate(let branches):
            // split L1, next; L1: branch; jump end; next: split L2, ...
            var jumps: [Int] = []
            for (number, branch) in branches.enumerated() {
                if number < branches.count - 1 {
                    let split = instructions.count
                    instructions.append(.split(split + 1, 0))
                    try emit(branch, pattern: pattern)
                    jumps.append(instructions.count)
                    instructions.append(.jump(0))
                    instructions[split] = .split(split + 1, instructions.count)
                } else {
                    try emit(branch, pattern: pattern)
                }
            }
            for jump in jumps { instructions[jump] = .jump(instructions.count) }
        case .repetition(let body, let min, let max):
            for _ in 0..<min { try emit(body, pattern: pattern) }
            if let max {
                // Each optional copy may be skipped to the end.
                var splits: [Int] = []
                for _ in min..<max {
                    splits.append(instructions.count)
                    instructions.append(.split(0, 0))
                    try emit(body, pattern: pattern)
                }
                for split in splits { instructions[split] = .split(split + 1, instructions.count) }
            } else {
                // loop: split body, end; body; jump loop
                let loop = instructions.count
                instructions.append(.split(0, 0))
                try emit(body, pattern: pattern)
                instructions.append(.jump(loop))
                instructions[loop] = .split(loop + 1, instructions.count)
            }
        }
        guard instructions.count <= LinearRegex.maxInstructions else { throw LinearRegex.SyntaxError("expression too large", pattern) }
    }
}

// MARK: - Matching

/// Every live thread (program counter) advances over the text together; a program counter is
/// added at most once per position, so the work is at most program size × text length.
private struct PikeVM {
    let program: [Instruction]
    let text: [Unicode.Scalar]
    /// The position each instruction was last added at (+1; 0: never), so each is added once.
    private var addedAt: [Int]
    private var stack: [Int] = []

    init(program: [Instruction], text: [Unicode.Scalar]) {
        self.program = program
        self.text = text
        addedAt = Array(repeating: 0, count: program.count)
    }

    mutating func run() -> Bool {
        var current: [Int] = []
        var next: [Int] = []
        for position in 0...text.count {
            // An unanchored search: a new thread starts at every position.
            if add(0, at: position, to: &current) { return true }
            guard position < text.count, !current.isEmpty else {
                if position < text.count { continue }
                return false
            }
            let scalar = text[position]
            next.removeAll(keepingCapacity: true)
            for pc in current {
                switch program[pc] {
                case .set(let set) where set.contains(scalar):
                    if add(pc + 1, at: position + 1, to: &next) { return true }
                case .any(let matchesNewline) where matchesNewline || scalar != "\n":
                    if add(pc + 1, at: position + 1, to: &next) { return true }
                default:
                    break
                }
            }
            swap(&current, &next)
        }
        return false
    }

    /// Adds `pc` and everything reachable from it without reading a scalar; true when that
    /// reaches `match`.
    private mutating func add(_ pc: Int, at position: Int, to list: inout [Int]) -> Bool {
        stack.removeAll(keepingCapacity: true)
        stack.append(pc)
        while let pc = stack.popLast() {
            guard addedAt[pc] != position + 1 else { continue }
            addedAt[pc] = position + 1
            switch program[pc] {
            case .match:
                return true
            case .jump(let target):
                stack.append(target)
            case .split(let first, let second):
                stack.append(second)
                stack.append(first)
            case .assertion(let assertion):
                if holds(assertion, at: position) { stack.append(pc + 1) }
            case .set, .any:
                list.append(pc)
            }
        }
        return false
    }

    private func holds(_ assertion: Assertion, at position: Int) -> Bool {
        switch assertion {
        case .textStart: return position == 0
        case .textEnd: return position == text.count
        case .lineStart: return position == 0 || text[position - 1] == "\n"
        case .lineEnd: return position == text.count || text[position] == "\n"
        case .wordBoundary, .notWordBoundary:
            let before = position > 0 && ScalarSet.word.contains(text[position - 1])
            let after = position < text.count && ScalarSet.word.contains(text[position])
            return (before != after) == (assertion == .wordBoundary)
        }
    }
}
