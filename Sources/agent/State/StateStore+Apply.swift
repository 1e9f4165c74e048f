/// The state store's writes. Only `ConsulStateMachine` calls these, in log order, with the index of
/// the entry being applied; each follows Consul's state store rules (which writes bump which index,
/// what CAS and locks compare, how a session's invalidation releases or deletes its keys).
extension StateStore {
    mutating func apply(_ command: StateCommand, at index: UInt64) -> StateCommandResult {
        defer { noteApplied(index) }
        switch command {
        case .register(let registration): return register(registration, at: index)
        case .deregister(let node, let serviceID, let checkID): return deregister(node: node, serviceID: serviceID, checkID: checkID, at: index)
        case .kv(let operation): return applyKV(operation, at: index)
        case .createSession(let session): return createSession(session, at: index)
        case .destroySession(let id):
            guard sessions[id] != nil else { return .done }
            invalidateSession(id, at: index)
            return .done
        case .txn(let operations): return applyTxn(operations, at: index)
        case .setAutopilot(let settings, let cas): return setAutopilot(settings, cas: cas, at: index)
        case .updateCoordinates(let coordinates): return updateCoordinates(coordinates, at: index)
        case .restoreState(let data): return restoreState(data, at: index)
        case .setPreparedQuery(let query, let isUpdate): return setPreparedQuery(query, isUpdate: isUpdate, at: index)
        case .deletePreparedQuery(let id): return deletePreparedQuery(id, at: index)
        }
    }

    // MARK: - Catalog

    private mutating func register(_ registration: StateCommand.Registration, at index: UInt64) -> StateCommandResult {
        let node: CatalogNode
        do {
            node = try ensureNode(registration.node, at: index)
        } catch {
            return .refused(error.message)
        }
        let key = Self.nodeKey(node.name)
        if var service = registration.service {
            service.node = node.name
            ensureService(service, nodeKey: key, at: index)
        }
        for check in registration.checks {
            var check = check
            check.node = node.name
            guard let attached = withServiceFields(check, nodeKey: key) else {
                return .refused("Missing service registration for check \(check.id): service \(check.serviceID) on node \(node.name)")
            }
            putCheck(attached, nodeKey: key, at: index)
        }
        return .done
    }

    /// A catalog write the state refuses, and why (answered to the client).
    struct Refusal: Error, Equatable { var message: String }

    /// Inserts or updates a node by name (case-insensitively). An unchanged node keeps its indexes
    /// and bumps no table index, so blocking queries do not wake for nothing. Answers the stored node.
    mutating func ensureNode(_ given: CatalogNode, at index: UInt64) throws(Refusal) -> CatalogNode {
        let key = Self.nodeKey(given.name)
        var node = given
        if let existing = nodes[key] {
            if !existing.id.isEmpty, !node.id.isEmpty, existing.id != node.id {
                throw Refusal(message: "failed inserting node: node \(node.name) is already registered with ID \(existing.id)")
            }
            if node.id.isEmpty { node.id = existing.id }
            node.indexes = existing.indexes
            guard node != existing else { return existing }
            node.indexes.modifyIndex = index
        } else {
            node.indexes = RaftIndexes(createIndex: index, modifyIndex: index)
        }
        nodes.set(key, node)
        touch(.nodes, at: index)
        return node
    }

    /// Inserts or updates a service of a node that is registered (callers check). Answers the stored service.
    @discardableResult
    mutating func ensureService(_ given: CatalogService, nodeKey key: String, at index: UInt64) -> CatalogService {
        var service = given
        let serviceKey = ServiceKey(node: key, id: service.id)
        let existing = services[serviceKey]
        service.indexes = existing?.indexes ?? RaftIndexes(createIndex: index, modifyIndex: index)
        guard service != existing else { return service }
        service.indexes.modifyIndex = index
        if let existing, existing.name.lowercased() != service.name.lowercased() {
            servicesByName.remove(ServiceNameKey(name: existing.name.lowercased(), node: key, id: existing.id))
        }
        services.set(serviceKey, service)
        servicesByName.set(ServiceNameKey(name: service.name.lowercased(), node: key, id: service.id), serviceKey)
        touch(.services, at: index)
        return service
    }

