import ConsulCore
import Dispatch
import Foundation
import Synchronization

/// `consul watch -type=T [options] [handler...]`: blocking queries against the agent for one data
/// view (`WatchPlan`). Without a handler the first result is printed as indented JSON and the
/// command ends, as Consul's does; with one, the handler runs (`$SHELL -c`, or directly with
/// `-shell=false`) with the result's JSON on stdin and `CONSUL_INDEX` set, on the first result and
/// on every change, until SIGINT/SIGTERM or a failing handler (exit 1).
enum WatchCommand {
    struct Flags {
        var http = HTTPOptions()
        var parameters = WatchPlan.Parameters()
        var shell = true
    }

    static let usage = """
        Usage: consul watch [options] [child...]

          Watches one view of Consul's data (a key, a key prefix, the services, the
          nodes, one service's instances, health checks or user events) with blocking
          queries. With a child command, the command runs with the view's JSON on its
          standard input each time the view changes; without one, the current view is
          printed as JSON and the watch ends.

          -type is required; the other options depend on the type.

        """

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<Flags>(commandName: "watch")
        HTTPOptions.register(into: &f, \.http)
        f.string("type", \.parameters.type, usage: "Specifies the watch type. One of key, keyprefix, services, nodes, service, checks, or event.")
        f.string("key", \.parameters.key, usage: "Specifies the key to watch. Only for 'key' type.")
        f.string("prefix", \.parameters.prefix, usage: "Specifies the key prefix to watch. Only for 'keyprefix' type.")
        f.string("service", \.parameters.service, usage: "Specifies the service to watch. Required for 'service' type, optional for 'checks' type.")
        f.repeated("tag", \.parameters.tags, usage: "Specifies the service tag(s) to filter on. Optional for 'service' type. May be specified multiple times.")
        f.string("passingonly", \.parameters.passingOnly, usage: "Specifies if only hosts passing all checks are displayed. Optional for 'service' type, must be one of `[true|false]`. Defaults false.")
        f.string("state", \.parameters.state, usage: "Specifies the states to watch. Optional for 'checks' type.")
        f.string("name", \.parameters.name, usage: "Specifies an event name to watch. Only for 'event' type.")
        f.bool("shell", \.shell, usage: "Use a shell to run the command (can set a custom shell via the SHELL environment variable).")
        var flags = Flags()
        let handler: [String]
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed(let rest): handler = rest
        }
        flags.parameters.datacenter = flags.http.datacenter
        flags.parameters.stale = flags.http.stale
        let plan: WatchPlan
        do throws(WatchPlan.PlanError) {
            plan = try WatchPlan.make(flags.parameters)
        } catch {
            io.errorLine(error.message)
            if flags.parameters.type?.isEmpty ?? true {
                io.errorLine("")
                io.err(usage + "\nCommand Options:\n\n" + f.usage + "\n")
            }
            return 1
        }
        let client: AgentHTTPClient
        do throws(CommandFailure) {
            client = try makeClient(flags.http)
        } catch {
            io.errorLine(error.message)
            return 1
        }
        // As Consul's watch, make sure the agent answers before watching anything.
        do {
            let response = try client.send(.GET, "/v1/agent/self")
            guard response.status == 200 else {
                io.errorLine("Error querying Consul agent: Unexpected response code: \(response.status) (\(response.text.trimmingCharacters(in: .whitespacesAndNewlines)))")
                return 1
            }
        } catch {
            io.errorLine("Error querying Consul agent: \(error.description)")
            return 1
        }
        let runner = HandlerRunner(command: handler, useShell: flags.shell)
        let stopSignals = installStopSignals(runner)
        defer { withExtendedLifetime(stopSignals) {} }
        return watch(plan, client: client, io: io) { index, result in
            guard !handler.isEmpty else {
                io.out(String(decoding: JSONPretty.format(json(result)), as: UTF8.self) + "\n")
                return .stop(0)
            }
            if let failure = runner.run(stdin: json(result) + [UInt8(ascii: "\n")], index: index) {
                io.errorLine("Error executing handler: \(failure)")
                return .stop(1)
            }
            return .keepWatching
        }
    }

    enum AfterDelivery {
        case keepWatching
        case stop(Int32)
    }

    /// The watch loop: read, decide (`WatchProgress`), deliver; failed reads are retried after
    /// Consul's backoff. Runs on the command's own thread, which it may block.
    static func watch(
        _ plan: WatchPlan, client: AgentHTTPClient, io: CommandIO, deliver: (UInt64, ConfigValue) -> AfterDelivery
    ) -> Int32 {
        var progress = WatchProgress(resetsWhenIndexGoesBackwards: plan.indexesAreOrdered)
        while true {
            let target = HTTPOptions.target(plan.path, plan.parameters(blockingOn: progress.blockingIndex).map { ($0.name, $0.value) })
            switch read(plan, target: target, client: client, previousIndex: progress.lastIndex) {
            case .success(let (index, result)):
                guard case .deliver(let index, let result) = progress.received(index: index, result: result) else { continue }
                if case .stop(let code) = deliver(index, result) { return code }
            case .failure(let failure):
                let retry = progress.failed()
                io.errorLine("[ERROR] watch: Watch errored: type=\(plan.type.rawValue) error=\"\(failure.description)\" retry=\(GoDuration.format(retry))")
                Thread.sleep(forTimeInterval: Double(retry.components.seconds))
            }
        }
    }

    /// One blocking read, turned into the watch's (index, result).
    private static func read(
        _ plan: WatchPlan, target: String, client: AgentHTTPClient, previousIndex: UInt64?
    ) -> Result<(UInt64, ConfigValue), AgentHTTPClient.Failure> {
        let response: AgentHTTPClient.Response
        do {
            response = try client.send(.GET, target)
        } catch {
            return .failure(error)
        }
        guard response.status == 200 || response.status == 404 else {
            return .failure(.init(description: "Unexpected response code: \(response.status) (\(response.text.trimmingCharacters(in: .whitespacesAndNewlines)))"))
        }
        guard let index = response.header("X-Consul-Index").flatMap({ UInt64($0) }) else {
            return .failure(.init(description: "Failed to parse X-Consul-Index: \"\(response.header("X-Consul-Index") ?? "")\""))
        }
        var body: ConfigValue?
        if response.status == 200 {
            do {
                body = try JSONConfigParser.parseValue(
                    bytes: response.body, file: "agent response", limits: ConfigParseLimits(maxInputBytes: AgentHTTPClient.maxResponseBytes))
            } catch {
                return .failure(.init(description: "Error decoding the agent's response: \(error)"))
            }
        }
        guard let result = plan.result(status: response.status, body: body, previousIndex: previousIndex) else {
            return .failure(.init(description: "Unexpected response code: \(response.status) (\(response.text.trimmingCharacters(in: .whitespacesAndNewlines)))"))
        }
        return .success((index, result))
    }

    static func json(_ value: ConfigValue) -> [UInt8] {
        var writer = JSONWriter()
        writer.value(value)
        return writer.bytes
    }

    /// SIGINT and SIGTERM end the watch at once with 0, as Consul's does; a handler that is running
    /// gets the signal too (Consul forwards it), so it is not left behind.
    private static func installStopSignals(_ runner: HandlerRunner) -> [any DispatchSourceSignal] {
        signal(SIGPIPE, SIG_IGN)
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                runner.forward(number)
                // Output is written unbuffered (write(2)), so nothing is lost by leaving at once.
                _exit(0)
            }
            source.resume()
            sources.append(source)
        }
        return sources
    }
}

