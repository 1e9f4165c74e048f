import Foundation

/// Runs a prepared query against one version of the state: Consul's template rendering, then the
/// service's healthy instances filtered by tags and metadata, shuffled, or sorted by round-trip
/// time from `near`, then cut to `limit`. Pure: the caller brings the random source.
enum PreparedQueryExecutor {
    struct Result: Sendable {
        /// The query as it ran (a template rendered for the name it was asked by).
        var query: PreparedQuery
        var nodes: [HealthEndpoint.ServiceHealth]
    }

    /// Fills a template's `${name.full}`, `${name.prefix}`, `${name.suffix}` and `${match(N)}`
    /// for the name it was looked up by; ordinary queries come back as they are.
    static func render(_ query: PreparedQuery, for lookupName: String) -> PreparedQuery {
        guard let template = query.template else { return query }
        var captures: [String] = []
        if !template.regexp.isEmpty, let regex = try? Regex(template.regexp), let match = try? regex.firstMatch(in: lookupName) {
            captures = match.output.map { $0.substring.map(String.init) ?? "" }
        }
        func fill(_ text: String) -> String {
            guard text.contains("${") else { return text }
            var result = text
                .replacingOccurrences(of: "${name.full}", with: lookupName)
                .replacingOccurrences(of: "${name.prefix}", with: query.name)
                .replacingOccurrences(of: "${name.suffix}", with: String(lookupName.dropFirst(query.name.count)))
            for (number, capture) in captures.enumerated() {
                result = result.replacingOccurrences(of: "${match(\(number))}", with: capture)
            }
            return result
        }
        var rendered = query
        rendered.service.service = fill(query.service.service)
        rendered.service.near = fill(query.service.near)
        rendered.service.tags = query.service.tags.map(fill)
        if template.removeEmptyTags { rendered.service.tags.removeAll(where: \.isEmpty) }
        rendered.service.nodeMeta = query.service.nodeMeta.mapValues(fill)
        rendered.service.serviceMeta = query.service.serviceMeta.mapValues(fill)
        return rendered
    }

    /// `near` ("" for the query's own `Near`) is a node name; `_agent` has been replaced by the
    /// caller with the agent's node name. `limit` nil or 0: no limit.
    static func execute<R: RandomNumberGenerator>(
        _ stored: PreparedQuery, lookupName: String, in store: StateStore, near: String, limit: Int?, random: inout R
    ) -> Result {
        let query = render(stored, for: lookupName)
        let service = query.service
        var nodes = HealthEndpoint.serviceHealth(service.service, in: store, tags: [], passingOnly: false).filter { entry in
            healthy(entry, service) && matchesTags(entry.service.tags, service.tags)
                && service.nodeMeta.allSatisfy { entry.node.meta[$0.key] == $0.value }
                && service.serviceMeta.allSatisfy { entry.service.meta[$0.key] == $0.value }
        }
        nodes.shuffle(using: &random)
        let origin = near.isEmpty ? service.near : near
        if !origin.isEmpty, let from = store.coordinates(ofNode: origin).first(where: { $0.segment.isEmpty })?.coord {
            // Stable sort keeps the shuffle among nodes at equal distance or without coordinates.
            let distances = nodes.map { entry in
                store.coordinates(ofNode: entry.node.name).first(where: { $0.segment.isEmpty }).map { rtt(from, $0.coord) } ?? .infinity
            }
            nodes = zip(nodes, distances).enumerated()
                .sorted { ($0.element.1, $0.offset) < ($1.element.1, $1.offset) }
                .map(\.element.0)
        }
        if let limit, limit > 0, nodes.count > limit { nodes = Array(nodes.prefix(limit)) }
        return Result(query: query, nodes: nodes)
    }

    /// Consul drops instances with a critical check, and with `OnlyPassing` also those warning;
    /// checks named in `IgnoreCheckIDs` do not count.
    static func healthy(_ entry: HealthEndpoint.ServiceHealth, _ service: PreparedQueryService) -> Bool {
        entry.checks.allSatisfy { check in
            if service.ignoreCheckIDs.contains(check.id) { return true }
            return service.onlyPassing ? check.status == .passing : check.status.severity < HealthStatus.critical.severity
        }
    }

    /// Every plain tag must be present and every `!tag` absent, ignoring case.
    static func matchesTags(_ have: [String], _ wanted: [String]) -> Bool {
        let have = Set(have.map { $0.lowercased() })
        return wanted.allSatisfy { tag in
            let lowered = tag.lowercased()
            if lowered.hasPrefix("!") { return !have.contains(String(lowered.dropFirst())) }
            return have.contains(lowered)
        }
    }

    /// serf's Vivaldi distance estimate, in seconds.
    static func rtt(_ a: NetworkCoordinate, _ b: NetworkCoordinate) -> Double {
        guard a.vec.count == b.vec.count else { return .infinity }
        let euclidean = zip(a.vec, b.vec).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
        let raw = euclidean + a.height + b.height
        let adjusted = raw + a.adjustment + b.adjustment
        return adjusted > 0 ? adjusted : raw
    }
}
