import Raft
import Synchronization

/// The Raft transport of a server that has no peers (`-dev`, `-bootstrap` alone): a one-voter
/// cluster sends nothing, so anything it would send has nowhere to go and is counted.
final class SingleServerTransport: RaftTransport {
    private let undeliverable = Atomic<Int>(0)

    func send(_ message: Message) {
        undeliverable.add(1, ordering: .relaxed)
    }

    var undeliverableCount: Int { undeliverable.load(ordering: .relaxed) }
}
