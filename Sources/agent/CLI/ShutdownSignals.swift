import Dispatch
import Foundation
import Synchronization

/// SIGINT and SIGTERM for long-running commands (`monitor`, `lock`), as Consul's CLI treats them:
/// both mean "shut down", and the command decides how. Handlers run on a dispatch queue.
final class ShutdownSignals: Sendable {
    private let sources: Mutex<[any DispatchSourceSignal]>

    /// Calls `handler` with the signal's number each time SIGINT or SIGTERM arrives.
    init(_ handler: @escaping @Sendable (Int32) -> Void) {
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            sources.append(source)
        }
        self.sources = Mutex(sources)
    }

    func cancel() {
        sources.withLock { sources in
            for source in sources { source.cancel() }
            sources = []
        }
    }
}
