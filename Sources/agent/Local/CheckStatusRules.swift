import ConsulCore

/// How Consul judges a probe's result. Pure: the runners report what they saw, these rules say what
/// status and output the check gets.
enum CheckStatusRules {
    /// Consul's default `check_output_max_size`: output beyond it is cut off.
    static let outputMaxBytes = 4096

    /// HTTP checks: any 2xx passes, 429 Too Many Requests warns, everything else is critical.
    static func status(httpCode: Int) -> HealthStatus {
        switch httpCode {
        case 200..<300: return .passing
        case 429: return .warning
        default: return .critical
        }
    }

    /// Script checks: exit 0 passes, 1 warns, any other exit (or a signal) is critical.
    static func status(exitCode: Int32) -> HealthStatus {
        switch exitCode {
        case 0: return .passing
        case 1: return .warning
        default: return .critical
        }
    }

    /// Output cut to `outputMaxBytes`, on a UTF-8 boundary, so a chatty probe cannot bloat the
    /// catalog (every change of it is replicated through Raft).
    static func truncated(_ bytes: some Collection<UInt8>) -> String {
        guard bytes.count > outputMaxBytes else { return String(decoding: bytes, as: UTF8.self) }
        var prefix = Array(bytes.prefix(outputMaxBytes))
        // Drop a partial trailing character rather than emit a replacement character.
        while let last = prefix.last, last & 0xC0 == 0x80 { prefix.removeLast() }
        if let last = prefix.last, last & 0x80 != 0 { prefix.removeLast() }
        return String(decoding: prefix, as: UTF8.self)
    }

    static func truncated(_ text: String) -> String { truncated(Array(text.utf8)) }

    /// The last `outputMaxBytes` of a probe's output, starting on a UTF-8 boundary. Consul keeps
    /// HTTP bodies and script output in a ring buffer of that size, so the end (where errors and
    /// summaries usually are) is what the check shows.
    static func tail(_ bytes: some Collection<UInt8>) -> String {
        guard bytes.count > outputMaxBytes else { return String(decoding: bytes, as: UTF8.self) }
        var suffix = bytes.suffix(outputMaxBytes)[...]
        // Drop the rest of a character whose first bytes fell off the front.
        while let first = suffix.first, first & 0xC0 == 0x80 { suffix = suffix.dropFirst() }
        return String(decoding: suffix, as: UTF8.self)
    }

    /// What a TTL check says once its application stopped reporting.
    static func ttlExpiredOutput(lastOutput: String) -> String {
        lastOutput.isEmpty ? "TTL expired" : "TTL expired (last output before timeout follows): \(lastOutput)"
    }
}

/// Consul's thresholds between a probe and its check (`success_before_passing`,
/// `failures_before_warning`, `failures_before_critical`): a status is only reported once enough
/// consecutive results agree. Warnings count as successes, as in Consul.
///
/// The counters start at the thresholds, so the first result after the check starts is taken at
/// once; only flapping afterwards is damped.
struct CheckThresholds: Equatable, Sendable {
    let successBeforePassing: Int
    let failuresBeforeWarning: Int
    let failuresBeforeCritical: Int
    private var successes: Int
    private var failures: Int

    init(successBeforePassing: Int = 0, failuresBeforeWarning: Int = 0, failuresBeforeCritical: Int = 0) {
        self.successBeforePassing = successBeforePassing
        self.failuresBeforeCritical = failuresBeforeCritical
        // Unset, it follows failures_before_critical (Consul's default).
        self.failuresBeforeWarning = failuresBeforeWarning == 0 ? failuresBeforeCritical : failuresBeforeWarning
        self.successes = successBeforePassing
        self.failures = failuresBeforeCritical
    }

    init(_ definition: CheckDefinition) {
        self.init(
            successBeforePassing: definition.successBeforePassing, failuresBeforeWarning: definition.failuresBeforeWarning,
            failuresBeforeCritical: definition.failuresBeforeCritical)
    }

    /// The status to record for this probe result, or nil: keep the current one for now.
    mutating func observe(_ status: HealthStatus) -> HealthStatus? {
        switch status {
        case .passing, .warning:
            successes += 1
            failures = 0
            return successes >= successBeforePassing ? status : nil
        case .critical, .maintenance:
            failures += 1
            successes = 0
            if failures >= failuresBeforeCritical { return .critical }
            if failures >= failuresBeforeWarning { return .warning }
            return nil
        }
    }
}