    /// A check with its service's name and tags copied in, as Consul stores them; nil when the
    /// check names a service the node does not have.
    func withServiceFields(_ check: HealthCheck, nodeKey key: String) -> HealthCheck? {
        guard !check.serviceID.isEmpty else { return check }
        guard let service = services[ServiceKey(node: key, id: check.serviceID)] else { return nil }
        var check = check
        check.serviceName = service.name
        check.serviceTags = service.tags
        return check
    }

    /// Inserts or updates a check of a registered node; a check turning critical ends the sessions
    /// that depend on it.
    mutating func putCheck(_ check: HealthCheck, nodeKey: String, at index: UInt64) {
        var check = check
        let checkKey = CheckKey(node: nodeKey, id: check.id)
        let existing = checks[checkKey]
        check.indexes = existing?.indexes ?? RaftIndexes(createIndex: index, modifyIndex: index)
        guard check != existing else { return }
        check.indexes.modifyIndex = index
        checks.set(checkKey, check)
        touch(.checks, at: index)
        if check.status == .critical || check.status == .maintenance {
            invalidateSessions(onNode: nodeKey, dependingOn: check.id, at: index)
        }
    }

    /// Removes a check, a service (with its checks) or the whole node, as `/v1/catalog/deregister`
    /// does; an unknown node is no error.
    @discardableResult
    mutating func deregister(node name: String, serviceID: String?, checkID: String?, at index: UInt64) -> StateCommandResult {
        let key = Self.nodeKey(name)
        guard nodes[key] != nil else { return .done }
        if let checkID {
            if checks.remove(CheckKey(node: key, id: checkID)) != nil {
                touch(.checks, at: index)
                invalidateSessions(onNode: key, dependingOn: checkID, at: index)
            }
        }
        if let serviceID {
            removeService(ServiceKey(node: key, id: serviceID), at: index)
        }
        guard serviceID == nil, checkID == nil else { return .done }

        for service in services(onNode: name) { removeService(ServiceKey(node: key, id: service.id), at: index) }
        for check in checks(onNode: name) {
            checks.remove(CheckKey(node: key, id: check.id))
            touch(.checks, at: index)
        }
        for session in sessions.values where Self.nodeKey(session.node) == key {
            invalidateSession(session.id, at: index)
        }
        removeCoordinates(nodeKey: key, at: index)
        nodes.remove(key)
        touch(.nodes, at: index)
        return .done
    }

    private mutating func removeService(_ serviceKey: ServiceKey, at index: UInt64) {
        guard let service = services.remove(serviceKey) else { return }
        servicesByName.remove(ServiceNameKey(name: service.name.lowercased(), node: serviceKey.node, id: service.id))
        touch(.services, at: index)
        var removedChecks: [String] = []
        checks.forEach(from: CheckKey(node: serviceKey.node, id: "")) { key, check in
            guard key.node == serviceKey.node else { return false }
            if check.serviceID == service.id { removedChecks.append(check.id) }
            return true
        }
        for id in removedChecks {
            checks.remove(CheckKey(node: serviceKey.node, id: id))
            touch(.checks, at: index)
        }
    }

    // MARK: - KV

