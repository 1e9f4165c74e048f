import NIOCore
import Synchronization

/// The lines waiting for one `/v1/agent/monitor` client, bounded: when the client reads slower
/// than the agent logs, new lines are dropped and counted, and the client is told how many before
/// the next lines it gets (Consul's "Monitor dropped N logs during monitor request"). Pure value.
struct BoundedLogBuffer: Sendable {
    /// Consul's monitor keeps 512 lines per client.
    static let defaultCapacity = 512

    let capacity: Int
    private var lines = CircularBuffer<String>()
    /// Dropped since the client was last told.
    private(set) var droppedUntold = 0
    /// Dropped over the buffer's whole life (logged when the monitor ends).
    private(set) var droppedTotal = 0

    init(capacity: Int = BoundedLogBuffer.defaultCapacity) {
        precondition(capacity > 0)
        self.capacity = capacity
        lines.reserveCapacity(min(capacity, 64))
    }

    var isEmpty: Bool { lines.isEmpty && droppedUntold == 0 }
    var count: Int { lines.count }

    /// Keeps the line if there is room; false: dropped (and counted).
    mutating func offer(_ line: String) -> Bool {
        guard lines.count < capacity else {
            droppedUntold += 1
            droppedTotal += 1
            return false
        }
        lines.append(line)
        return true
    }

    /// Up to `maxLines` waiting lines, preceded by the dropped-lines notice when some were lost
    /// since the last take.
    mutating func take(maxLines: Int) -> [String] {
        var out: [String] = []
        if droppedUntold > 0 {
            out.append("Monitor dropped \(droppedUntold) logs during monitor request\n")
            droppedUntold = 0
        }
        while out.count < maxLines, let line = lines.popFirst() { out.append(line) }
        return out
    }
}

/// A rendered log line for monitors: both formats are made at most once per line, and only when a
/// monitor asks for that format.
final class LogLineRenderer {
    private let renderText: () -> String
    private let renderJSON: () -> String
    private var text: String?
    private var json: String?

    init(text: @escaping () -> String, json: @escaping () -> String) {
        self.renderText = text
        self.renderJSON = json
    }

    func line(json wantsJSON: Bool) -> String {
        if wantsJSON {
            if let json { return json }
            let rendered = renderJSON()
            json = rendered
            return rendered
        }
        if let text { return text }
        let rendered = renderText()
        text = rendered
        return rendered
    }
}

/// Every open `/v1/agent/monitor` stream of this agent. The logger hands each line here; a line
/// goes into each interested monitor's bounded buffer and never waits for a client.
final class LogMonitors: Sendable {
    private let monitors = Mutex<[ObjectIdentifier: LogMonitor]>([:])
    /// The most detailed level any monitor wants (`Int.max`: none), read without a lock on every
    /// log call so that lines below the agent's own level cost nothing when nobody monitors them.
    private let finestLevel = Atomic<Int>(Int.max)

    init() {}

    /// Whether a line at `level` would reach any monitor.
    func wants(_ level: AgentLogger.Level) -> Bool {
        level.rawValue >= finestLevel.load(ordering: .relaxed)
    }

    func publish(_ level: AgentLogger.Level, _ renderer: LogLineRenderer) {
        let interested = monitors.withLock { all in all.values.filter { level >= $0.level } }
        for monitor in interested { monitor.offer(renderer.line(json: monitor.json)) }
    }

    func add(_ monitor: LogMonitor) {
        monitors.withLock { all in
            all[ObjectIdentifier(monitor)] = monitor
            finestLevel.store(all.values.map(\.level.rawValue).min() ?? Int.max, ordering: .relaxed)
        }
    }

    func remove(_ monitor: LogMonitor) {
        monitors.withLock { all in
            all[ObjectIdentifier(monitor)] = nil
            finestLevel.store(all.values.map(\.level.rawValue).min() ?? Int.max, ordering: .relaxed)
        }
    }

    var count: Int { monitors.withLock { $0.count } }
}

/// One client's log stream: lines from the logger go into a bounded buffer (any thread); the
/// connection's event loop drains it while the socket accepts more, so a slow client fills its
/// own buffer and loses lines, and neither the logger nor the loop ever waits for it.
final class LogMonitor: ResponseStream {
    /// Lines written per chunk: enough to batch a burst, small enough to keep NIO's pending writes short.
    static let linesPerChunk = 64

    let level: AgentLogger.Level
    let json: Bool
    private let registry: LogMonitors
    /// Told how many lines a client lost, when its stream ends (off every lock).
    private let reportDropped: @Sendable (Int) -> Void

    private struct State {
        var buffer: BoundedLogBuffer
        /// The connection's loop, once attached; nil after detach.
        var loop: (any EventLoop)?
        /// A drain is scheduled or waiting for writability: producers need not schedule another.
        var drainPending = false
    }

    private let state: Mutex<State>
    /// Touched only on the connection's loop.
    private let connection = Mutex<NIOLoopBound<StreamConnection>?>(nil)

    init(
        level: AgentLogger.Level, json: Bool, registry: LogMonitors, capacity: Int = BoundedLogBuffer.defaultCapacity,
        reportDropped: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        self.level = level
        self.json = json
        self.registry = registry
        self.reportDropped = reportDropped
        self.state = Mutex(State(buffer: BoundedLogBuffer(capacity: capacity)))
    }

    /// From the logger, on any thread: keeps the line (or counts it dropped) and wakes the loop
    /// once per burst.
    func offer(_ line: String) {
        let wake: (any EventLoop)? = state.withLock { state in
            _ = state.buffer.offer(line)
            guard let loop = state.loop, !state.drainPending else { return nil }
            state.drainPending = true
            return loop
        }
        wake?.execute { self.drain() }
    }

    func attach(_ connection: StreamConnection) {
        let loop = connection.eventLoop
        self.connection.withLock { $0 = NIOLoopBound(connection, eventLoop: loop) }
        state.withLock { $0.loop = loop }
        registry.add(self)
    }

    func resume() { drain() }

    func detach() {
        registry.remove(self)
        connection.withLock { $0 = nil }
        let dropped = state.withLock { state in
            state.loop = nil
            return state.buffer.droppedTotal
        }
        if dropped > 0 { reportDropped(dropped) }
    }

    /// Up to `maxLines` waiting lines (after the dropped-lines notice, if due). Empty: nothing
    /// waits, and the next offered line schedules a drain again.
    func takeWaiting(maxLines: Int) -> [String] {
        state.withLock { state in
            let lines = state.buffer.take(maxLines: maxLines)
            if lines.isEmpty { state.drainPending = false }
            return lines
        }
    }

    /// On the connection's loop: writes what is waiting while the socket takes it. Stops when the
    /// channel is not writable; `resume` (writability back) picks up from there.
    private func drain() {
        guard let connection = connection.withLock({ $0?.value }) else { return }
        while connection.isWritable {
            let lines = takeWaiting(maxLines: Self.linesPerChunk)
            if lines.isEmpty { return }
            connection.write(lines.joined())
        }
    }
}
