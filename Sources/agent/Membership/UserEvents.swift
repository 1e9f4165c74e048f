import ConsulCore
import Foundation
import Gossip
import Synchronization

/// A Consul user event (`consul event`, `/v1/event/fire`): carried as the payload of a serf user
/// event named `consul:event:<name>`, msgpack-encoded with Consul's short keys so real Consul
/// agents in the pool read ours and we read theirs.
struct UserEvent: Equatable, Sendable {
    /// The highest event version this agent understands (Consul's `userEventMaxVersion`).
    static let maxVersion = 1
    /// Serf event names of Consul user events start with this; other serf events are not ours.
    static let serfPrefix = "consul:event:"

    var id: String
    var name: String
    var payload: [UInt8]?
    var nodeFilter = ""
    var serviceFilter = ""
    var tagFilter = ""
    var version = maxVersion
    /// The serf Lamport time it was delivered at (0 in the answer to the one who fired it).
    var lamportTime: UInt64 = 0

    /// Consul's checks before firing; each answer names the bad part.
    static func validate(name: String, node: String, service: String, tag: String) -> String? {
        if name.isEmpty { return "User event missing name" }
        if !tag.isEmpty && service.isEmpty { return "Cannot provide tag filter without service filter" }
        for (label, pattern) in [("node", node), ("service", service), ("tag", tag)] where !pattern.isEmpty {
            do throws(LinearRegex.SyntaxError) { _ = try LinearRegex(pattern) } catch { return "Invalid \(label) filter: \(error.description)" }
        }
        return nil
    }

    // MARK: - Wire (msgpack with Consul's codec tags; empty optionals omitted as Go's omitempty does)

    var encoded: [UInt8] {
        var entries: [(String, MessagePackValue)] = [("ID", .string(id)), ("n", .string(name))]
        if let payload, !payload.isEmpty { entries.append(("p", .raw(payload))) }
        if !nodeFilter.isEmpty { entries.append(("nf", .string(nodeFilter))) }
        if !serviceFilter.isEmpty { entries.append(("sf", .string(serviceFilter))) }
        if !tagFilter.isEmpty { entries.append(("tf", .string(tagFilter))) }
        entries.append(("v", .uint(UInt64(version))))
        var writer = MessagePackWriter()
        writer.write(.map(entries.map { MessagePackMapEntry(key: .string($0.0), value: $0.1) }))
        return writer.bytes
    }

    /// Nil for anything that is not a Consul user event's payload (a peer's bytes never trap).
    static func decode(_ bytes: [UInt8], lamportTime: UInt64) -> UserEvent? {
        guard case .map(let entries)? = try? MessagePackValue.decode(bytes) else { return nil }
        var event = UserEvent(id: "", name: "", lamportTime: lamportTime)
        event.version = 0
        for entry in entries {
            switch entry.key.stringValue {
            case "ID": event.id = entry.value.stringValue ?? ""
            case "n": event.name = entry.value.stringValue ?? ""
            case "p": if case .raw(let raw) = entry.value { event.payload = raw }
            case "nf": event.nodeFilter = entry.value.stringValue ?? ""
            case "sf": event.serviceFilter = entry.value.stringValue ?? ""
            case "tf": event.tagFilter = entry.value.stringValue ?? ""
            case "v": event.version = entry.value.int64Value.flatMap { Int(exactly: $0) } ?? 0
            default: break
            }
        }
        return event.name.isEmpty ? nil : event
    }

    /// Consul's `shouldProcessUserEvent`: the node filter against this node's name, the service
    /// filter against the IDs of its services (and the tag filter against their tags).
    func passes(nodeName: String, services: [(id: String, tags: [String])]) -> Bool {
        // The filters come from whichever peer fired the event: matched in linear time (RE2
        // syntax, as Consul's), so no pattern can stall this agent's event handling.
        func matches(_ pattern: String, _ text: String) -> Bool? {
            guard let regex = try? LinearRegex(pattern) else { return nil }
            return regex.matches(text)
        }
        if !nodeFilter.isEmpty, matches(nodeFilter, nodeName) != true { return false }
        guard !serviceFilter.isEmpty else { return true }
        return services.contains { service in
            guard matches(serviceFilter, service.id) == true else { return false }
            return tagFilter.isEmpty || service.tags.contains { matches(tagFilter, $0) == true }
        }
    }

