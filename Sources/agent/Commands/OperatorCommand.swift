import ConsulCore
import Foundation

/// `consul operator raft list-peers | remove-peer | transfer-leader` and
/// `consul operator autopilot get-config`, over the HTTP API (the agent forwards to the leader).
enum OperatorCommand {
    struct Flags {
        var http = HTTPOptions()
        var idFlag: String? = nil
        var addressFlag: String? = nil
        var id: String { idFlag ?? "" }
        var address: String { addressFlag ?? "" }
    }

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        let verb = arguments.prefix(2).joined(separator: " ")
        let rest = Array(arguments.dropFirst(2))
        switch verb {
        case "raft list-peers": return listPeers(rest, io: io)
        case "raft remove-peer": return removePeer(rest, io: io)
        case "raft transfer-leader": return transferLeader(rest, io: io)
        case "autopilot get-config": return autopilotConfig(rest, io: io)
        case "autopilot set-config": return AutopilotCommands.setConfig(rest, io: io)
        case "autopilot state": return AutopilotCommands.state(rest, io: io)
        default:
            io.errorLine("Error: 'consul operator \(verb)' is not implemented in this build yet; 'consul operator raft list-peers | remove-peer | transfer-leader' and 'consul operator autopilot get-config | set-config | state' are.")
            return 1
        }
    }

    /// Parses the HTTP flags (plus `-id`/`-address` where the command has them).
    private static func parse(_ name: String, _ arguments: [String], usage: String, io: CommandIO, id: String? = nil, address: String? = nil) -> Flags? {
        var f = FlagSet<Flags>(commandName: name)
        HTTPOptions.register(into: &f, \.http, withQueryFlags: true)
        if let id { f.string("id", \.idFlag, usage: id) }
        if let address { f.string("address", \.addressFlag, usage: address) }
        var flags = Flags()
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit: return nil
        case .parsed(let rest):
            guard rest.isEmpty else {
                io.errorLine("Too many arguments (expected 0, got \(rest.count))")
                return nil
            }
            return flags
        }
    }

    static func listPeers(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = "Usage: consul operator raft list-peers [options]\n\n  Displays the current Raft peer configuration.\n"
        guard let flags = parse("operator raft list-peers", arguments, usage: usage, io: io) else { return 1 }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            let response: AgentHTTPClient.Response
            do throws(CommandFailure) {
                response = try HTTPCommand.call(try makeClient(flags.http), "GET", flags.http.target("/v1/operator/raft/configuration"))
            } catch {
                throw CommandFailure("Error getting peers: \(error.message)")
            }
            let configuration = try HTTPCommand.json(response)
            let servers = configuration["Servers"]?.arrayValue ?? []
            let leaderIndex = servers.first { $0["Leader"]?.boolValue == true }.flatMap { Int($0.text("LastIndex")) } ?? 0
            var rows = [["Node", "ID", "Address", "State", "Voter", "RaftProtocol", "Commit Index", "Trails Leader By"]]
            for server in servers {
                let isLeader = server["Leader"]?.boolValue == true
                let index = Int(server.text("LastIndex")) ?? 0
                rows.append([
                    server.text("Node"), server.text("ID"), server.text("Address"), isLeader ? "leader" : "follower",
                    server.text("Voter"), server.text("ProtocolVersion"), String(index),
                    isLeader ? "-" : "\(max(leaderIndex - index, 0)) commits",
                ])
            }
            io.line(HTTPCommand.columns(rows))
            return 0
        }
    }

    static func removePeer(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = "Usage: consul operator raft remove-peer [options]\n\n  Remove the Consul server with given -id or -address from the Raft configuration.\n"
        guard let flags = parse(
            "operator raft remove-peer", arguments, usage: usage, io: io, id: "The ID to remove from the Raft configuration.",
            address: "The address to remove from the Raft configuration.")
        else { return 1 }
        guard flags.id.isEmpty != flags.address.isEmpty else {
            io.errorLine(flags.id.isEmpty ? "Error removing peer: an address or id is required for the peer to remove" : "Error removing peer: cannot give both an address and id")
            return 1
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            let parameter = flags.id.isEmpty ? ("address", flags.address) : ("id", flags.id)
            do throws(CommandFailure) {
                _ = try HTTPCommand.call(try makeClient(flags.http), "DELETE", HTTPOptions.target("/v1/operator/raft/peer", [(parameter.0, parameter.1)]))
            } catch {
                throw CommandFailure("Error removing peer: \(error.message)")
            }
            io.line("Removed peer with \(parameter.0) \"\(parameter.1)\"")
            return 0
        }
    }

    static func transferLeader(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = "Usage: consul operator raft transfer-leader [options]\n\n  Transfer raft leadership to another node (the most up-to-date voter when -id is not given).\n"
        guard let flags = parse("operator raft transfer-leader", arguments, usage: usage, io: io, id: "The ID of the node to transfer leadership to.") else {
            return 1
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            do throws(CommandFailure) {
                _ = try HTTPCommand.call(
                    try makeClient(flags.http), "POST", HTTPOptions.target("/v1/operator/raft/transfer-leader", flags.id.isEmpty ? [] : [("id", flags.id)]))
            } catch {
                throw CommandFailure("Error transferring leadership: \(error.message)")
            }
            io.line("Success! Leadership transferred.")
            return 0
        }
    }

    static func autopilotConfig(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = "Usage: consul operator autopilot get-config [options]\n\n  Displays the current Autopilot configuration.\n"
        guard let flags = parse("operator autopilot get-config", arguments, usage: usage, io: io) else { return 1 }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            let response: AgentHTTPClient.Response
            do throws(CommandFailure) {
                response = try HTTPCommand.call(try makeClient(flags.http), "GET", flags.http.target("/v1/operator/autopilot/configuration"))
            } catch {
                throw CommandFailure("Error querying Autopilot configuration: \(error.message)")
            }
            let config = try HTTPCommand.json(response)
            for key in [
                "CleanupDeadServers", "LastContactThreshold", "MaxTrailingLogs", "MinQuorum", "ServerStabilizationTime", "RedundancyZoneTag",
                "DisableUpgradeMigration", "UpgradeVersionTag",
            ] {
                let value = config.text(key)
                io.line("\(key) = \(key.hasSuffix("Tag") ? "\"\(value)\"" : value)")
            }
            return 0
        }
    }
}
