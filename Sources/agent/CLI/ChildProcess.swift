import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A command run by the CLI (`consul lock`'s child, `consul watch`'s handler): in its own process
/// group (so the whole tree can be stopped), with the signals this process ignores back at their
/// defaults, standard output and error shared. A dedicated thread waits for it, so no task or
/// event loop ever blocks on `waitpid`.
final class ChildProcess: Sendable {
    /// How a child ended, in Go's words for `Error running handler: …`.
    enum Exit: Sendable, Equatable {
        case code(Int32)
        case signal(Int32)

        var succeeded: Bool { self == .code(0) }

        var description: String {
            switch self {
            case .code(let code): return "exit status \(code)"
            case .signal(let number): return "signal: \(String(cString: strsignal(number)).lowercased())"
            }
        }
    }

    struct SpawnError: Error, CustomStringConvertible {
        var program: String
        /// The errno of the failed spawn (0: there was nothing to run).
        var code: Int32

        var reason: String { code == 0 ? "no command to run" : String(cString: strerror(code)) }
        var description: String { "exec: \"\(program)\": \(reason)" }
    }

    /// Where the child's standard input comes from.
    enum Input: Sendable {
        case devNull
        /// This process's own standard input.
        case inherited
        /// An open file, read from its current offset.
        case file(Int32)
    }

    let pid: pid_t
    let exited = OneShotEvent<Exit>()
    private let exitedSignal = DispatchSemaphore(value: 0)

    /// Consul's way of running a command line (`ExecScript`): `$SHELL -c` (else `/bin/sh -c`)
    /// with the arguments joined by spaces.
    static func shellCommand(_ command: [String], environment: [String: String]) -> [String] {
        let shell = environment["SHELL"].flatMap { $0.isEmpty ? nil : $0 } ?? "/bin/sh"
        return [shell, "-c", command.joined(separator: " ")]
    }

    /// `arguments` is the program and its arguments (looked up on PATH).
    init(arguments: [String], environment: [String: String], input: Input) throws(SpawnError) {
        guard let program = arguments.first else { throw SpawnError(program: "", code: 0) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group: a terminal's ^C reaches `consul lock`, which then stops the child as
        // Consul does (SIGTERM, then SIGKILL after a grace period).
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var noMask = sigset_t()
        sigemptyset(&noMask)
        posix_spawnattr_setsigmask(&attributes, &noMask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        switch input {
        case .devNull: posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        case .inherited: break
        case .file(let descriptor): posix_spawn_file_actions_adddup2(&actions, descriptor, 0)
        }

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var spawned: pid_t = 0
        let result = posix_spawnp(&spawned, program, &actions, &attributes, argv, envp)
        guard result == 0 else { throw SpawnError(program: program, code: result) }
        let pid = spawned
        self.pid = pid
        let exited = self.exited
        let exitedSignal = self.exitedSignal
        let waiter = Thread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (Glibc's macros are not imported).
            let signal = status & 0x7f
            exited.fire(signal == 0 ? .code((status >> 8) & 0xff) : .signal(signal))
            exitedSignal.signal()
        }
        waiter.start()
    }

    /// Blocks the calling thread until the child ends (for a command's own thread, never a task's).
    func waitUntilExit() -> Exit {
        exitedSignal.wait()
        exitedSignal.signal()
        return exited.value!
    }

    /// Signals the child's whole process group.
    func signal(_ number: Int32) -> Bool {
        kill(-pid, number) == 0 || kill(pid, number) == 0
    }
}