    /// Consul's blocking index for an event list: the two halves of the newest event's UUID
    /// XORed together (0 for an ID that is not a UUID).
    static func index(ofID id: String) -> UInt64 {
        let hex = id.filter { $0 != "-" }
        guard hex.count == 32, let high = UInt64(hex.prefix(16), radix: 16), let low = UInt64(hex.suffix(16), radix: 16) else { return 0 }
        return high ^ low
    }

    func write(into writer: inout JSONWriter) {
        writer.object { w in
            w.field("ID") { $0.string(id) }
            w.field("Name") { $0.string(name) }
            w.field("Payload") { writer in
                if let payload, !payload.isEmpty { writer.base64(payload) } else { writer.null() }
            }
            w.field("NodeFilter") { $0.string(nodeFilter) }
            w.field("ServiceFilter") { $0.string(serviceFilter) }
            w.field("TagFilter") { $0.string(tagFilter) }
            w.field("Version") { $0.int(version) }
            w.field("LTime") { $0.int(lamportTime) }
        }
    }
}

/// The agent's recent user events (Consul keeps the last 256, oldest first), filled from the LAN
/// pool's serf user events, and the waiters of blocking `/v1/event/list` queries.
final class UserEventLog: Sendable {
    /// Consul's event buffer size.
    static let capacity = 256

    private enum Waiter {
        case waiting(CheckedContinuation<Void, Never>)
        /// The timeout fired before the waiter got to register.
        case timedOut
    }

    private struct State {
        var ring: [UserEvent] = []
        /// Where the next event goes once the ring is full.
        var next = 0
        /// Moves on every ingested event.
        var version: UInt64 = 0
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var localServices: @Sendable () -> [(id: String, tags: [String])] = { [] }
    }

    let nodeName: String
    private let state = Mutex(State())

    init(nodeName: String) { self.nodeName = nodeName }

    /// Where the service filter looks; set once this agent's services exist.
    func setLocalServices(_ provider: @escaping @Sendable () -> [(id: String, tags: [String])]) {
        state.withLock { $0.localServices = provider }
    }

    /// A serf user event from the pool; kept when it is a Consul event that passes our filters.
    /// Returns the event when kept.
    @discardableResult
    func deliver(_ delivery: SerfUserEventDelivery) -> UserEvent? {
        guard delivery.name.hasPrefix(UserEvent.serfPrefix),
              let event = UserEvent.decode(delivery.payload, lamportTime: delivery.lamportTime)
        else { return nil }
        let services = state.withLock { $0.localServices }()
        guard event.passes(nodeName: nodeName, services: services) else { return nil }
        // `_rexec` (consul exec) is remote execution, disabled in this edition: not listed, as Consul.
        guard event.name != "_rexec" else { return nil }
        ingest(event)
        return event
    }

    func ingest(_ event: UserEvent) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            if state.ring.count < Self.capacity {
                state.ring.append(event)
            } else {
                state.ring[state.next] = event
                state.next = (state.next + 1) % Self.capacity
            }
            state.version &+= 1
            var woken: [CheckedContinuation<Void, Never>] = []
            for (id, waiter) in state.waiters {
                if case .waiting(let continuation) = waiter {
                    woken.append(continuation)
                    state.waiters[id] = nil
                }
            }
            return woken
        }
        for waiter in woken { waiter.resume() }
    }

    /// Oldest first, with the log's version (for `waitForChange`).
    var events: (events: [UserEvent], version: UInt64) {
        state.withLock { state in
            (Array(state.ring[state.next...] + state.ring[..<state.next]), state.version)
        }
    }

    /// Returns once an event arrives after `version`, or after `timeout`. Suspends, never blocks.
    func waitForChange(since version: UInt64, timeout: Duration) async {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled else { return }
            self?.timeOut(id)
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.version != version { return true }
                if case .timedOut? = state.waiters[id] { return true }
                state.waiters[id] = .waiting(continuation)
                return false
            }
            if now { continuation.resume() }
        }
        timer.cancel()
        await timer.value
        state.withLock { $0.waiters[id] = nil }
    }

    private func timeOut(_ id: UInt64) {
        let waiting = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if case .waiting(let continuation)? = state.waiters[id] {
                state.waiters[id] = nil
                return continuation
            }
            state.waiters[id] = .timedOut
            return nil
        }
        waiting?.resume()
    }
}
