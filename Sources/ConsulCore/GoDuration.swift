/// Durations as Go writes and reads them (`time.ParseDuration`, `Duration.String`): "30s", "1m30s",
/// "1.5h", "250ms", "10us". Consul's flags, config files and API JSON all use this form.
public enum GoDuration {
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case invalid(String)
        case missingUnit(String)
        case unknownUnit(String, unit: String)
        case overflow(String)

        public var description: String {
            switch self {
            case .invalid(let text): return "time: invalid duration \"\(text)\""
            case .missingUnit(let text): return "time: missing unit in duration \"\(text)\""
            case .unknownUnit(let text, let unit): return "time: unknown unit \"\(unit)\" in duration \"\(text)\""
            case .overflow(let text): return "time: invalid duration \"\(text)\" (out of range)"
            }
        }
    }

    private static let units: [(suffix: String, nanoseconds: Int64)] = [
        ("ns", 1), ("us", 1_000), ("µs", 1_000), ("μs", 1_000), ("ms", 1_000_000),
        ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000),
    ]

    /// Parses Go's duration syntax: an optional sign, then one or more `<number><unit>` terms.
    public static func parse(_ text: String) throws(ParseError) -> Duration {
        var rest = Substring(text)
        var negative = false
        if let sign = rest.first, sign == "-" || sign == "+" {
            negative = sign == "-"
            rest = rest.dropFirst()
        }
        if rest == "0" { return .zero }
        guard !rest.isEmpty else { throw .invalid(text) }
        var total: Double = 0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, number != ".", number.filter({ $0 == "." }).count <= 1, let value = Double(number) else {
                throw .invalid(text)
            }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
            guard !unitText.isEmpty else { throw .missingUnit(text) }
            guard let unit = units.first(where: { $0.suffix == unitText }) else {
                throw .unknownUnit(text, unit: String(unitText))
            }
            rest = rest.dropFirst(unitText.count)
            total += value * Double(unit.nanoseconds)
        }
        guard total < 9.2e18 else { throw .overflow(text) }
        let nanoseconds = Int64(total.rounded())
        return .nanoseconds(negative ? -nanoseconds : nanoseconds)
    }

    /// Go's `Duration.String()`: "0s", "250ms", "1.5s", "1m30s", "2h0m0s".
    public static func format(_ duration: Duration) -> String {
        let total = duration.totalNanoseconds
        if total == 0 { return "0s" }
        let sign = total < 0 ? "-" : ""
        let magnitude = total.magnitude
        if magnitude < 1_000 { return "\(sign)\(magnitude)ns" }
        if magnitude < 1_000_000 { return sign + decimal(magnitude, scale: 1_000) + "µs" }
        if magnitude < 1_000_000_000 { return sign + decimal(magnitude, scale: 1_000_000) + "ms" }
        let hours = magnitude / 3_600_000_000_000
        let minutes = magnitude / 60_000_000_000 % 60
        let seconds = decimal(magnitude % 60_000_000_000, scale: 1_000_000_000) + "s"
        if hours > 0 { return "\(sign)\(hours)h\(minutes)m\(seconds)" }
        if minutes > 0 { return "\(sign)\(minutes)m\(seconds)" }
        return sign + seconds
    }

    /// `value / scale` with the fraction written without trailing zeros, as Go does.
    private static func decimal(_ value: UInt64, scale: UInt64) -> String {
        let whole = value / scale
        let fraction = value % scale
        guard fraction > 0 else { return "\(whole)" }
        var digits = String(fraction).leftPadded(to: String(scale).count - 1, with: "0")
        while digits.last == "0" { digits.removeLast() }
        return "\(whole).\(digits)"
    }
}