/// Runs the watch's handler: one child at a time, stdin from a temporary file (a handler that
/// never reads cannot stall the watch), stdout and stderr shared with the watch.
final class HandlerRunner: Sendable {
    let command: [String]
    let useShell: Bool
    /// The handler running now, for forwarding signals.
    private let running = Mutex<ChildProcess?>(nil)

    init(command: [String], useShell: Bool) {
        self.command = command
        self.useShell = useShell
    }

    func forward(_ signal: Int32) {
        _ = running.withLock({ $0 })?.signal(signal)
    }

    /// Runs the handler to its end (blocking the watch's own thread); nil when it exited 0, else
    /// Go's wording of what happened.
    func run(stdin: [UInt8], index: UInt64) -> String? {
        var environment = ProcessInfo.processInfo.environment
        environment["CONSUL_INDEX"] = String(index)
        let argv = useShell ? ChildProcess.shellCommand(command, environment: environment) : command
        let inputPath = NSTemporaryDirectory() + "consul-watch-" + UUID().uuidString
        let inputFD = open(inputPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard inputFD >= 0 else { return "cannot create a file for the handler's input in \(NSTemporaryDirectory())" }
        defer {
            close(inputFD)
            unlink(inputPath)
        }
        let written = stdin.withUnsafeBytes { write(inputFD, $0.baseAddress, $0.count) }
        guard written == stdin.count, lseek(inputFD, 0, SEEK_SET) == 0 else { return "cannot write the handler's input to \(inputPath)" }
        let child: ChildProcess
        do throws(ChildProcess.SpawnError) {
            child = try ChildProcess(arguments: argv, environment: environment, input: .file(inputFD))
        } catch {
            return "fork/exec \(error.program): \(error.reason)"
        }
        running.withLock { $0 = child }
        defer { running.withLock { $0 = nil } }
        let exit = child.waitUntilExit()
        return exit.succeeded ? nil : exit.description
    }
}
