import ConsulCore

/// The pure half of `consul watch`: which read a watch type makes (`WatchPlan`), and what to do
/// with each answer (`WatchProgress`: index bookkeeping and change detection, as Consul's watch
/// plans do it). No sockets, clocks or processes here; `WatchCommand` carries the decisions out.
struct WatchPlan: Equatable, Sendable {
    enum WatchType: String, CaseIterable, Sendable {
        case key, keyprefix, services, nodes, service, checks, event
    }

    /// The watch parameters as the command line gives them (Consul's `-type`, `-key`, ...);
    /// nil or empty means not given.
    struct Parameters: Equatable, Sendable {
        var type: String?
        var key: String?
        var prefix: String?
        var service: String?
        var tags: [String] = []
        /// `-passingonly`, as written (`true`, `false`, `1`, ...).
        var passingOnly: String?
        var state: String?
        var name: String?
        var datacenter: String?
        var stale = false
    }

    /// How an answer becomes the watch's result (what a handler reads on stdin).
    enum ResultShape: Equatable, Sendable {
        /// The body as it is.
        case body
        /// The body, or `null` when the agent answers 404 (an empty key prefix).
        case bodyOrNullWhenMissing
        /// The first element of the body's list, or `null` on 404 (a single key).
        case firstElementOrNullWhenMissing
        /// Only the events after the one the previous index names (the event list is a ring buffer
        /// of recent events, not a versioned table).
        case eventsAfterPreviousIndex
    }

    var type: WatchType
    /// The request path, not yet percent-encoded.
    var path: String
    /// Query parameters other than `index` (nil value: a bare flag such as `?recurse`).
    var query: [QueryParameter]
    var shape: ResultShape

    /// Whether the answers' indexes only grow, so one going backwards means the data went back
    /// (a restored snapshot) and the watch must start over. Not so for events: their "index" is a
    /// hash of the newest event's ID, and resetting on it re-delivered old events at random
    /// (Consul issue #3742).
    var indexesAreOrdered: Bool { type != .event }

    struct QueryParameter: Equatable, Sendable {
        var name: String
        var value: String?
    }

    /// Why a watch cannot be planned; `message` is Consul's wording.
    struct PlanError: Error, Equatable, Sendable {
        var message: String
    }

    /// Plans the read for `parameters`, refusing what Consul's watch parser refuses: no or an
    /// unknown type, a missing required parameter, and parameters the type does not use.
    static func make(_ parameters: Parameters) throws(PlanError) -> WatchPlan {
        guard let typeName = parameters.type.nonEmptyValue else { throw PlanError(message: "Watch type must be specified") }
        guard let type = WatchType(rawValue: typeName) else { throw PlanError(message: "Unsupported watch type: \(typeName)") }
        var plan: WatchPlan
        // What each type reads from the parameters; whatever is left over is refused by name.
        var used: Set<String> = ["stale"]
        switch type {
        case .key:
            used.insert("key")
            guard let key = parameters.key.nonEmptyValue else { throw PlanError(message: "Must specify a single key to watch") }
            plan = WatchPlan(type: type, path: "/v1/kv/" + key, query: [], shape: .firstElementOrNullWhenMissing)
        case .keyprefix:
            used.insert("prefix")
            guard let prefix = parameters.prefix.nonEmptyValue else { throw PlanError(message: "Must specify a single prefix to watch") }
            plan = WatchPlan(type: type, path: "/v1/kv/" + prefix, query: [QueryParameter(name: "recurse", value: nil)], shape: .bodyOrNullWhenMissing)
        case .services:
            plan = WatchPlan(type: type, path: "/v1/catalog/services", query: [], shape: .body)
        case .nodes:
            plan = WatchPlan(type: type, path: "/v1/catalog/nodes", query: [], shape: .body)
        case .service:
            used.formUnion(["service", "tag", "passingonly"])
            guard let service = parameters.service.nonEmptyValue else { throw PlanError(message: "Must specify a single service to watch") }
            var query = parameters.tags.map { QueryParameter(name: "tag", value: $0) }
            if let text = parameters.passingOnly.nonEmptyValue {
                guard let passing = GoBool.parse(text) else {
                    throw PlanError(message: "Failed to parse passingonly flag: strconv.ParseBool: parsing \"\(text)\": invalid syntax")
                }
                if passing { query.append(QueryParameter(name: "passing", value: "1")) }
            }
            plan = WatchPlan(type: type, path: "/v1/health/service/" + service, query: query, shape: .body)
        case .checks:
            used.formUnion(["service", "state"])
            let service = parameters.service.nonEmptyValue, state = parameters.state.nonEmptyValue
            if service != nil && state != nil { throw PlanError(message: "Cannot specify service and state") }
            let path = service.map { "/v1/health/checks/" + $0 } ?? "/v1/health/state/" + (state ?? "any")
            plan = WatchPlan(type: type, path: path, query: [], shape: .body)
        case .event:
            // Events are this agent's own buffer: there is nothing stale to allow.
            used = ["name"]
            let query = parameters.name.nonEmptyValue.map { [QueryParameter(name: "name", value: $0)] } ?? []
            plan = WatchPlan(type: type, path: "/v1/event/list", query: query, shape: .eventsAfterPreviousIndex)
        }
        let given: [(String, Bool)] = [
            ("key", parameters.key.nonEmptyValue != nil), ("prefix", parameters.prefix.nonEmptyValue != nil),
            ("service", parameters.service.nonEmptyValue != nil), ("tag", !parameters.tags.isEmpty),
            ("passingonly", parameters.passingOnly.nonEmptyValue != nil), ("state", parameters.state.nonEmptyValue != nil),
            ("name", parameters.name.nonEmptyValue != nil), ("stale", parameters.stale),
        ]
        let unused = given.filter { $0.1 && !used.contains($0.0) }.map(\.0)
        guard unused.isEmpty else { throw PlanError(message: "Invalid parameters: [\(unused.joined(separator: " "))]") }
        if let datacenter = parameters.datacenter.nonEmptyValue { plan.query.append(QueryParameter(name: "dc", value: datacenter)) }
        if parameters.stale { plan.query.append(QueryParameter(name: "stale", value: nil)) }
        return plan
    }

