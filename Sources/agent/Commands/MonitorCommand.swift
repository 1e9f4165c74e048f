import Foundation
import Synchronization

/// `consul monitor [-log-level=info] [-log-json]`: follows the agent's log through
/// `/v1/agent/monitor` until interrupted (exit 0) or until the agent ends the stream (exit 1, with
/// Consul's "Remote side ended the monitor!" note).
enum MonitorCommand {
    struct Flags {
        var http = HTTPOptions()
        var logLevel: String? = nil
        var logJSON = false
    }

    static let usage = """
        Usage: consul monitor [options]

          Connects to a Consul agent and prints its log lines as they are written,
          until interrupted or until the agent goes away. The level asked for may be
          more detailed than the one the agent logs at: an agent writing INFO lines
          still shows DEBUG lines to a monitor that asks for them.

        """

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<Flags>(commandName: "monitor")
        // Like Consul's: the client flags only (the stream is this agent's; no -datacenter or -stale).
        HTTPOptions.register(into: &f, \.http, withQueryFlags: false)
        f.string("log-level", \.logLevel, usage: "The level of the lines to show: trace, debug, info (the default), warn or error. It may be more detailed than the agent's own -log-level.")
        f.bool("log-json", \.logJSON, usage: "Show each line as a JSON object, as the agent writes them with -log-json.")
        var flags = Flags()
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed: break
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            let client = try makeClient(flags.http)
            var query: [(String, String?)] = [("loglevel", flags.logLevel ?? "INFO")]
            if flags.logJSON { query.append(("logjson", nil)) }
            let signals = Mutex<ShutdownSignals?>(nil)
            defer { signals.withLock { $0?.cancel() } }
            let end: AgentHTTPClient.StreamEnd
            do throws(AgentHTTPClient.Failure) {
                end = try client.stream(
                    HTTPOptions.target("/v1/agent/monitor", query),
                    interrupt: { stop in signals.withLock { $0 = ShutdownSignals { _ in stop() } } },
                    onChunk: { io.out(String(decoding: $0, as: UTF8.self)) })
            } catch {
                throw CommandFailure("Error starting monitor: \(error.description)")
            }
            switch end {
            case .interrupted:
                return 0
            case .refused(let status, let message):
                throw CommandFailure("Error starting monitor: Unexpected response code: \(status) (\(message.trimmingCharacters(in: .whitespacesAndNewlines)))")
            case .closedByAgent:
                io.line("")
                io.line("Remote side ended the monitor! This usually means that the\nremote side has exited or crashed.")
                return 1
            }
        }
    }
}
