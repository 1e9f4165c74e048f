/// The `consul` command line: finds the command named by the first argument and runs it.
///
/// Commands carry Consul's names and one-line synopses, so `consul -h` reads like Consul's. A command
/// this build does not have yet is listed and, when run, says so and exits 1: never a fake success.
package enum ConsulCLI {
    package static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        guard let first = arguments.first else {
            io.err(usage)
            return 1
        }
        switch first {
        case "-h", "--help", "-help", "help":
            io.err(usage)
            return 0
        case "-v", "--version", "-version":
            return VersionCommand.run(Array(arguments.dropFirst()), io: io)
        default:
            break
        }
        guard let command = commands.first(where: { $0.name == first }) else {
            if first.hasPrefix("-") {
                io.errorLine("flag provided but not defined: \(first)")
            } else {
                io.errorLine("Unknown command: \"\(first)\"")
            }
            io.err(usage)
            return 1
        }
        return command.run(Array(arguments.dropFirst()), io)
    }

    struct Command: Sendable {
        let name: String
        let synopsis: String
        let run: @Sendable ([String], CommandIO) -> Int32
    }

    /// Every top-level command Consul has, in its order (alphabetical).
    static let commands: [Command] = [
        planned("acl", "Interact with Consul's ACLs"),
        Command(name: "agent", synopsis: "Runs a Consul agent", run: AgentCommand.run),
        Command(name: "catalog", synopsis: "Interact with the catalog", run: ClusterCommands.catalog),
        outOfScope("config", "Interact with Consul's Centralized Configurations"),
        outOfScope("connect", "Interact with Consul Connect"),
        planned("debug", "Records a debugging archive for operators"),
        Command(name: "event", synopsis: "Fire a new event", run: EventCommand.run),
        planned("exec", "Executes a command on Consul nodes"),
        Command(name: "force-leave", synopsis: "Forces a member of the cluster to enter the \"left\" state", run: ClusterCommands.forceLeave),
        Command(name: "info", synopsis: "Provides debugging information for operators.", run: ClusterCommands.info),
        outOfScope("intention", "Interact with Connect service intentions"),
        Command(name: "join", synopsis: "Tell Consul agent to join cluster", run: ClusterCommands.join),
        Command(name: "keygen", synopsis: "Generates a new encryption key", run: KeygenCommand.run),
        Command(name: "keyring", synopsis: "Manages gossip layer encryption keys", run: KeyringCommand.run),
        Command(name: "kv", synopsis: "Interact with the key-value store", run: KVCommand.run),
        Command(name: "leave", synopsis: "Gracefully leaves the Consul cluster and shuts down", run: ClusterCommands.leave),
        Command(name: "lock", synopsis: "Execute a command holding a lock", run: LockCommand.run),
        planned("login", "Login to Consul using an auth method"),
        planned("logout", "Destroy a Consul token created with login"),
        Command(name: "maint", synopsis: "Controls node or service maintenance mode", run: LocalAgentCommands.maint),
        Command(name: "members", synopsis: "Lists the members of a Consul cluster", run: ClusterCommands.members),
        Command(name: "monitor", synopsis: "Stream logs from a Consul agent", run: MonitorCommand.run),
        Command(name: "operator", synopsis: "Provides cluster-level tools for Consul operators", run: OperatorCommand.run),
        outOfScope("peering", "Create and manage peering connections between Consul clusters"),
        Command(name: "reload", synopsis: "Triggers the agent to reload configuration files", run: LocalAgentCommands.reload),
        planned("rtt", "Estimates network round trip time between nodes"),
        Command(name: "services", synopsis: "Interact with services", run: LocalAgentCommands.services),
        Command(name: "snapshot", synopsis: "Saves, restores and inspects snapshots of Consul server state", run: SnapshotCommand.run),
        Command(name: "tls", synopsis: "Builtin helpers for creating CAs and certificates", run: TLSCommand.run),
        outOfScope("troubleshoot", "CLI tools for troubleshooting Consul service mesh"),
        Command(name: "validate", synopsis: "Validate config files/directories", run: ValidateCommand.run),
        Command(name: "version", synopsis: "Prints the Consul version", run: VersionCommand.run),
        Command(name: "watch", synopsis: "Watch for changes in Consul", run: WatchCommand.run),
    ]

    static var usage: String {
        let width = commands.map(\.name.count).max() ?? 0
        let lines = commands.map { "    " + $0.name.padding(to: width + 4) + $0.synopsis }
        return """
            Usage: consul [--version] [--help] <command> [<args>]

            Available commands are:
            \(lines.joined(separator: "\n"))

            """
    }

    /// A Consul command this build does not have yet.
    private static func planned(_ name: String, _ synopsis: String) -> Command {
        Command(name: name, synopsis: synopsis) { _, io in
            io.errorLine("Error: 'consul \(name)' is not implemented in this build yet.")
            return 1
        }
    }

    /// Service-mesh commands: outside what this edition does at all.
    private static func outOfScope(_ name: String, _ synopsis: String) -> Command {
        Command(name: name, synopsis: synopsis) { _, io in
            io.errorLine("Error: 'consul \(name)' belongs to Consul's service mesh, which this edition does not include.")
            return 1
        }
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
