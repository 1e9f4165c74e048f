/// `consul version [-format=pretty|json]`.
enum VersionCommand {
    struct Options {
        var format: String? = nil
    }

    static var flags: FlagSet<Options> {
        var flags = FlagSet<Options>(commandName: "version")
        flags.string("format", \.format, usage: "Output format of version information. Supported values: pretty, json.", valueName: "pretty|json")
        return flags
    }

    static let help = "Usage: consul version [options]\n\n  Shows the version of this Consul agent.\n"

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        var options = Options()
        let rest: [String]
        switch parseFlags(flags, arguments, into: &options, help: help, io: io) {
        case .parsed(let remaining): rest = remaining
        case .exit(let code): return code
        }
        guard rest.isEmpty else {
            io.errorLine("This command takes no arguments")
            return 1
        }
        switch options.format ?? "pretty" {
        case "pretty":
            io.line("Consul \(ConsulVersion.humanVersion)")
            io.line("Revision \(ConsulVersion.revision)")
            io.line(
                "Protocol \(ConsulVersion.protocolDefault) spoken by default, understands \(ConsulVersion.protocolMin) to \(ConsulVersion.protocolMax) (agent will automatically use protocol >\(ConsulVersion.protocolDefault) when speaking to compatible agents)"
            )
            return 0
        case "json":
            io.line("""
                {
                  "Version": "\(ConsulVersion.version)",
                  "Revision": "\(ConsulVersion.revision)",
                  "Prerelease": "\(ConsulVersion.prerelease)",
                  "FIPS": "",
                  "Messages": []
                }
                """)
            return 0
        case let other:
            io.errorLine("Error: format \"\(other)\" is not supported; use \"pretty\" or \"json\"")
            return 1
        }
    }
}

/// What a command does after parsing its flags: go on with the remaining arguments, or stop.
enum FlagParseOutcome {
    case parsed([String])
    case exit(Int32)
}

/// Parses flags the way every Consul command does: `-h` prints help and exits 0; a bad flag prints
/// the error and the help and exits 1.
func parseFlags<Options>(
    _ flags: FlagSet<Options>, _ arguments: [String], into options: inout Options, help: String, io: CommandIO
) -> FlagParseOutcome {
    do {
        return .parsed(try flags.parse(arguments, into: &options))
    } catch .helpRequested {
        io.err(help + (flags.flags.isEmpty ? "" : "\nCommand Options:\n\n" + flags.usage + "\n"))
        return .exit(0)
    } catch {
        io.errorLine(error.description)
        io.err(help)
        return .exit(1)
    }
}
