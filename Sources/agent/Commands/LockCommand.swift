import Dispatch
import Foundation
import Synchronization

/// `consul lock [options] prefix child...`: holds a lock (or with `-n N > 1` a semaphore) in the
/// KV store under `prefix` with a session of its own, runs the child while it holds it, and
/// releases it when the child exits. A lost lock, SIGINT or SIGTERM stops the child (SIGTERM, then
/// SIGKILL after 5 s) and the lock is released and its session destroyed.
enum LockCommand {
    struct Flags {
        var http = HTTPOptions()
        var limit: Int? = nil
        var name: String? = nil
        var timeout: Duration? = nil
        var monitorRetry: Int? = nil
        var childExitCode = false
        var passStdin = false
        var shell = true
        var verbose = false
    }

    /// Consul's API client's session TTL for locks and semaphores.
    static let sessionTTL = "15s"
    static let renewEvery: Duration = .milliseconds(7500)
    /// How long a child has to exit after SIGTERM before it gets SIGKILL (Consul's grace period).
    static let killGracePeriod: Duration = .seconds(5)
    static let defaultMonitorRetry = 3

    static let usage = """
        Usage: consul lock [options] prefix child...

          Takes a lock (or, with -n greater than 1, a place in a semaphore) in the KV
          store under the given prefix and runs the child command only while it is
          held; the child sees CONSUL_LOCK_HELD=true. When the child exits the lock
          is released. If the lock is lost, or this command is interrupted, the child
          gets SIGTERM and, if it is still running after a grace period, SIGKILL.

          Every holder of one prefix must use the same -n. The token used needs write
          access to the prefix.

        """

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<Flags>(commandName: "lock")
        HTTPOptions.register(into: &f, \.http)
        f.bool("child-exit-code", \.childExitCode, usage: "Exit with code 2 when the child fails (by default a failing child still gives exit code 0).")
        f.int("monitor-retry", \.monitorRetry, usage: "How many failed checks of the held lock (server errors, the agent unreachable) are retried, 2s apart, before the lock counts as lost. Retrying rides out short outages at the price of noticing a real loss later. Default 3; 0 turns retries off.")
        f.int("n", \.limit, usage: "How many holders may run at once. 1 (the default) is a lock; more is a semaphore.")
        f.string("name", \.name, usage: "The name of the lock's session. By default it names the child command and the prefix.")
        f.bool("pass-stdin", \.passStdin, usage: "Give the child this command's standard input (by default it reads /dev/null).")
        f.bool("shell", \.shell, usage: "Run the child through a shell: $SHELL, or /bin/sh when SHELL is unset. With -shell=false the first argument is the program.")
        f.duration("timeout", \.timeout, usage: "How long to wait for the lock before giving up, as a duration (\"10s\", \"2m\"). 0, the default, waits as long as it takes.")
        f.bool("verbose", \.verbose, usage: "Print each step: setting up, acquiring, starting and stopping the child, releasing.")
        var flags = Flags()
        let rest: [String]
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed(let parsed): rest = parsed
        }
        guard rest.count >= 2 else {
            io.errorLine("Key prefix and child command must be specified")
            return 1
        }
        var prefix = Substring(rest[0])
        while prefix.hasPrefix("/") { prefix = prefix.dropFirst() }
        while prefix.hasSuffix("/") { prefix = prefix.dropLast() }
        let child = Array(rest.dropFirst())
        if let timeout = flags.timeout, timeout < .zero {
            io.errorLine("Timeout must be positive")
            return 1
        }
        let limit = flags.limit ?? 1
        guard limit > 0 else {
            io.errorLine("Lock holder limit must be positive")
            return 1
        }
        let client: AgentHTTPClient
        do throws(CommandFailure) {
            client = try makeClient(flags.http)
        } catch {
            io.errorLine(error.message)
            return 1
        }
        let name = flags.name ?? "Consul lock for '\(child.joined(separator: " "))' at '\(prefix)'"
        let session = LockSession(
            io: io, verbose: flags.verbose, client: KVLockingClient(http: client, datacenter: flags.http.datacenter), prefix: String(prefix),
            limit: limit, name: name, child: child, shell: flags.shell, passStdin: flags.passStdin,
            // Zero means no timeout, as in Consul.
            timeout: flags.timeout.flatMap { $0 > .zero ? $0 : nil },
            monitorRetries: max(0, flags.monitorRetry ?? defaultMonitorRetry), propagateChildExit: flags.childExitCode)

        let shutdown = OneShotEvent<Int32>()
        let signals = ShutdownSignals { shutdown.fire($0) }
        defer { signals.cancel() }
        let result = Mutex<Int32>(1)
        let finished = DispatchSemaphore(value: 0)
        Task {
            let code = await session.run(shutdown: shutdown)
            result.withLock { $0 = code }
            finished.signal()
        }
        finished.wait()
        return result.withLock { $0 }
    }
}

