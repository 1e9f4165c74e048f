import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A command run by `consul lock` while it holds the lock: in its own process group (so the whole
/// tree can be stopped), with the signals this process ignores back at their defaults, standard
/// output and error shared, standard input shared only when asked. A dedicated thread waits for it,
/// so no task or event loop ever blocks on `waitpid`.
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
        var description: String
    }

    let pid: pid_t
    let exited = OneShotEvent<Exit>()

    /// `arguments` is the program and its arguments (looked up on PATH).
    init(arguments: [String], environment: [String: String], passStdin: Bool) throws(SpawnError) {
        guard let program = arguments.first else { throw SpawnError(description: "no command to run") }
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
        if !passStdin { posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) }

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var spawned: pid_t = 0
        let result = posix_spawnp(&spawned, program, &actions, &attributes, argv, envp)
        guard result == 0 else { throw SpawnError(description: "exec: \"\(program)\": \(String(cString: strerror(result)))") }
        let pid = spawned
        self.pid = pid
        let exited = self.exited
        let waiter = Thread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (Glibc's macros are not imported).
            let signal = status & 0x7f
            exited.fire(signal == 0 ? .code((status >> 8) & 0xff) : .signal(signal))
        }
        waiter.start()
    }

    /// Signals the child's whole process group.
    func signal(_ number: Int32) -> Bool {
        kill(-pid, number) == 0 || kill(pid, number) == 0
    }
}
