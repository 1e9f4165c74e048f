/// A line and column in a configuration source, both counted from 1.
///
/// Columns count Unicode characters (scalars), not bytes, because that is what an operator's
/// editor shows; a tab counts as one column.
package struct SourcePosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    package var line: Int
    package var column: Int

    package init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    package static func < (lhs: SourcePosition, rhs: SourcePosition) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    package var description: String { "\(line):\(column)" }
}

/// A number as written in a config file.
///
/// Consul's decoders treat integers and floats differently (`port = 8500` must be an integer,
/// `entry_fetch_rate_limit = 0.5` a float), and HCL writes integers in hex or octal too, so we
/// keep both the parsed value and the original text (for messages and for re-reading in another
/// base). Two numbers are equal when their parsed values are equal, whatever their spelling:
/// `0x10` in HCL equals `16` in JSON.
package struct ConfigNumber: Sendable, Hashable, CustomStringConvertible {
    package enum Value: Sendable, Hashable {
        case integer(Int64)
        case float(Double)
    }

    /// The number exactly as it appeared in the source, e.g. `0x1F`, `-2.5e3`.
    package let text: String
    package let value: Value

    package init(text: String, value: Value) {
        self.text = text
        self.value = value
    }

    package init(integer: Int64) {
        self.init(text: String(integer), value: .integer(integer))
    }

    package init(float: Double) {
        self.init(text: String(float), value: .float(float))
    }

    package static func == (lhs: ConfigNumber, rhs: ConfigNumber) -> Bool { lhs.value == rhs.value }
    package func hash(into hasher: inout Hasher) { hasher.combine(value) }

    package var description: String { text }

    /// The value as an integer if it is one, or a float with no fractional part that fits.
    package var integerValue: Int64? {
        switch value {
        case .integer(let integer): return integer
        case .float(let float):
            guard float.isFinite, float.rounded() == float, float >= -9.2e18, float <= 9.2e18 else { return nil }
            return Int64(float)
        }
    }

    package var doubleValue: Double {
        switch value {
        case .integer(let integer): return Double(integer)
        case .float(let float): return float
        }
    }
}

/// An object whose members keep the order they had in the source.
///
/// Keys are unique: the parsers resolve repeated keys before building one (see `HCLParser` and
/// `JSONConfigParser` for the rules). A side index gives constant-time lookup; it is never
/// iterated, so nothing depends on `Dictionary` order.
package struct ConfigObject: Sendable, Equatable {
    package struct Member: Sendable, Equatable {
        package var key: String
        package var value: ConfigValue
        /// Where the key was written, for messages about this member. `nil` for members built in
        /// code. Not part of equality: the same config read from HCL and JSON compares equal.
        package var position: SourcePosition?

        package init(key: String, value: ConfigValue, position: SourcePosition? = nil) {
            self.key = key
            self.value = value
            self.position = position
        }

        package static func == (lhs: Member, rhs: Member) -> Bool {
            lhs.key == rhs.key && lhs.value == rhs.value
        }
    }

    package private(set) var members: [Member] = []
    private var index: [String: Int] = [:]

    package init() {}

    package init(_ pairs: KeyValuePairs<String, ConfigValue>) {
        for (key, value) in pairs { self[key] = value }
    }

    package init(members: [Member]) {
        for member in members { set(member) }
    }

    package static func == (lhs: ConfigObject, rhs: ConfigObject) -> Bool { lhs.members == rhs.members }

    package var count: Int { members.count }
    package var isEmpty: Bool { members.isEmpty }
    package var keys: [String] { members.map(\.key) }

    package func member(_ key: String) -> Member? {
        index[key].map { members[$0] }
    }

    /// Reading gives the member's value; writing replaces the value in place (keeping the
    /// member's position in the order) or appends a new member; writing `nil` removes it.
    package subscript(key: String) -> ConfigValue? {
        get { index[key].map { members[$0].value } }
        set {
            if let newValue {
                set(Member(key: key, value: newValue, position: member(key)?.position))
            } else if let slot = index[key] {
                members.remove(at: slot)
                index = [:]
                for (offset, member) in members.enumerated() { index[member.key] = offset }
            }
        }
    }

    /// Replaces the value of an existing member (keeping its order and first position) or appends.
    package mutating func set(_ member: Member) {
        if let slot = index[member.key] {
            members[slot].value = member.value
            if members[slot].position == nil { members[slot].position = member.position }
        } else {
            index[member.key] = members.count
            members.append(member)
        }
    }
}

/// One configuration value: the common tree that both the HCL and the JSON readers produce, and
/// that the agent's config builder and the ACL rule parser read.
///
/// It has the shape of the JSON form of a config: an HCL block `ports { http = 8500 }` is the
/// object `{"ports": {"http": 8500}}`, and the labelled block `service "web" { policy = "write" }`
/// is `{"service": {"web": {"policy": "write"}}}`. HCL has no null; JSON's `null` is kept.
package enum ConfigValue: Sendable, Equatable {
    case object(ConfigObject)
    case array([ConfigValue])
    case string(String)
    case number(ConfigNumber)
    case bool(Bool)
    case null

    /// An integer value built in code (tests, defaults).
    package static func integer(_ value: Int64) -> ConfigValue { .number(ConfigNumber(integer: value)) }

    /// A float value built in code.
    package static func float(_ value: Double) -> ConfigValue { .number(ConfigNumber(float: value)) }

    /// A short name for the kind of value, for messages such as "expected a string, found a list".
    package var kindDescription: String {
        switch self {
        case .object: return "an object"
        case .array: return "a list"
        case .string: return "a string"
        case .number(let number):
            if case .integer = number.value { return "an integer" }
            return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }

    package var objectValue: ConfigObject? {
        if case .object(let object) = self { return object }
        return nil
    }

    package var arrayValue: [ConfigValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    package var stringValue: String? {
        if case .string(let string) = self { return string }
        return nil
    }

    package var numberValue: ConfigNumber? {
        if case .number(let number) = self { return number }
        return nil
    }

    package var integerValue: Int64? { numberValue?.integerValue }

    package var doubleValue: Double? { numberValue?.doubleValue }

    package var boolValue: Bool? {
        if case .bool(let bool) = self { return bool }
        return nil
    }

    package var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The member `key` of an object; `nil` for a missing key or a value that is not an object.
    package subscript(key: String) -> ConfigValue? {
        objectValue?[key]
    }

    /// Element `index` of a list; `nil` when out of range or not a list.
    package subscript(index: Int) -> ConfigValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    /// Follows `path` through objects and lists: `value.lookup(["tls", "defaults", "ca_file"])`,
    /// `value.lookup(["services", 0, "name"])`. Keys are given one per component (not joined with
    /// dots) because Consul keys may contain dots and slashes (`key_prefix "foo/bar." {}`).
    package func lookup(_ path: [ConfigPathComponent]) -> ConfigValue? {
        var current = self
        for component in path {
            switch component {
            case .key(let key):
                guard let next = current[key] else { return nil }
                current = next
            case .index(let index):
                guard let next = current[index] else { return nil }
                current = next
            }
        }
        return current
    }
}

/// One step of a `ConfigValue.lookup` path: an object key or a list index.
package enum ConfigPathComponent: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    case key(String)
    case index(Int)

    package init(stringLiteral value: String) { self = .key(value) }
    package init(integerLiteral value: Int) { self = .index(value) }

    package var description: String {
        switch self {
        case .key(let key): return key
        case .index(let index): return "[\(index)]"
        }
    }
}