/// One run of `consul lock`, from the agent check to the cleanup, in Consul's order and words.
private struct LockSession: Sendable {
    let io: CommandIO
    let verbose: Bool
    let client: KVLockingClient
    let prefix: String
    let limit: Int
    let name: String
    let child: [String]
    let shell: Bool
    let passStdin: Bool
    let timeout: Duration?
    let monitorRetries: Int
    let propagateChildExit: Bool

    private func info(_ text: String) { if verbose { io.line(text) } }

    private enum AcquireOutcome: Sendable {
        case acquired, notAcquired, shutdown
        case failed(KVLockError)
    }

    private enum HoldOutcome: Sendable {
        case shutdown, lost
        case childExited(ChildProcess.Exit)
    }

    func run(shutdown: OneShotEvent<Int32>) async -> Int32 {
        do {
            _ = try await client.http.send(.GET, "/v1/agent/self")
        } catch {
            io.errorLine("Error querying Consul agent: \(error.description)")
            return 1
        }
        let lock: any KVLocking
        if limit == 1 {
            let key = KVPath.join(prefix, ".lock")
            info("Setting up lock at path: \(key)")
            lock = KVLock(client: client, key: key)
        } else {
            info("Setting up semaphore (limit \(limit)) at prefix: \(prefix)")
            lock = KVSemaphore(client: client, prefix: prefix, limit: limit)
        }

        info("Attempting lock acquisition")
        let sessionID: String
        do {
            // A semaphore's session deletes its contender key when it is invalidated (as Consul's).
            sessionID = try await client.createSession(name: name, ttl: LockCommand.sessionTTL, deleteOnInvalidate: limit > 1)
        } catch {
            io.errorLine("Lock acquisition failed: failed to create session: \(error.description)")
            return 1
        }
        // Kept alive until the lock is released, then destroyed (which releases whatever it still holds).
        let renewal = Task { [client] in
            while !Task.isCancelled {
                try? await Task.sleep(for: LockCommand.renewEvery)
                if Task.isCancelled { return }
                if (try? await client.renewSession(sessionID)) == false { return }
            }
        }
        func endSession() async {
            renewal.cancel()
            try? await client.destroySession(sessionID)
        }

        let timeout = self.timeout
        let acquired = await withTaskGroup(of: AcquireOutcome.self) { group -> AcquireOutcome in
            group.addTask {
                do throws(KVLockError) {
                    return try await lock.acquire(session: sessionID, timeout: timeout) ? .acquired : .notAcquired
                } catch {
                    return .failed(error)
                }
            }
            group.addTask {
                _ = await shutdown.wait()
                return .shutdown
            }
            let first = await group.next() ?? .shutdown
            group.cancelAll()
            return first
        }
        switch acquired {
        case .acquired:
            break
        case .notAcquired, .shutdown:
            await endSession()
            io.errorLine("Shutdown triggered or timeout during lock acquisition")
            return 1
        case .failed(let error):
            await endSession()
            io.errorLine("Lock acquisition failed: \(error.description)")
            return 1
        }

        var childFailed = false
        if shutdown.value != nil {
            io.errorLine("Shutdown triggered during lock acquisition")
        } else {
            childFailed = await runChild(lock: lock, sessionID: sessionID, shutdown: shutdown)
        }

        // Release, then the session goes (Consul's Unlock), then the key if nobody uses it.
        do throws(KVLockError) {
            try await lock.release(session: sessionID)
        } catch {
            await endSession()
            io.errorLine("Lock release failed: \(error.description)")
            return 1
        }
        await endSession()
        do throws(KVLockError) {
            try await lock.cleanup()
            info("Cleanup succeeded")
        } catch {
            if error.description == lock.inUse.description {
                info("Cleanup aborted, lock in use")
            } else {
                io.errorLine("Lock cleanup failed: \(error.description)")
                return 1
            }
        }
        return childFailed && propagateChildExit ? 2 : 0
    }

