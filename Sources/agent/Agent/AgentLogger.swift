import Foundation
import Synchronization

/// Consul's log lines: `2026-11-22T10:00:00.123Z [INFO]  agent: message: key=value`, or one JSON
/// object per line with `-log-json`. Levels below the configured one are dropped.
final class AgentLogger: Sendable {
    enum Level: Int, Comparable, Sendable {
        case trace = 0, debug, info, warn, error

        init?(_ name: String) {
            switch name.lowercased() {
            case "trace": self = .trace
            case "debug": self = .debug
            case "info": self = .info
            case "warn", "warning": self = .warn
            case "err", "error": self = .error
            default: return nil
            }
        }

        var label: String {
            switch self {
            case .trace: return "[TRACE]"
            case .debug: return "[DEBUG]"
            case .info: return "[INFO] "
            case .warn: return "[WARN] "
            case .error: return "[ERROR]"
            }
        }

        var jsonName: String { ["trace", "debug", "info", "warn", "error"][rawValue] }

        static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    private let minimum: Level
    private let json: Bool
    private let write: @Sendable (String) -> Void
    private let formatter: Mutex<ISO8601DateFormatter>

    init(level: Level, json: Bool, write: @escaping @Sendable (String) -> Void) {
        self.minimum = level
        self.json = json
        self.write = write
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        self.formatter = Mutex(formatter)
    }

    func log(_ level: Level, _ module: String, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) {
        guard level >= minimum else { return }
        let time = formatter.withLock { $0.string(from: Date()) }
        if json {
            var writer = JSONWriter()
            writer.object { w in
                w.field("@level") { $0.string(level.jsonName) }
                w.field("@message") { $0.string(message) }
                w.field("@module") { $0.string(module) }
                w.field("@timestamp") { $0.string(time) }
                for (key, value) in fields { w.field(dynamic: key) { $0.string(value) } }
            }
            write(String(decoding: writer.bytes, as: UTF8.self) + "\n")
        } else {
            let rendered = fields.isEmpty ? "" : ": " + fields.map { "\($0.key)=\($0.value.contains(" ") ? "\"\($0.value)\"" : $0.value)" }.joined(separator: " ")
            write("\(time) \(level.label) \(module): \(message)\(rendered)\n")
        }
    }

    func debug(_ module: String, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.debug, module, message, fields) }
    func info(_ module: String, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.info, module, message, fields) }
    func warn(_ module: String, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.warn, module, message, fields) }
    func error(_ module: String, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.error, module, message, fields) }
}
