import ConsulCore

/// How a read wants to be answered, from Consul's query parameters.
enum Consistency: Equatable, Sendable {
    /// Answered by the leader from its state, without checking it is still the leader.
    case `default`
    /// Answered by any server from its state, however far behind.
    case stale
    /// Answered by the leader after a quorum confirmed its leadership (a ReadIndex round).
    case consistent
}

/// The request-wide parameters every endpoint shares: target datacenter, token, consistency and
/// the blocking-query pair `index`/`wait`.
struct QueryOptions: Equatable, Sendable {
    /// Blocking queries wait at most this long, as Consul caps them.
    static let maxWait: Duration = .seconds(600)
    static let defaultWait: Duration = .seconds(300)

    var datacenter: String
    var token: String
    var consistency: Consistency = .default
    /// Block until a table read moves past this index (0: answer at once).
    var minIndex: UInt64 = 0
    var wait: Duration = defaultWait

    init(datacenter: String, token: String = "") {
        self.datacenter = datacenter
        self.token = token
    }

    /// Reads the options, with Consul's errors for bad values.
    static func parse(_ request: APIRequest, localDatacenter: String) throws(APIError) -> QueryOptions {
        var options = QueryOptions(datacenter: localDatacenter, token: request.token)
        if let dc = request.query["dc"], !dc.isEmpty { options.datacenter = dc }
        switch (request.has("stale"), request.has("consistent")) {
        case (true, true): throw .badRequest("Cannot specify ?stale with ?consistent, conflicting semantics.")
        case (true, false): options.consistency = .stale
        case (false, true): options.consistency = .consistent
        case (false, false): break
        }
        if let index = request.query["index"], !index.isEmpty {
            guard let value = UInt64(index) else { throw .badRequest("Invalid index") }
            options.minIndex = value
        }
        if let wait = request.query["wait"], !wait.isEmpty {
            guard let value = try? GoDuration.parse(wait), value >= .zero else { throw .badRequest("Invalid wait time") }
            options.wait = min(value, maxWait)
        }
        return options
    }

    /// Consul adds up to wait/16 of random jitter so many watchers of one index do not all return
    /// (and come back) at once.
    func jitteredWait(_ random: inout SeededRandom) -> Duration {
        let nanoseconds = max(wait.totalNanoseconds, 0)
        let jitter = nanoseconds / 16 > 0 ? Int64(random.next() % UInt64(nanoseconds / 16)) : 0
        return .nanoseconds(nanoseconds + jitter)
    }
}
