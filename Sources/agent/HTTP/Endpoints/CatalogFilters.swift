import Gossip

/// The catalog's `?node-meta=key:value` (repeatable, all must match) and `?near=node` (sort by
/// estimated round trip from that node's coordinate; `_agent` is this agent) query parameters.
struct CatalogFilters: Sendable {
    var nodeMeta: [(key: String, value: String)] = []
    var near: String?

    init(_ request: APIRequest, agentNode: String) throws(APIError) {
        for text in request.values("node-meta") {
            // Consul splits at the first colon; a bare key asks for an empty value.
            guard !text.isEmpty else { throw .badRequest("Invalid node-meta filter: empty key") }
            if let colon = text.firstIndex(of: ":") {
                nodeMeta.append((String(text[..<colon]), String(text[text.index(after: colon)...])))
            } else {
                nodeMeta.append((text, ""))
            }
        }
        if let near = request.query["near"], !near.isEmpty { self.near = near == "_agent" ? agentNode : near }
    }

    func matches(_ meta: [String: String]) -> Bool {
        nodeMeta.allSatisfy { meta[$0.key] == $0.value }
    }

    /// Orders `items` by distance from the `near` node; those whose node has no coordinate keep
    /// their order after the rest. Unchanged when the `near` node has no coordinate (as Consul).
    func sorted<T>(_ items: [T], node: (T) -> String, in store: StateStore) -> [T] {
        guard let near, let origin = Self.coordinate(of: near, in: store) else { return items }
        let keyed = items.enumerated().map { index, item in
            (index, item, Self.coordinate(of: node(item), in: store).map { origin.distance(to: $0) })
        }
        return keyed.sorted { a, b in
            switch (a.2, b.2) {
            case let (x?, y?): return x != y ? x < y : a.0 < b.0
            case (.some, nil): return true
            case (nil, .some): return false
            case (nil, nil): return a.0 < b.0
            }
        }.map(\.1)
    }

    /// The node's coordinate in the default segment, as serf's coordinate type.
    static func coordinate(of node: String, in store: StateStore) -> VivaldiCoordinate? {
        guard let row = store.coordinates(ofNode: node).first(where: { $0.segment == "" }), row.coord.isValid else { return nil }
        return VivaldiCoordinate(vector: row.coord.vec, error: row.coord.error, adjustment: row.coord.adjustment, height: row.coord.height)
    }
}
