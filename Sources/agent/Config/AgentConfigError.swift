import ConsulCore

/// Where a config problem is: the source (a file path as the operator wrote it, `-hcl` fragment
/// or the command line) and, when known, the line and column of the key.
struct ConfigLocation: Equatable, Sendable, CustomStringConvertible {
    var source: String
    var position: SourcePosition?

    var description: String {
        position.map { "\(source):\($0.line):\($0.column)" } ?? source
    }
}

/// One thing wrong with the agent's configuration, worded for the operator who has to fix it.
enum AgentConfigProblem: Equatable, Sendable, CustomStringConvertible {
    /// A file or directory named by `-config-file`/`-config-dir` that could not be read.
    case unreadable(path: String, reason: String)
    case syntax(ConfigParseError)
    /// A key Consul does not have; Consul refuses those rather than ignore a typo.
    case unknownKey(ConfigLocation, key: String)
    case wrongType(ConfigLocation, key: String, expected: String, found: String)
    case invalidValue(ConfigLocation, key: String, reason: String)
    /// A rule about the merged configuration as a whole (Consul's wording where it has one).
    case invalid(String)

    var description: String {
        switch self {
        case .unreadable(let path, let reason): return "Error reading '\(path)': \(reason)"
        case .syntax(let error): return error.description
        case .unknownKey(let location, let key): return "\(location): invalid config key \(key)"
        case .wrongType(let location, let key, let expected, let found):
            return "\(location): \(key): expected \(expected), found \(found)"
        case .invalidValue(let location, let key, let reason): return "\(location): \(key): \(reason)"
        case .invalid(let message): return message
        }
    }
}

/// The configuration could not be loaded or is not valid; every problem found is listed, so an
/// operator fixes them in one round instead of one per restart.
struct AgentConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    var problems: [AgentConfigProblem]

    var description: String { problems.map(\.description).joined(separator: "\n") }
}
