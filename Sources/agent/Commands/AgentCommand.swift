/// `consul agent`: reads and checks the command line and the configuration, then runs the agent
/// until a signal stops it.
enum AgentCommand {
    static let help = """
        Usage: consul agent [options]

          Starts the Consul agent and runs until an interrupt is received. The
          agent represents a single node in a cluster.

        """

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        var flags = AgentFlags()
        switch parseFlags(AgentFlags.flagSet, arguments, into: &flags, help: help, io: io) {
        case .exit(let code):
            return code
        case .parsed(let rest):
            guard rest.isEmpty else {
                io.errorLine("==> Unexpected extra arguments: \(rest.joined(separator: " "))")
                return 1
            }
        }
        for warning in flags.retiredFlagWarnings {
            io.errorLine("==> WARNING: \(warning)")
        }
        let loaded: LoadedAgentConfig
        do throws(AgentConfigError) {
            loaded = try AgentConfigLoader(flags: flags).load()
        } catch {
            for problem in error.problems { io.errorLine("==> \(problem)") }
            return 1
        }
        for warning in loaded.warnings {
            io.errorLine("==> WARNING: \(warning)")
        }
        // `consul reload` and SIGHUP read the same files and flags again.
        let reloadFlags = flags
        return AgentProcess.run(loaded, io: io) { () throws(AgentConfigError) -> LoadedAgentConfig in
            try AgentConfigLoader(flags: reloadFlags).load()
        }
    }
}
