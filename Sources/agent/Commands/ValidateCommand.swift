/// `consul validate`: loads config files and directories exactly as `consul agent` would (same
/// parsers, merge and checks), so an operator can test a change before restarting agents.
///
/// Like Consul's, it does not require `data_dir`: the files checked are often shared by agents
/// that each get their data dir on the command line.
enum ValidateCommand {
    static let help = """
        Usage: consul validate [options] FILE_OR_DIRECTORY...

          Performs a thorough sanity test on Consul configuration files. For
          each file or directory given, the validate command will attempt to
          parse the contents just as the "consul agent" command would, and
          catch any errors.

          This is useful to do a test of the configuration only, without
          actually starting the agent. This performs all of the validation
          the agent would, so this should be given the complete set of
          configuration files that are going to be loaded by the agent.

          Returns 0 if the configuration is valid, or 1 if there are problems.

        """

    struct Options {
        var configFormat: String?
        var quiet = false
    }

    static var flagSet: FlagSet<Options> {
        var f = FlagSet<Options>(commandName: "validate")
        f.string("config-format", \.configFormat, usage: "Config files are in this format irrespective of their extension. Must be 'hcl' or 'json'", valueName: "string")
        f.bool("quiet", \.quiet, usage: "When given, a successful run will produce no output.")
        return f
    }

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        var options = Options()
        let paths: [String]
        switch parseFlags(flagSet, arguments, into: &options, help: help, io: io) {
        case .exit(let code):
            return code
        case .parsed(let rest):
            paths = rest
        }
        guard !paths.isEmpty else {
            io.errorLine("Must specify at least one config file or directory")
            return 1
        }
        var flags = AgentFlags()
        flags.configPaths = paths
        flags.configFormat = options.configFormat
        do throws(AgentConfigError) {
            let loaded = try AgentConfigLoader(flags: flags, requireDataDir: false).load()
            if !options.quiet {
                for warning in loaded.warnings { io.errorLine(warning) }
                io.line("Configuration is valid!")
            }
            return 0
        } catch {
            io.errorLine("Config validation failed: \(error)")
            return 1
        }
    }
}
