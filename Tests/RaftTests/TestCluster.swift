import ConsulCore
@testable import Raft

/// A minimal synchronous harness for core unit tests: instant durable disk, a message queue the test
/// controls (deliver, drop, cut links), and a manual clock. Every loop in it is bounded.
struct TestCluster {
    var cores: [ServerID: RaftCore] = [:]
    var ids: [ServerID]
    var now = Timestamp.zero
    var inFlight: [Message] = []
    /// Directed links that drop everything.
    var cut: Set<[ServerID]> = []
    /// Everything each server applied, in order.
    var applied: [ServerID: [LogEntry]] = [:]
    var outcomes: [ServerID: [RequestOutcome]] = [:]
    var reads: [ServerID: [ReadState]] = [:]
    var restored: [ServerID: [Snapshot]] = [:]
    /// Each server's snapshot store, as a shell keeps it after `snapshotStored`: the data chunks
    /// the core asks for are read from here.
    var stores: [ServerID: [UInt8]] = [:]
    var options: RaftOptions

    init(_ count: Int, seed: UInt64 = 1, options: RaftOptions = RaftOptions()) {
        self.options = options
        ids = (1...count).map { ServerID("n\($0)") }
        var random = SeededRandom(seed: seed)
        let bootstrap = RecoveredState.bootstrap(ClusterConfiguration(voters: ids))
        for id in ids {
            cores[id] = try! RaftCore(id: id, options: options, random: random.split(), recovered: bootstrap, now: now)
        }
    }

    subscript(_ id: ServerID) -> RaftCore { cores[id]! }

    static func id(_ n: Int) -> ServerID { ServerID("n\(n)") }

    /// Feeds an input and carries out the output (disk is instant: persisted is fed back at once).
    mutating func input(_ id: ServerID, _ input: RaftInput) {
        guard var core = cores[id] else { return }
        let output = core.handle(input, now: now)
        cores[id] = core
        record(id, output)
        if let last = output.persist.entries.last {
            self.input(id, .persisted(LogPosition(index: last.index, term: last.term)))
        }
    }

    mutating func record(_ id: ServerID, _ output: RaftOutput) {
        for message in output.messages where !cut.contains([message.from, message.to]) {
            inFlight.append(message)
        }
        for chunk in output.snapshotChunks where !cut.contains([chunk.message.from, chunk.message.to]) {
            guard case .installSnapshot(let install) = chunk.message.payload, let store = stores[id] else { continue }
            let start = Int(install.offset)
            inFlight.append(chunk.filled(with: Array(store[start..<min(start + chunk.length, store.count)])))
        }
        if let snapshot = output.snapshotToRestore { restored[id, default: []].append(snapshot) }
        applied[id, default: []].append(contentsOf: output.committed)
        outcomes[id, default: []].append(contentsOf: output.outcomes)
        reads[id, default: []].append(contentsOf: output.readStates)
    }

    /// Delivers queued messages (and those they cause) in FIFO order, at most `limit` of them.
    mutating func deliverAll(limit: Int = 10_000) {
        var delivered = 0
        while !inFlight.isEmpty && delivered < limit {
            let message = inFlight.removeFirst()
            delivered += 1
            if cores[message.to] != nil && !cut.contains([message.from, message.to]) {
                input(message.to, .message(message))
            }
        }
    }

    /// Advances time by `span` in steps of `step`, ticking every server and delivering messages.
    mutating func run(for span: Duration, step: Duration = .milliseconds(10)) {
        let end = now + span
        while now < end {
            now = now + step
            for id in ids where cores[id] != nil { input(id, .tick) }
            deliverAll()
        }
    }

    /// Runs until some server leads (bounded), returning it.
    mutating func electLeader(within span: Duration = .seconds(10)) -> ServerID? {
        let end = now + span
        while now < end {
            run(for: .milliseconds(10))
            if let leader = leaders().first { return leader }
        }
        return nil
    }

    func leaders() -> [ServerID] {
        ids.filter { cores[$0]?.isLeader == true }
    }

    mutating func isolate(_ id: ServerID) {
        for other in ids where other != id {
            cut.insert([id, other])
            cut.insert([other, id])
        }
    }

    mutating func heal() { cut.removeAll() }
}
