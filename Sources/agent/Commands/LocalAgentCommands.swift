import ConsulCore
import Foundation

/// `consul services register|deregister`, `consul maint` and `consul reload`: commands about the
/// agent's own services and checks, over `/v1/agent/*`.
enum LocalAgentCommands {
    // MARK: services

    struct ServiceFlags {
        var http = HTTPOptions()
        var name: String?
        var id: String?
        var address: String?
        var port: Int?
        var tags: [String] = []
        var meta: [String] = []
    }

    static func services(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = """
            Usage: consul services <subcommand> [options] [args]

              This command has subcommands for interacting with services registered
              with the local agent.

            Subcommands:
                deregister    Deregister services with the local agent
                register      Register services with the local agent

            """
        guard let subcommand = arguments.first, ["register", "deregister"].contains(subcommand) else {
            io.err(usage)
            return arguments.first.map { ["-h", "-help", "--help"].contains($0) } ?? false ? 0 : 1
        }
        var f = FlagSet<ServiceFlags>(commandName: "services \(subcommand)")
        HTTPOptions.register(into: &f, \.http, withQueryFlags: false)
        if subcommand == "register" {
            f.string("name", \.name, usage: "Name of the service to register.")
            f.string("id", \.id, usage: "ID of the service to register. Defaults to the name.")
            f.string("address", \.address, usage: "Address of the service to register.")
            f.int("port", \.port, usage: "Port of the service to register.")
            f.repeated("tag", \.tags, usage: "Tag to add to the service. This flag can be specified multiple times.")
            f.repeated("meta", \.meta, usage: "Metadata to set on the service, formatted as key=value. This flag can be specified multiple times.")
        } else {
            f.string("id", \.id, usage: "ID to delete. This must not be set if arguments are given.")
        }
        var flags = ServiceFlags()
        let help = subcommand == "register"
            ? "Usage: consul services register [options] [FILE...]\n\n  Register one or more services using the local agent API.\n"
            : "Usage: consul services deregister [options] [FILE...]\n\n  Deregister one or more services that were previously registered with\n  the local agent.\n"
        switch parseFlags(f, Array(arguments.dropFirst()), into: &flags, help: help, io: io) {
        case .exit(let code): return code
        case .parsed(let files):
            return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
                subcommand == "register" ? try register(flags, files: files, io: io) : try deregister(flags, files: files, io: io)
            }
        }
    }

    private static func register(_ flags: ServiceFlags, files: [String], io: CommandIO) throws(CommandFailure) -> Int32 {
        var definitions: [ServiceDefinition]
        if let name = flags.name {
            guard files.isEmpty else { throw CommandFailure("Error: flags and file arguments cannot be used together") }
            var service = ServiceDefinition(name: name)
            service.id = flags.id ?? ""
            service.address = flags.address ?? ""
            service.port = flags.port ?? 0
            service.tags = flags.tags
            for entry in flags.meta {
                guard let equals = entry.firstIndex(of: "=") else { throw CommandFailure("Error: -meta must be key=value, not \"\(entry)\"") }
                service.meta[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
            }
            definitions = [service]
        } else {
            guard !files.isEmpty else { throw CommandFailure("Error: a service name (-name) or at least one file argument is required") }
            definitions = try servicesInFiles(files)
        }
        let client = try makeClient(flags.http)
        for service in definitions {
            do throws(CommandFailure) {
                _ = try HTTPCommand.call(client, "PUT", "/v1/agent/service/register", body: DefinitionJSON.service(service))
            } catch {
                throw CommandFailure("Error registering service \"\(service.name)\": \(error.message)")
            }
            io.line("Registered service: \(service.name)")
        }
        return 0
    }

    private static func deregister(_ flags: ServiceFlags, files: [String], io: CommandIO) throws(CommandFailure) -> Int32 {
        let ids: [String]
        if let id = flags.id {
            guard files.isEmpty else { throw CommandFailure("Error: -id and file arguments cannot be used together") }
            ids = [id]
        } else {
            guard !files.isEmpty else { throw CommandFailure("Error: a service ID (-id) or at least one file argument is required") }
            ids = try servicesInFiles(files).map(\.effectiveID)
        }
        let client = try makeClient(flags.http)
        for id in ids {
            do throws(CommandFailure) {
                _ = try HTTPCommand.call(client, "PUT", HTTPOptions.target("/v1/agent/service/deregister/\(id)", []))
            } catch {
                throw CommandFailure("Error deregistering service \"\(id)\": \(error.message)")
            }
            io.line("Deregistered service: \(id)")
        }
        return 0
    }

    /// The `service`/`services` definitions of config files (JSON or HCL, by extension).
    static func servicesInFiles(_ files: [String]) throws(CommandFailure) -> [ServiceDefinition] {
        var result: [ServiceDefinition] = []
        for file in files {
            guard let format = ConfigFormat(fileName: file) else { throw CommandFailure("Error: \(file): name the file *.json or *.hcl") }
            let value: ConfigValue
            do {
                value = try format.parse(bytes: try ConfigFiles.read(file), file: file)
            } catch {
                throw CommandFailure("Error: \(error)")
            }
            var found = false
            for key in ["service", "services"] {
                guard let entry = value[key], !entry.isNull else { continue }
                for element in entry.arrayValue ?? [entry] {
                    do throws(DefinitionError) {
                        result.append(try DefinitionParser(strict: true).service(element))
                        found = true
                    } catch {
                        throw CommandFailure("Error: \(file): \(key): \(error.message)")
                    }
                }
            }
            guard found else { throw CommandFailure("Error: \(file) has no service definition (a \"service\" or \"services\" block)") }
        }
        return result
    }

    // MARK: maint

    struct MaintFlags {
        var http = HTTPOptions()
        var enable = false
        var disable = false
        var service: String?
        var reason: String?
    }

    static func maint(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<MaintFlags>(commandName: "maint")
        HTTPOptions.register(into: &f, \.http, withQueryFlags: false)
        f.bool("enable", \.enable, usage: "Enable maintenance mode.")
        f.bool("disable", \.disable, usage: "Disable maintenance mode.")
        f.string("service", \.service, usage: "Control maintenance mode for a specific service ID.")
        f.string("reason", \.reason, usage: "Text describing the maintenance reason.")
        var flags = MaintFlags()
        let usage = "Usage: consul maint [options]\n\n  Places a node or service into maintenance mode. During maintenance mode,\n  the node or service will be excluded from all queries through the DNS\n  or API interfaces, effectively taking it out of the pool of available\n  nodes.\n"
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed(let rest):
            guard rest.isEmpty else {
                io.errorLine("Too many arguments (expected none)")
                return 1
            }
            if flags.enable && flags.disable {
                io.errorLine("Only one of -enable or -disable may be provided")
                return 1
            }
            if !flags.enable && flags.reason != nil {
                io.errorLine("Reason may only be provided with -enable")
                return 1
            }
            if !flags.enable && !flags.disable && flags.service != nil {
                io.errorLine("Service requires either -enable or -disable")
                return 1
            }
            return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
                let client = try makeClient(flags.http)
                guard flags.enable || flags.disable else { return try listMaintenance(client, io: io) }
                var parameters: [(String, String?)] = [("enable", flags.enable ? "true" : "false")]
                if let reason = flags.reason { parameters.append(("reason", reason)) }
                let state = flags.enable ? "enabled" : "disabled"
                if let service = flags.service {
                    _ = try HTTPCommand.call(client, "PUT", HTTPOptions.target("/v1/agent/service/maintenance/\(service)", parameters))
                    io.line("Service maintenance is now \(state) for \"\(service)\"")
                } else {
                    _ = try HTTPCommand.call(client, "PUT", HTTPOptions.target("/v1/agent/maintenance", parameters))
                    io.line("Node maintenance is now \(state)")
                }
                return 0
            }
        }
    }

    /// Without -enable/-disable, Consul lists what is in maintenance now.
    private static func listMaintenance(_ client: AgentHTTPClient, io: CommandIO) throws(CommandFailure) -> Int32 {
        let checks = try HTTPCommand.json(try HTTPCommand.call(client, "GET", "/v1/agent/checks"))
        for member in checks.objectValue?.members ?? [] {
            let check = member.value
            let reason = check["Notes"]?.stringValue ?? ""
            if member.key == LocalState.nodeMaintenanceCheckID {
                io.line("Node:")
                io.line("  Name:   \(check["Node"]?.stringValue ?? "")")
                io.line("  Reason: \(reason)")
                io.line("")
            } else if member.key.hasPrefix(LocalState.serviceMaintenancePrefix) {
                io.line("Service:")
                io.line("  ID:     \(check["ServiceID"]?.stringValue ?? "")")
                io.line("  Reason: \(reason)")
                io.line("")
            }
        }
        return 0
    }

    // MARK: reload

    static func reload(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<ClusterCommands.Plain>(commandName: "reload")
        HTTPOptions.register(into: &f, \.http, withQueryFlags: false)
        var flags = ClusterCommands.Plain()
        let usage = "Usage: consul reload\n\n  Causes the agent to reload configurations. This can be used instead\n  of sending the SIGHUP signal to the agent.\n"
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed:
            return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
                do throws(CommandFailure) {
                    _ = try HTTPCommand.call(try makeClient(flags.http), "PUT", "/v1/agent/reload")
                } catch {
                    throw CommandFailure("Error reloading: \(error.message)")
                }
                io.line("Configuration reload triggered")
                return 0
            }
        }
    }
}
