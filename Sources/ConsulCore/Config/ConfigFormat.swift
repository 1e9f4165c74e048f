/// The two languages Consul reads config (and ACL rules) in.
package enum ConfigFormat: String, Sendable, Equatable, CaseIterable {
    case hcl
    case json

    /// The format a config file's name implies, as Consul decides it: `.json` or `.hcl`. Other
    /// files in a config dir are skipped by Consul, so this returns `nil` for them.
    package init?(fileName: String) {
        if fileName.hasSuffix(".json") {
            self = .json
        } else if fileName.hasSuffix(".hcl") {
            self = .hcl
        } else {
            return nil
        }
    }

    /// Parses a config document in this format; `file` names the source in error messages.
    /// The caller reads the file: the readers do no I/O.
    package func parse(
        bytes: [UInt8], file: String, limits: ConfigParseLimits = .default
    ) throws(ConfigParseError) -> ConfigValue {
        switch self {
        case .hcl: return try HCLParser.parse(bytes: bytes, file: file, limits: limits)
        case .json: return try JSONConfigParser.parse(bytes: bytes, file: file, limits: limits)
        }
    }

    package func parse(
        _ text: String, file: String, limits: ConfigParseLimits = .default
    ) throws(ConfigParseError) -> ConfigValue {
        try parse(bytes: Array(text.utf8), file: file, limits: limits)
    }
}
