import ConsulCore

/// Writes compact JSON straight into bytes, in the field order the caller gives (Consul's order),
/// without Foundation. Hot endpoints (KV, catalog, health) build their answers with this;
/// `JSONPretty` re-indents for `?pretty`.
///
/// Usage: `w.object { w.field("Key") { $0.string(k) } }`. Commas are managed by the writer.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    /// Whether the next value or member in the current container needs a comma before it.
    private var needsComma = false

    init(reserving capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    mutating func object(_ body: (inout JSONWriter) -> Void) {
        container(open: UInt8(ascii: "{"), close: UInt8(ascii: "}"), body)
    }

    mutating func array(_ body: (inout JSONWriter) -> Void) {
        container(open: UInt8(ascii: "["), close: UInt8(ascii: "]"), body)
    }

    private mutating func container(open: UInt8, close: UInt8, _ body: (inout JSONWriter) -> Void) {
        separate()
        bytes.append(open)
        needsComma = false
        body(&self)
        bytes.append(close)
        needsComma = true
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
    }

    /// An object member; `value` writes exactly one value.
    mutating func field(_ name: StaticString, _ value: (inout JSONWriter) -> Void) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
        value(&self)
        needsComma = true
    }

    /// An object member whose name is data (map keys).
    mutating func field(dynamic name: String, _ value: (inout JSONWriter) -> Void) {
        separate()
        appendQuoted(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
        value(&self)
        needsComma = true
    }

    // MARK: Values

    mutating func string(_ value: String) {
        separate()
        appendQuoted(value)
    }

    mutating func int<T: BinaryInteger>(_ value: T) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    /// A float as Go's encoding/json writes it: the shortest digits that read back the same, in
    /// plain decimal between 1e-6 and 1e21 and in exponent form (`1e-07`) outside. NaN and
    /// infinities have no JSON form (Go fails); they are written as 0.
    mutating func double(_ value: Double) {
        separate()
        bytes.append(contentsOf: Self.goFloat(value).utf8)
    }

    static func goFloat(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        if value == 0 { return value.sign == .minus ? "-0" : "0" }
        // Swift's description is also the shortest round-tripping form; only the layout differs.
        let text = "\(value)"
        let negative = text.hasPrefix("-")
        let unsigned = negative ? String(text.dropFirst()) : text
        var mantissa = unsigned
        var exponent = 0
        if let e = unsigned.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = String(unsigned[..<e])
            exponent = Int(unsigned[unsigned.index(after: e)...]) ?? 0
        }
        // digits with the decimal point after `pointAt` digits.
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        var digits = String(parts[0]) + (parts.count > 1 ? String(parts[1]) : "")
        var pointAt = parts[0].count + exponent
        while digits.count > 1, digits.hasPrefix("0") {
            digits.removeFirst()
            pointAt -= 1
        }
        while digits.count > 1, digits.hasSuffix("0") { digits.removeLast() }
        let magnitude = abs(value)
        var result: String
        if magnitude < 1e-6 || magnitude >= 1e21 {
            // Go's 'e' format: d[.ddd]e±XX with at least two exponent digits.
            let exp = pointAt - 1
            result = String(digits.first!)
            if digits.count > 1 { result += "." + digits.dropFirst() }
            result += (exp < 0 ? "e-" : "e+") + (abs(exp) < 10 ? "0" : "") + String(abs(exp))
        } else if pointAt <= 0 {
            result = "0." + String(repeating: "0", count: -pointAt) + digits
        } else if pointAt >= digits.count {
            result = digits + String(repeating: "0", count: pointAt - digits.count)
        } else {
            let split = digits.index(digits.startIndex, offsetBy: pointAt)
            result = digits[..<split] + "." + digits[split...]
        }
        return negative ? "-" + result : result
    }

    mutating func bool(_ value: Bool) {
        separate()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    mutating func null() {
        separate()
        bytes.append(contentsOf: "null".utf8)
    }

    mutating func strings(_ values: [String]) {
        array { writer in for value in values { writer.string(value) } }
    }

    /// A string map with keys sorted (Go's encoding/json sorts map keys too).
    mutating func stringMap(_ map: [String: String]) {
        object { writer in
            for key in map.keys.sorted() { writer.field(dynamic: key) { $0.string(map[key]!) } }
        }
    }

    /// A parsed JSON value written back (members in their order, numbers as they were written).
    mutating func value(_ value: ConfigValue) {
        switch value {
        case .object(let object):
            self.object { w in for member in object.members { w.field(dynamic: member.key) { $0.value(member.value) } } }
        case .array(let elements):
            array { w in for element in elements { w.value(element) } }
        case .string(let text): string(text)
        case .number(let number):
            separate()
            bytes.append(contentsOf: number.text.utf8)
        case .bool(let flag): bool(flag)
        case .null: null()
        }
    }

    /// Bytes as a base64 string (KV values), encoded straight into the output.
    mutating func base64(_ value: [UInt8]) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        Base64.encode(value, appendingTo: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// Whether `byte` must be escaped in a JSON string (as Go's encoding/json does, which also
    /// escapes <, > and & for safe embedding in HTML; Consul's output does the same).
    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "<")
            || byte == UInt8(ascii: ">") || byte == UInt8(ascii: "&")
    }

    private mutating func appendQuoted(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings (names, keys, IDs) need no escaping: copied in one go.
        let copied = value.utf8.withContiguousStorageIfAvailable { buffer -> Bool in
            guard !buffer.contains(where: Self.needsEscape) else { return false }
            bytes.append(contentsOf: buffer)
            return true
        }
        if copied != true {
            for byte in value.utf8 { appendEscaped(byte) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func appendEscaped(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), byte])
        case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
        case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
        case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
        case _ where Self.needsEscape(byte):
            bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), Self.hex[Int(byte >> 4)], Self.hex[Int(byte & 0xF)]])
        default: bytes.append(byte)
        }
    }
}

/// Re-indents valid compact JSON with four spaces, as Consul's `?pretty` does.
enum JSONPretty {
    static func format(_ json: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(json.count * 2)
        var depth = 0
        var inString = false
        var escaped = false
        func newline(_ out: inout [UInt8], _ depth: Int) {
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 4 * depth))
        }
        for (position, byte) in json.enumerated() {
            if inString {
                out.append(byte)
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                out.append(byte)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                out.append(byte)
                let next = position + 1 < json.count ? json[position + 1] : 0
                if next == UInt8(ascii: "}") || next == UInt8(ascii: "]") { continue }
                depth += 1
                newline(&out, depth)
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                let previous = position > 0 ? json[position - 1] : 0
                if previous != UInt8(ascii: "{") && previous != UInt8(ascii: "[") {
                    depth -= 1
                    newline(&out, depth)
                }
                out.append(byte)
            case UInt8(ascii: ","):
                out.append(byte)
                newline(&out, depth)
            case UInt8(ascii: ":"):
                out.append(contentsOf: [byte, UInt8(ascii: " ")])
            default:
                out.append(byte)
            }
        }
        return out
    }
}
