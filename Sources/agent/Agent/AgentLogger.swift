import Foundation
import Synchronization

/// Consul's log lines: `2026-11-22T10:00:00.123Z [INFO]  agent: message: key=value`, or one JSON
/// object per line with `-log-json`. Levels below the configured one are dropped, unless a
/// `/v1/agent/monitor` client asks for them.
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

    /// The configured level (`log_level`); a reload changes it while the agent runs.
    private let minimum: Atomic<Int>
    private let json: Bool
    private let write: @Sendable (String) -> Void
    private let formatter: Mutex<ISO8601DateFormatter>
    /// Open `/v1/agent/monitor` streams. They may ask for more detail than `minimum` (as Consul's
    /// do): such lines are rendered only while a monitor wants them.
    let monitors: LogMonitors

    init(level: Level, json: Bool, monitors: LogMonitors = LogMonitors(), write: @escaping @Sendable (String) -> Void) {
        self.minimum = Atomic(level.rawValue)
        self.json = json
        self.write = write
        self.monitors = monitors
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        self.formatter = Mutex(formatter)
    }

    var level: Level { Level(rawValue: minimum.load(ordering: .relaxed)) ?? .info }

    /// Changes what the output gets from the next line on (`log_level` on reload).
    func setLevel(_ level: Level) { minimum.store(level.rawValue, ordering: .relaxed) }

    /// Whether a line of this level would go anywhere: the output or a monitor. Lets callers
    /// with their own filtering (the gossip logger) skip work and follow a reloaded level.
    func wants(_ level: Level) -> Bool { level >= self.level || monitors.wants(level) }

    func log(_ level: Level, _ module: String, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) {
        let toOutput = level >= self.level
        let toMonitors = monitors.wants(level)
        guard toOutput || toMonitors else { return }
        let time = formatter.withLock { $0.string(from: Date()) }
        guard toMonitors else {
            // The usual case: nobody monitors this level, so nothing beyond the one line is made.
            write(json ? Self.json(level, module, message, fields, time: time) : Self.text(level, module, message, fields, time: time))
            return
        }
        let renderer = LogLineRenderer(
            text: { Self.text(level, module, message, fields, time: time) },
            json: { Self.json(level, module, message, fields, time: time) })
        if toOutput { write(renderer.line(json: json)) }
        monitors.publish(level, renderer)
    }

    /// `2026-11-22T10:00:00.123Z [INFO]  module: message: key=value`
    static func text(_ level: Level, _ module: String, _ message: String, _ fields: KeyValuePairs<String, String>, time: String) -> String {
        let rendered = fields.isEmpty ? "" : ": " + fields.map { "\($0.key)=\($0.value.contains(" ") ? "\"\($0.value)\"" : $0.value)" }.joined(separator: " ")
        return "\(time) \(level.label) \(module): \(message)\(rendered)\n"
    }

    /// One JSON object per line, as `-log-json` writes them.
    static func json(_ level: Level, _ module: String, _ message: String, _ fields: KeyValuePairs<String, String>, time: String) -> String {
        var writer = JSONWriter()
        writer.object { w in
            w.field("@level") { $0.string(level.jsonName) }
            w.field("@message") { $0.string(message) }
            w.field("@module") { $0.string(module) }
            w.field("@timestamp") { $0.string(time) }
            for (key, value) in fields { w.field(dynamic: key) { $0.string(value) } }
        }
        return String(decoding: writer.bytes, as: UTF8.self) + "\n"
    }

    func debug(_ module: String, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.debug, module, message, fields) }
    func info(_ module: String, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.info, module, message, fields) }
    func warn(_ module: String, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.warn, module, message, fields) }
    func error(_ module: String, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.error, module, message, fields) }
}