    /// Runs the child while the lock is held; true when it failed (did not start, or exited non-zero).
    private func runChild(lock: any KVLocking, sessionID: String, shutdown: OneShotEvent<Int32>) async -> Bool {
        info("Starting handler")
        var environment = ProcessInfo.processInfo.environment
        environment["CONSUL_LOCK_HELD"] = "true"
        let arguments = shell ? ChildProcess.shellCommand(child, environment: environment) : child
        if passStdin { info("Stdin passed to handler process") }
        let process: ChildProcess
        do throws(ChildProcess.SpawnError) {
            process = try ChildProcess(arguments: arguments, environment: environment, input: passStdin ? .inherited : .devNull)
        } catch {
            io.errorLine("Error starting handler: \(error.description)")
            return true
        }

        let monitorRetries = self.monitorRetries
        let outcome = await withTaskGroup(of: HoldOutcome?.self) { group -> HoldOutcome in
            group.addTask { await process.exited.wait().map { .childExited($0) } }
            group.addTask { await shutdown.wait().map { _ in .shutdown } }
            group.addTask {
                await lock.monitor(session: sessionID, monitorRetries: monitorRetries)
                return Task.isCancelled ? nil : .lost
            }
            var first: HoldOutcome = .lost
            while let next = await group.next() {
                if let next {
                    first = next
                    break
                }
            }
            group.cancelAll()
            return first
        }
        switch outcome {
        case .childExited(let exit):
            if !exit.succeeded { io.errorLine("Error running handler: \(exit.description)") }
            info("Child terminated, releasing lock")
            return !exit.succeeded
        case .shutdown:
            info("Shutdown triggered, killing child")
        case .lost:
            info("Lock lost, killing child")
        }
        let exit = await stop(process)
        if let exit, !exit.succeeded { io.errorLine("Error running handler: \(exit.description)") }
        return exit.map { !$0.succeeded } ?? true
    }

    /// SIGTERM to the child's process group, then SIGKILL if it is still there after the grace period.
    private func stop(_ process: ChildProcess) async -> ChildProcess.Exit? {
        info("Terminating child pid \(process.pid)")
        if !process.signal(SIGTERM) {
            io.errorLine("Failed to terminate \(process.pid): \(String(cString: strerror(errno)))")
        }
        if let exit = await Self.exit(of: process, within: LockCommand.killGracePeriod) {
            info("Child terminated")
            return exit
        }
        info("Child did not exit after grace period of \(Int(LockCommand.killGracePeriod.components.seconds))s")
        info("Killing child pid \(process.pid)")
        if !process.signal(SIGKILL) {
            io.errorLine("Failed to kill \(process.pid): \(String(cString: strerror(errno)))")
        }
        return await Self.exit(of: process, within: LockCommand.killGracePeriod)
    }

    private static func exit(of process: ChildProcess, within limit: Duration) async -> ChildProcess.Exit? {
        await withTaskGroup(of: ChildProcess.Exit?.self) { group in
            group.addTask { await process.exited.wait() }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
