import ConsulCore
import Foundation

/// `consul members`, `info`, `join`, `leave` and `catalog …`: read-mostly
/// commands over the agent's HTTP API, printing what Consul prints.
enum ClusterCommands {
    struct Plain {
        var http = HTTPOptions()
    }

    /// Parses flags that are only the HTTP ones; returns the leftover arguments or an exit code.
    private static func parsePlain(_ name: String, _ arguments: [String], usage: String, io: CommandIO, queryFlags: Bool) -> (Plain, [String])? {
        var f = FlagSet<Plain>(commandName: name)
        HTTPOptions.register(into: &f, \.http, withQueryFlags: queryFlags)
        var flags = Plain()
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit: return nil
        case .parsed(let rest): return (flags, rest)
        }
    }

    // MARK: members

    struct MembersFlags {
        var http = HTTPOptions()
        var detailed = false
        var wan = false
        var status: String? = nil
    }

    static func members(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<MembersFlags>(commandName: "members")
        HTTPOptions.register(into: &f, \.http, withQueryFlags: false)
        f.bool("detailed", \.detailed, usage: "Provides detailed information about nodes.")
        f.bool("wan", \.wan, usage: "If the agent is in server mode, this can be used to return the other peers in the WAN pool.")
        f.string("status", \.status, usage: "If provided, output is filtered to only nodes matching the regular expression for status.")
        var flags = MembersFlags()
        let usage = "Usage: consul members [options]\n\n  Outputs the members of a running Consul agent.\n"
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed(let rest):
            guard rest.isEmpty else {
                io.errorLine("Too many arguments (expected 0, got \(rest.count))")
                return 1
            }
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            var statusFilter: LinearRegex?
            if let pattern = flags.status {
                do throws(LinearRegex.SyntaxError) {
                    statusFilter = try LinearRegex(pattern)
                } catch {
                    throw CommandFailure("Failed to compile status regexp: \(error.description)")
                }
            }
            let client = try makeClient(flags.http)
            let response = try HTTPCommand.call(client, "GET", HTTPOptions.target("/v1/agent/members", flags.wan ? [("wan", "1")] : []))
            var members = try HTTPCommand.json(response).arrayValue ?? []
            members = members.filter { member in
                guard let statusFilter else { return true }
                let status = statusName(member.text("Status"))
                return statusFilter.matches(status)
            }
            guard !members.isEmpty else { return 2 }
            members.sort { lhs, rhs in
                let lhsServer = lhs["Tags"]?.text("role") == "consul", rhsServer = rhs["Tags"]?.text("role") == "consul"
                if lhsServer != rhsServer { return lhsServer }
                return lhs.text("Name") < rhs.text("Name")
            }
            var rows: [[String]]
            if flags.detailed {
                rows = [["Node", "Address", "Status", "Tags"]]
                for member in members {
                    let tags = member["Tags"]?.objectValue?.members.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.stringValue ?? "")" } ?? []
                    rows.append([member.text("Name"), address(member), statusName(member.text("Status")), tags.joined(separator: ",")])
                }
            } else {
                rows = [["Node", "Address", "Status", "Type", "Build", "Protocol", "DC", "Partition", "Segment"]]
                for member in members {
                    let tags = member["Tags"]
                    let isServer = tags?.text("role") == "consul"
                    let build = tags?.text("build").split(separator: ":").first.map(String.init) ?? ""
                    rows.append([
                        member.text("Name"), address(member), statusName(member.text("Status")), isServer ? "server" : "client",
                        build, tags?.text("vsn") ?? "", tags?.text("dc") ?? "", "default", isServer ? "<all>" : "<default>",
                    ])
                }
            }
            io.line(HTTPCommand.columns(rows))
            return 0
        }
    }

    private static func address(_ member: ConfigValue) -> String {
        let address = member.text("Addr")
        return (address.contains(":") ? "[\(address)]" : address) + ":" + member.text("Port")
    }

    /// serf's member status numbers as Consul prints them.
    static func statusName(_ code: String) -> String {
        switch code {
        case "1": return "alive"
        case "2": return "leaving"
        case "3": return "left"
        case "4": return "failed"
        default: return "none"
        }
    }

    // MARK: info

    static func info(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = "Usage: consul info [options]\n\n  Provides debugging information for operators\n"
        guard let (flags, rest) = parsePlain("info", arguments, usage: usage, io: io, queryFlags: false) else { return 1 }
        guard rest.isEmpty else {
            io.errorLine("Too many arguments (expected 0, got \(rest.count))")
            return 1
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            let response = try HTTPCommand.call(try makeClient(flags.http), "GET", "/v1/agent/self")
            guard let stats = try HTTPCommand.json(response)["Stats"]?.objectValue else { throw CommandFailure("Error querying agent: no Stats in /v1/agent/self") }
            for section in stats.members.sorted(by: { $0.key < $1.key }) {
                io.line("\(section.key):")
                for entry in (section.value.objectValue?.members ?? []).sorted(by: { $0.key < $1.key }) {
                    io.line("\t\(entry.key) = \(entry.value.stringValue ?? "")")
                }
            }
            return 0
        }
    }

    // MARK: leave

    static func leave(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = "Usage: consul leave [options]\n\n  Causes the agent to gracefully leave the Consul cluster and shutdown.\n"
        guard let (flags, rest) = parsePlain("leave", arguments, usage: usage, io: io, queryFlags: false) else { return 1 }
        guard rest.isEmpty else {
            io.errorLine("Error! Too many arguments (expected 0, got \(rest.count))")
            return 1
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            do throws(CommandFailure) {
                _ = try HTTPCommand.call(try makeClient(flags.http), "PUT", "/v1/agent/leave")
            } catch {
                throw CommandFailure("Error leaving: \(error.message)")
            }
            io.line("Graceful leave complete")
            return 0
        }
    }

    // MARK: join

    struct JoinFlags {
        var http = HTTPOptions()
        var wan = false
    }

    static func join(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<JoinFlags>(commandName: "join")
        HTTPOptions.register(into: &f, \.http, withQueryFlags: false)
        f.bool("wan", \.wan, usage: "Joins a server to another server in the WAN pool.")
        var flags = JoinFlags()
        let usage = "Usage: consul join [options] address ...\n\n  Tells a running Consul agent (with \"consul agent\") to join the cluster\n  by specifying at least one existing member.\n"
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed(let addresses):
            guard !addresses.isEmpty else {
                io.errorLine("At least one address to join must be specified.")
                io.errorLine(usage)
                return 1
            }
            return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
                let client = try makeClient(flags.http)
                var joined = 0
                for address in addresses {
                    do throws(CommandFailure) {
                        _ = try HTTPCommand.call(client, "PUT", HTTPOptions.target("/v1/agent/join/\(address)", flags.wan ? [("wan", "1")] : []))
                        joined += 1
                    } catch {
                        io.errorLine("Error joining address '\(address)': \(error.message)")
                    }
                }
                guard joined > 0 else {
                    io.errorLine("Failed to join any nodes.")
                    return 1
                }
                io.line("Successfully joined cluster by contacting \(joined) nodes.")
                return 0
            }
        }
    }

    // MARK: force-leave

    struct ForceLeaveFlags {
        var http = HTTPOptions()
        var prune = false
        var wan = false
    }

    static func forceLeave(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<ForceLeaveFlags>(commandName: "force-leave")
        HTTPOptions.register(into: &f, \.http, withQueryFlags: false)
        f.bool("prune", \.prune, usage: "Remove agent forcibly from list of members")
        f.bool("wan", \.wan, usage: "Exclusively leave the agent from the WAN serf pool.")
        var flags = ForceLeaveFlags()
        let usage = "Usage: consul force-leave [options] name\n\n  Forces a member of a Consul cluster to enter the \"left\" state.\n"
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed(let names):
            guard names.count == 1 else {
                io.errorLine("A single node name must be specified to force leave.")
                io.errorLine(usage)
                return 1
            }
            return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
                var parameters: [(String, String?)] = []
                if flags.prune { parameters.append(("prune", "1")) }
                if flags.wan { parameters.append(("wan", "1")) }
                do throws(CommandFailure) {
                    _ = try HTTPCommand.call(try makeClient(flags.http), "PUT", HTTPOptions.target("/v1/agent/force-leave/\(names[0])", parameters))
                } catch {
                    throw CommandFailure("Error force leaving: \(error.message)")
                }
                return 0
            }
        }
    }

    // MARK: catalog

    struct CatalogFlags {
        var http = HTTPOptions()
        var detailed = false
        var service: String? = nil
        var node: String? = nil
        var tags = false
        var nodeMeta: [String] = []
        var near: String? = nil

        /// `-node-meta key=value` flags as the API's `node-meta=key:value` parameters.
        func metaParameters() throws(CommandFailure) -> [(String, String?)] {
            try nodeMeta.map { (text) throws(CommandFailure) -> (String, String?) in
                guard let equals = text.firstIndex(of: "=") else { throw CommandFailure("Error parsing -node-meta: missing \"=\" in \"\(text)\" (expected key=value)") }
                return ("node-meta", "\(text[..<equals]):\(text[text.index(after: equals)...])")
            }
        }
    }

    static func catalog(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = """
            Usage: consul catalog <subcommand> [options] [args]

              This command has subcommands for interacting with Consul's catalog.

            Subcommands:
                datacenters    Lists all known datacenters
                nodes          Lists all nodes in the given datacenter
                services       Lists all registered services in a datacenter

            """
        guard let subcommand = arguments.first, ["datacenters", "nodes", "services"].contains(subcommand) else {
            io.err(usage)
            return arguments.first.map { ["-h", "--help", "-help"].contains($0) } == true ? 0 : 1
        }
        var f = FlagSet<CatalogFlags>(commandName: "catalog \(subcommand)")
        HTTPOptions.register(into: &f, \.http, withQueryFlags: subcommand != "datacenters")
        if subcommand == "nodes" {
            f.bool("detailed", \.detailed, usage: "Output detailed information about the nodes including their addresses and metadata.")
            f.string("service", \.service, usage: "Service `id or name` to filter nodes. Only nodes which are providing the given service will be returned.")
            f.string("near", \.near, usage: "Node name to sort the node list in ascending order based on estimated round-trip time from that node. Passing \"_agent\" will use this agent's node for sorting.", valueName: "node-name")
        }
        if subcommand != "datacenters" {
            f.repeated("node-meta", \.nodeMeta, usage: "Metadata to filter nodes with the given `key=value` pairs. This flag may be specified multiple times to filter on multiple sources of metadata.", valueName: "key=value")
        }
        if subcommand == "services" {
            f.string("node", \.node, usage: "Node `id or name` for which to list services.")
            f.bool("tags", \.tags, usage: "Display each service's tags as a comma-separated list beside each service entry.")
        }
        var flags = CatalogFlags()
        switch parseFlags(f, Array(arguments.dropFirst()), into: &flags, help: "Usage: consul catalog \(subcommand) [options]\n", io: io) {
        case .exit(let code): return code
        case .parsed(let rest):
            guard rest.isEmpty else {
                io.errorLine("Too many arguments (expected 0, got \(rest.count))")
                return 1
            }
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            let client = try makeClient(flags.http)
            switch subcommand {
            case "datacenters":
                let response = try HTTPCommand.call(client, "GET", "/v1/catalog/datacenters")
                for dc in try HTTPCommand.json(response).arrayValue ?? [] { io.line(dc.stringValue ?? "") }
            case "nodes":
                let path = flags.service.map { "/v1/catalog/service/" + $0 } ?? "/v1/catalog/nodes"
                var parameters = try flags.metaParameters()
                if let near = flags.near { parameters.append(("near", near)) }
                let nodes = try HTTPCommand.json(try HTTPCommand.call(client, "GET", flags.http.target(path, parameters))).arrayValue ?? []
                guard !nodes.isEmpty else {
                    io.errorLine("No nodes match the given query - try expanding your search.")
                    return 0
                }
                var rows = [flags.detailed ? ["Node", "ID", "Address", "DC", "TaggedAddresses", "Meta"] : ["Node", "ID", "Address", "DC"]]
                // With -near the server's order (by round trip) is the answer; otherwise by name.
                for node in flags.near == nil ? nodes.sorted(by: { $0.text("Node") < $1.text("Node") }) : nodes {
                    let id = node.text("ID")
                    var row = [node.text("Node"), flags.detailed ? id : String(id.prefix(8)), node.text("Address"), node.text("Datacenter")]
                    if flags.detailed {
                        let pairs = { (key: String) in
                            (node[key]?.objectValue?.members ?? []).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.stringValue ?? "")" }.joined(separator: ", ")
                        }
                        row += [pairs("TaggedAddresses"), pairs(flags.service == nil ? "Meta" : "NodeMeta")]
                    }
                    rows.append(row)
                }
                io.line(HTTPCommand.columns(rows))
            default:
                var services: [(String, [String])] = []
                if let node = flags.node {
                    let body = try HTTPCommand.json(try HTTPCommand.call(client, "GET", flags.http.target("/v1/catalog/node/" + node, try flags.metaParameters())))
                    for entry in body["Services"]?.objectValue?.members ?? [] {
                        let name = entry.value.text("Service")
                        let tags = entry.value["Tags"]?.arrayValue?.compactMap(\.stringValue) ?? []
                        if let index = services.firstIndex(where: { $0.0 == name }) {
                            services[index].1 = Array(Set(services[index].1 + tags))
                        } else {
                            services.append((name, tags))
                        }
                    }
                } else {
                    let body = try HTTPCommand.json(try HTTPCommand.call(client, "GET", flags.http.target("/v1/catalog/services", try flags.metaParameters())))
                    services = (body.objectValue?.members ?? []).map { ($0.key, $0.value.arrayValue?.compactMap(\.stringValue) ?? []) }
                }
                services.sort { $0.0 < $1.0 }
                if flags.tags {
                    io.line(HTTPCommand.columns(services.map { [$0.0, $0.1.sorted().joined(separator: ",")] }))
                } else {
                    for service in services { io.line(service.0) }
                }
            }
            return 0
        }
    }
}
