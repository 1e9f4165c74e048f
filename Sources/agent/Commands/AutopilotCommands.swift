import ConsulCore
import Foundation

/// `consul operator autopilot set-config` and `consul operator autopilot state`.
enum AutopilotCommands {
    struct SetFlags {
        var http = HTTPOptions()
        var cleanupDeadServers: Bool?
        var maxTrailingLogs: Int?
        var minQuorum: Int?
        var lastContactThreshold: Duration?
        var serverStabilizationTime: Duration?
        var redundancyZoneTag: String?
        var disableUpgradeMigration: Bool?
        var upgradeVersionTag: String?
    }

    /// Consul's flow: read the current configuration, change only the flags given, and write it
    /// back with `?cas=` its ModifyIndex so a concurrent change is not overwritten.
    static func setConfig(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = "Usage: consul operator autopilot set-config [options]\n\n  Modifies the current Autopilot configuration.\n"
        var f = FlagSet<SetFlags>(commandName: "operator autopilot set-config")
        HTTPOptions.register(into: &f, \.http, withQueryFlags: false)
        f.optionalBool("cleanup-dead-servers", \.cleanupDeadServers, usage: "Controls whether Consul will automatically remove dead servers when new ones are successfully added. Must be one of `true|false`.")
        f.int("max-trailing-logs", \.maxTrailingLogs, usage: "Controls the maximum number of log entries that a server can trail the leader by before being considered unhealthy.")
        f.int("min-quorum", \.minQuorum, usage: "Sets the minimum number of servers required in a cluster before autopilot can prune dead servers.")
        f.duration("last-contact-threshold", \.lastContactThreshold, usage: "Controls the maximum amount of time a server can go without contact from the leader before being considered unhealthy. Must be a duration value such as \"200ms\".")
        f.duration("server-stabilization-time", \.serverStabilizationTime, usage: "Controls the minimum amount of time a server must be stable in the 'healthy' state before being added to the cluster. Only takes effect if all servers are running Raft protocol version 3 or higher. Must be a duration value such as \"10s\".")
        f.string("redundancy-zone-tag", \.redundancyZoneTag, usage: "(Enterprise-only) Controls the node_meta tag name used for separating servers into different redundancy zones.")
        f.optionalBool("disable-upgrade-migration", \.disableUpgradeMigration, usage: "(Enterprise-only) Controls whether Consul will avoid promoting new servers until it can perform a migration. Must be one of `true|false`.")
        f.string("upgrade-version-tag", \.upgradeVersionTag, usage: "(Enterprise-only) The node_meta tag to use for version info when performing upgrade migrations. If left blank, the Consul version will be used.")
        var flags = SetFlags()
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed(let rest):
            guard rest.isEmpty else {
                io.errorLine("Too many arguments (expected 0, got \(rest.count))")
                return 1
            }
        }
        for (name, value) in [("max-trailing-logs", flags.maxTrailingLogs), ("min-quorum", flags.minQuorum)] where (value ?? 0) < 0 {
            io.errorLine("invalid value \"\(value!)\" for flag -\(name): parse error")
            return 1
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            let client = try makeClient(flags.http)
            let current: ConfigValue
            do throws(CommandFailure) {
                current = try HTTPCommand.json(try HTTPCommand.call(client, "GET", "/v1/operator/autopilot/configuration"))
            } catch {
                throw CommandFailure("Error querying Autopilot configuration: \(error.message)")
            }
            let body = Self.merged(current, flags)
            let answer: AgentHTTPClient.Response
            do throws(CommandFailure) {
                let index = current.text("ModifyIndex").isEmpty ? "0" : current.text("ModifyIndex")
                answer = try HTTPCommand.call(client, "PUT", HTTPOptions.target("/v1/operator/autopilot/configuration", [("cas", index)]), body: body)
            } catch {
                throw CommandFailure("Error setting Autopilot configuration: \(error.message)")
            }
            guard answer.text.trimmingCharacters(in: .whitespacesAndNewlines) == "true" else {
                throw CommandFailure("Configuration could not be atomically updated, please try again")
            }
            io.line("Configuration updated!")
            return 0
        }
    }

    /// The configuration to PUT: the current one with the given flags applied.
    static func merged(_ current: ConfigValue, _ flags: SetFlags) -> [UInt8] {
        func bool(_ key: String, _ flag: Bool?) -> Bool { flag ?? (current[key]?.boolValue ?? false) }
        func int(_ key: String, _ flag: Int?) -> Int { flag ?? Int(current[key]?.integerValue ?? 0) }
        func duration(_ key: String, _ flag: Duration?) -> String {
            flag.map(GoDuration.format) ?? current[key]?.stringValue ?? "0s"
        }
        var writer = JSONWriter()
        writer.object { o in
            o.field("CleanupDeadServers") { $0.bool(bool("CleanupDeadServers", flags.cleanupDeadServers)) }
            o.field("LastContactThreshold") { $0.string(duration("LastContactThreshold", flags.lastContactThreshold)) }
            o.field("MaxTrailingLogs") { $0.int(int("MaxTrailingLogs", flags.maxTrailingLogs)) }
            o.field("MinQuorum") { $0.int(int("MinQuorum", flags.minQuorum)) }
            o.field("ServerStabilizationTime") { $0.string(duration("ServerStabilizationTime", flags.serverStabilizationTime)) }
            o.field("RedundancyZoneTag") { $0.string(flags.redundancyZoneTag ?? current.text("RedundancyZoneTag")) }
            o.field("DisableUpgradeMigration") { $0.bool(bool("DisableUpgradeMigration", flags.disableUpgradeMigration)) }
            o.field("UpgradeVersionTag") { $0.string(flags.upgradeVersionTag ?? current.text("UpgradeVersionTag")) }
        }
        return writer.bytes
    }

    struct StateFlags {
        var http = HTTPOptions()
        var format: String?
    }

    static func state(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = "Usage: consul operator autopilot state [options]\n\n  Displays the current Autopilot state.\n"
        var f = FlagSet<StateFlags>(commandName: "operator autopilot state")
        HTTPOptions.register(into: &f, \.http, withQueryFlags: true)
        f.string("format", \.format, usage: "Output format {pretty|json}")
        var flags = StateFlags()
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed(let rest):
            guard rest.isEmpty else {
                io.errorLine("Too many arguments (expected 0, got \(rest.count))")
                return 1
            }
        }
        let format = flags.format ?? "pretty"
        guard format == "pretty" || format == "json" else {
            io.errorLine("Error: Unknown format: \(format)")
            return 1
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            let response: AgentHTTPClient.Response
            do throws(CommandFailure) {
                response = try HTTPCommand.call(try makeClient(flags.http), "GET", flags.http.target("/v1/operator/autopilot/state"))
            } catch {
                throw CommandFailure("Error querying Autopilot state: \(error.message)")
            }
            if format == "json" {
                io.line(String(decoding: JSONPretty.format(response.body), as: UTF8.self))
                return 0
            }
            io.out(Self.pretty(try HTTPCommand.json(response)))
            return 0
        }
    }

    /// Consul's pretty formatter for the autopilot state (open-source fields).
    static func pretty(_ state: ConfigValue) -> String {
        var out = ""
        out += "Healthy:                      \(state.text("Healthy"))\n"
        out += "Failure Tolerance:            \(state.text("FailureTolerance"))\n"
        out += "Optimistic Failure Tolerance: \(state.text("OptimisticFailureTolerance"))\n"
        out += "Leader:                       \(state.text("Leader"))\n"
        out += "Voters:\n"
        for voter in state["Voters"]?.arrayValue ?? [] { out += "   \(voter.stringValue ?? "")\n" }
        out += "\nServers:\n"
        let servers = state["Servers"]?.objectValue?.members ?? []
        for member in servers.sorted(by: { $0.key < $1.key }) {
            let id = member.key, server = member.value
            out += "   \(id)\n"
            out += "      Name:            \(server.text("Name"))\n"
            out += "      Address:         \(server.text("Address"))\n"
            out += "      Version:         \(server.text("Version"))\n"
            out += "      Status:          \(server.text("Status"))\n"
            out += "      Node Type:       \(server.text("NodeType"))\n"
            out += "      Node Status:     \(server.text("NodeStatus"))\n"
            out += "      Healthy:         \(server.text("Healthy"))\n"
            out += "      Last Contact:    \(server.text("LastContact"))\n"
            out += "      Last Term:       \(server.text("LastTerm"))\n"
            out += "      Last Index:      \(server.text("LastIndex"))\n"
            let meta = server["Meta"]?.objectValue?.members ?? []
            if !meta.isEmpty {
                out += "      Meta\n"
                for entry in meta.sorted(by: { $0.key < $1.key }) {
                    out += "         \(goQuote(entry.key)): \(goQuote(entry.value.stringValue ?? ""))\n"
                }
            }
            out += "\n"
        }
        return out
    }

    /// Go's `%q` for the plain strings node metadata holds.
    private static func goQuote(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
