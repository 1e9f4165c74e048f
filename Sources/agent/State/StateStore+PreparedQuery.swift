/// Prepared queries in the state store: Consul's rules for writing them (unique names, a session
/// that exists) and for finding the one a name or ID refers to.
extension StateStore {
    /// Refusal texts the HTTP layer maps to 404 rather than 400.
    static let preparedQueryNotFound = "Query not found"

    mutating func setPreparedQuery(_ query: PreparedQuery, isUpdate: Bool, at index: UInt64) -> StateCommandResult {
        let existing = preparedQueries[query.id]
        if isUpdate, existing == nil { return .refused("\(Self.preparedQueryNotFound): cannot modify non-existent prepared query '\(query.id)'") }
        if !isUpdate, existing != nil { return .refused("a prepared query with ID \(query.id) already exists") }
        if !query.session.isEmpty, sessions[query.session] == nil {
            return .refused("invalid session \"\(query.session)\"")
        }
        // Names are unique among named queries, and only one template may have the empty name
        // (it catches every lookup no other query answers).
        if !query.name.isEmpty || query.template != nil {
            let lowered = query.name.lowercased()
            let clash = preparedQueries.values.first { other in
                other.id != query.id && other.name.lowercased() == lowered && (!lowered.isEmpty || other.template != nil)
            }
            if clash != nil {
                return .refused(lowered.isEmpty ? "a query template with an empty name already exists" : "A prepared query with name \"\(query.name)\" already exists")
            }
        }
        var query = query
        query.indexes = RaftIndexes(createIndex: existing?.indexes.createIndex ?? index, modifyIndex: index)
        preparedQueries.set(query.id, query)
        touch(.preparedQueries, at: index)
        return .done
    }

    mutating func deletePreparedQuery(_ id: String, at index: UInt64) -> StateCommandResult {
        guard preparedQueries.remove(id) != nil else {
            return .refused("\(Self.preparedQueryNotFound): cannot delete non-existent prepared query '\(id)'")
        }
        touch(.preparedQueries, at: index)
        return .done
    }

    func preparedQuery(id: String) -> PreparedQuery? { preparedQueries[id] }

    var allPreparedQueries: [PreparedQuery] { preparedQueries.values }

    /// What `execute`, `explain` and DNS run for `idOrName`, as Consul resolves it: an ID, else a
    /// query with exactly that name, else the template with the longest name that prefixes it.
    func preparedQuery(resolving idOrName: String) -> PreparedQuery? {
        if let byID = preparedQueries[idOrName] { return byID }
        let lowered = idOrName.lowercased()
        let all = preparedQueries.values
        if let exact = all.first(where: { !$0.name.isEmpty && $0.name.lowercased() == lowered }) { return exact }
        return all.filter { $0.template != nil && lowered.hasPrefix($0.name.lowercased()) }
            .max { $0.name.count < $1.name.count }
    }
}
