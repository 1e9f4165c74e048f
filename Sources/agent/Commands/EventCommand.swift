import ConsulCore
import Foundation

/// `consul event -name N [-node RE] [-service RE] [-tag RE] [payload]`: fires a user event through
/// `/v1/event/fire/N` and prints its ID.
enum EventCommand {
    struct Flags {
        var http = HTTPOptions()
        var name: String?
        var node: String?
        var service: String?
        var tag: String?
    }

    static let usage = """
        Usage: consul event [options] [payload]

          Dispatches a custom user event across a datacenter. An event must provide
          a name, but a payload is optional. Events support filtering using
          regular expressions on node name, service, and tag definitions.

        """

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<Flags>(commandName: "event")
        HTTPOptions.register(into: &f, \.http)
        f.string("name", \.name, usage: "Name of the event.")
        f.string("node", \.node, usage: "Regular expression to filter on node names.")
        f.string("service", \.service, usage: "Regular expression to filter on service instances.")
        f.string("tag", \.tag, usage: "Regular expression to filter on service tags. Must be used with -service.")
        var flags = Flags()
        let rest: [String]
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed(let parsed): rest = parsed
        }
        let help = usage + "\nCommand Options:\n\n" + f.usage + "\n"
        guard let name = flags.name, !name.isEmpty else {
            io.errorLine("Event name must be specified")
            io.errorLine("")
            io.err(help)
            return 1
        }
        for (label, pattern) in [("node", flags.node), ("service", flags.service), ("tag", flags.tag)] {
            guard let pattern, !pattern.isEmpty else { continue }
            do throws(LinearRegex.SyntaxError) {
                _ = try LinearRegex(pattern)
            } catch {
                io.errorLine("Failed to compile \(label) filter regexp: \(error.description)")
                return 1
            }
        }
        if !(flags.tag ?? "").isEmpty && (flags.service ?? "").isEmpty {
            io.errorLine("Cannot provide tag filter without service filter.")
            return 1
        }
        guard rest.count <= 1 else {
            io.errorLine("Too many command line arguments.")
            io.errorLine("")
            io.err(help)
            return 1
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            let client = try makeClient(flags.http)
            var query: [(String, String?)] = []
            for (parameter, value) in [("node", flags.node), ("service", flags.service), ("tag", flags.tag)] {
                if let value, !value.isEmpty { query.append((parameter, value)) }
            }
            if let dc = flags.http.datacenter, !dc.isEmpty { query.append(("dc", dc)) }
            let response: AgentHTTPClient.Response
            do throws(CommandFailure) {
                response = try HTTPCommand.call(client, "PUT", HTTPOptions.target("/v1/event/fire/" + name, query), body: Array((rest.first ?? "").utf8))
            } catch {
                throw CommandFailure("Error firing event: \(error.message)")
            }
            io.line("Event ID: \(try HTTPCommand.json(response).text("ID"))")
            return 0
        }
    }
}
