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

          Shows recent log messages of a Consul agent, and attaches to the agent,
          outputting log messages as they occur in real time. The monitor lets you
          listen for log levels that may be filtered out of the Consul agent. For
          example your agent may only be logging at INFO level, but with the monitor
          you can see the DEBUG level logs.

        """

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<Flags>(commandName: "monitor")
        HTTPOptions.register(into: &f, \.http)
        f.string("log-level", \.logLevel, usage: "Log level of the agent.")
        f.bool("log-json", \.logJSON, usage: "Output logs in JSON format.")
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