    private mutating func applyKV(_ operation: StateCommand.KVOperation, at index: UInt64) -> StateCommandResult {
        let existing = kv[operation.key]
        switch operation.verb {
        case .set:
            putKV(operation, existing: existing, session: existing?.session, lockIndex: existing?.lockIndex ?? 0, at: index)
            return .done
        case .cas(let expected):
            guard (existing?.indexes.modifyIndex ?? 0) == expected else { return .applied(false) }
            putKV(operation, existing: existing, session: existing?.session, lockIndex: existing?.lockIndex ?? 0, at: index)
            return .applied(true)
        case .lock(let session):
            guard sessions[session] != nil else { return .refused("invalid session \"\(session)\"") }
            if let holder = existing?.session {
                guard holder == session else { return .applied(false) }
                putKV(operation, existing: existing, session: session, lockIndex: existing?.lockIndex ?? 0, at: index)
            } else {
                putKV(operation, existing: existing, session: session, lockIndex: (existing?.lockIndex ?? 0) + 1, at: index)
            }
            return .applied(true)
        case .unlock(let session):
            guard let existing, existing.session == session else { return .applied(false) }
            putKV(operation, existing: existing, session: nil, lockIndex: existing.lockIndex, at: index)
            return .applied(true)
        case .delete:
            if kv.remove(operation.key) != nil { touch(.kv, at: index) }
            return .done
        case .deleteTree:
            let doomed = kvEntries(prefix: operation.key)
            for entry in doomed { kv.remove(entry.key) }
            if !doomed.isEmpty { touch(.kv, at: index) }
            return .done
        case .deleteCAS(let expected):
            guard (existing?.indexes.modifyIndex ?? 0) == expected else { return .applied(false) }
            if kv.remove(operation.key) != nil { touch(.kv, at: index) }
            return .applied(true)
        }
    }

    private mutating func putKV(_ operation: StateCommand.KVOperation, existing: KVEntry?, session: String?, lockIndex: UInt64, at index: UInt64) {
        let indexes = RaftIndexes(createIndex: existing?.indexes.createIndex ?? index, modifyIndex: index)
        kv.set(operation.key, KVEntry(key: operation.key, flags: operation.flags, value: operation.value, lockIndex: lockIndex, session: session, indexes: indexes))
        touch(.kv, at: index)
    }

    // MARK: - Sessions

    private mutating func createSession(_ session: Session, at index: UInt64) -> StateCommandResult {
        let nodeKey = Self.nodeKey(session.node)
        guard nodes[nodeKey] != nil else { return .refused("Missing node registration") }
        for checkID in session.nodeChecks {
            guard let check = checks[CheckKey(node: nodeKey, id: checkID)] else {
                return .refused("Missing check '\(checkID)' registration")
            }
            if check.status == .critical || check.status == .maintenance {
                return .refused("Check '\(checkID)' is in critical state")
            }
        }
        var session = session
        session.indexes = RaftIndexes(createIndex: index, modifyIndex: index)
        sessions.set(session.id, session)
        touch(.sessions, at: index)
        return .done
    }

    private mutating func invalidateSessions(onNode nodeKey: String, dependingOn checkID: String, at index: UInt64) {
        for session in sessions.values where Self.nodeKey(session.node) == nodeKey && session.nodeChecks.contains(checkID) {
            invalidateSession(session.id, at: index)
        }
    }

    /// Ends a session: its locks are released (behavior `release`) or its keys deleted (`delete`).
    mutating func invalidateSession(_ id: String, at index: UInt64) {
        guard let session = sessions.remove(id) else { return }
        touch(.sessions, at: index)
        let held = kv.values.filter { $0.session == id }
        releasedLocks += held.map { ($0.key, session.lockDelay) }
        for var entry in held {
            switch session.behavior {
            case .release:
                entry.session = nil
                entry.indexes.modifyIndex = index
                kv.set(entry.key, entry)
            case .delete:
                kv.remove(entry.key)
            }
        }
        if !held.isEmpty { touch(.kv, at: index) }
        // Consul deletes the prepared queries tied to a session when the session ends.
        let tied = preparedQueries.values.filter { $0.session == id }
        for query in tied { preparedQueries.remove(query.id) }
        if !tied.isEmpty { touch(.preparedQueries, at: index) }
    }
}
