import Synchronization
@testable import ConsulAgent

/// Runs the CLI with its output captured, for assertions on what a user would see.
final class CapturedIO: Sendable {
    private let streams = Mutex<(out: String, err: String)>(("", ""))

    var io: CommandIO {
        CommandIO(
            out: { text in self.streams.withLock { $0.out += text } },
            err: { text in self.streams.withLock { $0.err += text } })
    }

    var out: String { streams.withLock { $0.out } }
    var err: String { streams.withLock { $0.err } }

    static func run(_ arguments: [String]) -> (code: Int32, out: String, err: String) {
        let captured = CapturedIO()
        let code = ConsulCLI.run(arguments, io: captured.io)
        return (code, captured.out, captured.err)
    }
}