    /// The query parameters of the next read: the plan's, then `index` when there is one to
    /// block on (0 asks for an answer at once, so it is left out).
    func parameters(blockingOn index: UInt64) -> [QueryParameter] {
        index > 0 ? query + [QueryParameter(name: "index", value: String(index))] : query
    }

    /// The watch's result for one answer: `status` 200, or 404 where the shape allows it (nil:
    /// the answer is an error). `previousIndex` is what the read blocked on (events after it).
    func result(status: Int, body: ConfigValue?, previousIndex: UInt64?) -> ConfigValue? {
        switch (shape, status) {
        case (.firstElementOrNullWhenMissing, 404), (.bodyOrNullWhenMissing, 404): return .null
        case (_, 200): break
        default: return nil
        }
        guard let body else { return nil }
        switch shape {
        case .body, .bodyOrNullWhenMissing:
            return body
        case .firstElementOrNullWhenMissing:
            return body.arrayValue?.first ?? .null
        case .eventsAfterPreviousIndex:
            guard let events = body.arrayValue else { return nil }
            guard let previousIndex else { return body }
            // Consul drops everything up to and including the event the previous index names.
            if let seen = events.firstIndex(where: { UserEvent.index(ofID: $0["ID"]?.stringValue ?? "") == previousIndex }) {
                return .array(Array(events[(seen + 1)...]))
            }
            return body
        }
    }
}

/// A watch's memory between reads: the index to block on and the last result handed out.
/// Follows Consul's watch plan: the first result is always handed out; later ones only when the
/// index moved and the result differs; an index that went backwards (a restored snapshot, a new
/// leader behind the old) resets the blocking index to 0 so the next read answers at once.
struct WatchProgress: Equatable, Sendable {
    /// Consul's backoff after a failed read: 5 s × failures², at most 180 s.
    static let retryBase: Duration = .seconds(5)
    static let maxRetry: Duration = .seconds(180)

    /// False for event watches (`WatchPlan.indexesAreOrdered`).
    let resetsWhenIndexGoesBackwards: Bool

    init(resetsWhenIndexGoesBackwards: Bool = true) {
        self.resetsWhenIndexGoesBackwards = resetsWhenIndexGoesBackwards
    }

    /// Nil until the first answer (and again after a failed read, as Consul resets it).
    private(set) var lastIndex: UInt64?
    private(set) var lastResult: ConfigValue?
    /// Failed reads in a row.
    private(set) var failures = 0

    /// What to do with an answer.
    enum Decision: Equatable, Sendable {
        /// Hand `result` to the handler (or print it), with `index` as `CONSUL_INDEX`.
        case deliver(index: UInt64, result: ConfigValue)
        /// Nothing changed: read again.
        case unchanged
    }

    /// The index the next read blocks on (0: answer at once).
    var blockingIndex: UInt64 { lastIndex ?? 0 }

    mutating func received(index: UInt64, result: ConfigValue) -> Decision {
        failures = 0
        if let lastIndex, lastIndex == index { return .unchanged }
        let previous = lastIndex
        lastIndex = previous.map { $0 > index && resetsWhenIndexGoesBackwards ? 0 : index } ?? index
        if previous != nil, lastResult == result { return .unchanged }
        lastResult = result
        return .deliver(index: index, result: result)
    }

    /// Records a failed read and returns how long to wait before the next one.
    mutating func failed() -> Duration {
        failures += 1
        lastIndex = nil
        let retry = Self.retryBase * (failures * failures)
        return retry > Self.maxRetry ? Self.maxRetry : retry
    }
}

extension Optional where Wrapped == String {
    /// A flag left empty counts as not given, as Consul's watch command treats it.
    fileprivate var nonEmptyValue: String? {
        guard let self, !self.isEmpty else { return nil }
        return self
    }
}
