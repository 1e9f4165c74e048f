import ConsulCore
import ConsulCrypto

// User events and queries (serf.go handleUserEvent/handleQuery/handleQueryResponse, query.go,
// event.go Respond, internal_query.go, keymanager.go).
extension SerfState {
    // MARK: - User events

    /// serf `UserEvent`: validates, records and queues an event of ours.
    mutating func userEvent(name: String, payload: [UInt8], coalesce: Bool, now: Timestamp) throws(SerfError) {
        let limit = config.userEventSizeLimit
        guard name.utf8.count + payload.count <= limit else { throw .userEventTooLarge(limit: limit) }
        let message = SerfUserEventMessage(lamportTime: eventClock.time, name: name, payload: payload, canCoalesce: coalesce)
        let encoded = SerfMessage.userEvent(message).encoded
        guard encoded.count <= limit else { throw .userEventTooLarge(limit: limit) }
        eventClock.increment()
        _ = handleUserEvent(message, now: now)
        eventQueue.queue(encoded, finished: &finishedTokens)
    }

    /// serf `handleUserEvent`: true for an event not seen before (deliver and re-gossip it).
    mutating func handleUserEvent(_ event: SerfUserEventMessage, now: Timestamp) -> Bool {
        eventClock.witness(event.lamportTime)
        if event.lamportTime < eventMinTime { return false }
        let size = LamportTime(eventRing.count)
        let current = eventClock.time
        if current > size && event.lamportTime < current - size {
            log(.warn, "received old event \(event.name) from time \(event.lamportTime) (current: \(current))")
            return false
        }
        let slot = Int(event.lamportTime % size)
        let item = SerfUserEvent(name: event.name, payload: event.payload)
        if var seen = eventRing[slot], seen.lamportTime == event.lamportTime {
            if seen.events.contains(item) { return false }
            seen.events.append(item)
            eventRing[slot] = seen
        } else {
            eventRing[slot] = SerfUserEvents(lamportTime: event.lamportTime, events: [item])
        }
        deliver(SerfUserEventDelivery(lamportTime: event.lamportTime, name: event.name, payload: event.payload, coalesce: event.canCoalesce),
                now: now)
        return true
    }

    /// Hands an event to the application, holding coalescable ones when coalescing is on: of the
    /// events with one name only those of the latest Lamport time are delivered at the flush.
    private mutating func deliver(_ event: SerfUserEventDelivery, now: Timestamp) {
        guard event.coalesce, config.userCoalescePeriod > .zero, config.userQuiescentPeriod > .zero else {
            effects.append(.userEvent(event))
            return
        }
        if coalesceQuantum == nil { coalesceQuantum = now + config.userCoalescePeriod }
        coalesceQuiescent = now + config.userQuiescentPeriod
        if let latest = coalesced[event.name], latest.time >= event.lamportTime {
            if latest.time == event.lamportTime { coalesced[event.name]!.events.append(event) }
        } else {
            coalesced[event.name] = (event.lamportTime, [event])
        }
    }

    var coalesceDeadline: Timestamp? {
        guard let quantum = coalesceQuantum, let quiescent = coalesceQuiescent else { return nil }
        return min(quantum, quiescent)
    }

    mutating func flushCoalesced() {
        for name in coalesced.keys.sorted() {
            for event in coalesced[name]!.events { effects.append(.userEvent(event)) }
        }
        coalesced.removeAll()
        coalesceQuantum = nil
        coalesceQuiescent = nil
    }

    // MARK: - Queries we send

    /// serf `DefaultQueryTimeout`.
    var defaultQueryTimeout: Duration {
        config.swim.gossipInterval * config.queryTimeoutMult * Int(log10(Double(swimMemberCount + 1)).rounded(.up))
    }

    /// serf `Query`: broadcasts a query (and handles it locally, as serf does).
    mutating func query(
        name: String, payload: [UInt8], parameters: SerfQueryParameters, keyOperation: SerfKeyOperation? = nil,
        conflict: SerfNameConflict? = nil, now: Timestamp
    ) throws(SerfError) -> SerfQueryID {
        guard pendingQueries.count < config.maxPendingQueries else { throw .tooManyPendingQueries(limit: config.maxPendingQueries) }
        var filters: [[UInt8]] = []
        if !parameters.filterNodes.isEmpty { filters.append(SerfQueryFilter.nodes(parameters.filterNodes).encoded) }
        for tag in parameters.filterTags.keys.sorted() {
            filters.append(SerfQueryFilter.tag(tag, expression: parameters.filterTags[tag]!).encoded)
        }
        let timeout = parameters.timeout > .zero ? parameters.timeout : defaultQueryTimeout
        let message = SerfQueryMessage(
            lamportTime: queryClock.time, id: UInt32(truncatingIfNeeded: random.next() & 0x7FFF_FFFF),
            addr: localAddress.ip, port: localAddress.port, sourceNode: localName, filters: filters,
            flags: parameters.requestAck ? SerfQueryMessage.flagAck : 0, relayFactor: parameters.relayFactor,
            timeoutNanoseconds: timeout.totalNanoseconds, name: name, payload: payload)
        let encoded = SerfMessage.query(message).encoded
        guard encoded.count <= config.querySizeLimit else { throw .queryTooLarge(limit: config.querySizeLimit) }
        let id = SerfQueryID(lamportTime: message.lamportTime, id: message.id)
        var pending = PendingQuery(id: id, deadline: now + timeout, keyOperation: keyOperation, conflict: conflict)
        pending.keyResult.nodes = swimMemberCount
        pendingQueries[message.lamportTime] = pending
        queryClock.increment()
        _ = handleQuery(message, now: now)
        queryQueue.queue(encoded, finished: &finishedTokens)
        return id
    }

    /// A key operation for the whole pool (serf `KeyManager`): an internal query whose answers are
    /// tallied into one `keyOperationFinished`.
    mutating func keyOperation(_ operation: SerfKeyOperation, key: String?, now: Timestamp) throws(SerfError) -> SerfQueryID {
        var raw: [UInt8] = []
        if let key {
            do {
                raw = try GossipKey(base64: key).bytes
            } catch {
                throw .badKey(error.description)
            }
        }
        let payload = SerfMessage.keyRequest(SerfKeyRequest(key: raw)).encoded
        return try query(name: operation.query.rawValue, payload: payload, parameters: SerfQueryParameters(), keyOperation: operation, now: now)
    }

    var queryDeadline: Timestamp? {
        var earliest: Timestamp?
        for pending in pendingQueries.values where earliest.map({ pending.deadline < $0 }) ?? true { earliest = pending.deadline }
        return earliest
    }

    mutating func expireQueries(now: Timestamp) {
        guard pendingQueries.values.contains(where: { $0.deadline <= now }) else { return }
        for time in pendingQueries.filter({ $0.value.deadline <= now }).map({ $0.key }).sorted() {
            finishQuery(time)
        }
    }

    private mutating func finishQuery(_ time: LamportTime) {
        guard let pending = pendingQueries.removeValue(forKey: time) else { return }
        if let conflict = pending.conflict {
            concludeNameConflict(conflict)
            return
        }
        if let operation = pending.keyOperation {
            effects.append(.keyOperationFinished(pending.id, operation, pending.keyResult))
        }
        effects.append(.queryFinished(pending.id))
    }

    /// serf `handleQueryResponse`.
    mutating func handleQueryResponse(_ response: SerfQueryResponseMessage, now: Timestamp) {
        guard var pending = pendingQueries[response.lamportTime] else {
            log(.warn, "reply for non-running query (LTime: \(response.lamportTime), ID: \(response.id)) From: \(response.from)")
            return
        }
        guard pending.id.id == response.id else {
            log(.warn, "query reply ID mismatch (Local: \(pending.id.id), Response: \(response.id))")
            return
        }
        guard now <= pending.deadline else { return }
        if response.isAck {
            guard pending.acks.insert(response.from).inserted else { return }
            pendingQueries[response.lamportTime] = pending
            effects.append(.queryAck(pending.id, from: response.from))
            return
        }
        guard pending.responses.insert(response.from).inserted else { return }
        if pending.conflict != nil {
            countConflictVote(&pending.conflict!, payload: response.payload)
            pendingQueries[response.lamportTime] = pending
            return
        }
        if pending.keyOperation != nil {
            tally(&pending.keyResult, from: response.from, payload: response.payload)
            pendingQueries[response.lamportTime] = pending
            if pending.keyResult.responses >= pending.keyResult.nodes { finishQuery(response.lamportTime) }
            return
        }
        pendingQueries[response.lamportTime] = pending
        effects.append(.queryResponse(pending.id, from: response.from, payload: response.payload))
    }

    /// serf `streamKeyResp` for one answer.
    private func tally(_ result: inout SerfKeyOperationResult, from: String, payload: [UInt8]) {
        result.responses += 1
        guard case .keyResponse(let answer)? = try? SerfMessage.decode(payload) else {
            result.messages[from] = "Invalid key query response type: \(payload)"
            result.errors += 1
            return
        }
        if !answer.result {
            result.messages[from] = answer.message
            result.errors += 1
        } else if !answer.message.isEmpty {
            result.messages[from] = answer.message
        }
        for key in answer.keys { result.keys[key, default: 0] += 1 }
        result.primaryKeys[answer.primaryKey, default: 0] += 1
    }

    // MARK: - Queries we receive

    /// serf `handleQuery`: true when the query is new and should be re-gossiped.
    mutating func handleQuery(_ query: SerfQueryMessage, now: Timestamp) -> Bool {
        queryClock.witness(query.lamportTime)
        if query.lamportTime < queryMinTime { return false }
        let size = LamportTime(queryRing.count)
        let current = queryClock.time
        if current > size && query.lamportTime < current - size {
            log(.warn, "received old query \(query.name) from time \(query.lamportTime) (current: \(current))")
            return false
        }
        let slot = Int(query.lamportTime % size)
        if var seen = queryRing[slot], seen.time == query.lamportTime {
            if seen.ids.contains(query.id) { return false }
            seen.ids.append(query.id)
            queryRing[slot] = seen
        } else {
            queryRing[slot] = (query.lamportTime, [query.id])
        }
        let rebroadcast = !query.noBroadcast
        guard shouldProcess(query.filters) else { return rebroadcast }
        guard query.addr.count == 4 || query.addr.count == 16, query.port != 0 else {
            log(.warn, "query \(query.name) has no usable source address")
            return rebroadcast
        }
        let source = GossipAddress(ip: query.addr, port: query.port)
        let timeout = Duration.nanoseconds(max(0, query.timeoutNanoseconds))
        if query.wantsAck {
            let ack = SerfQueryResponseMessage(lamportTime: query.lamportTime, id: query.id, from: localName, flags: SerfQueryMessage.flagAck)
            send(.queryResponse(ack), to: source)
            relay(ack, factor: query.relayFactor, to: source, node: query.sourceNode)
        }
        let incoming = SerfIncomingQuery(
            query: SerfQueryID(lamportTime: query.lamportTime, id: query.id), name: query.name, payload: query.payload,
            source: source, sourceNode: query.sourceNode, relayFactor: query.relayFactor, deadline: now + timeout)
        if query.name.hasPrefix(SerfInternalQuery.prefix) {
            handleInternalQuery(incoming, now: now)
        } else {
            effects.append(.query(incoming))
        }
        return rebroadcast
    }

    /// serf `shouldProcessQuery`. Tag expressions run on Swift's backtracking regex engine, not
    /// RE2, so expressions that could backtrack without bound (quantified groups) or are long are
    /// refused: a peer's query must not be able to stall us.
    private func shouldProcess(_ filters: [[UInt8]]) -> Bool {
        for raw in filters {
            guard let filter = try? SerfQueryFilter.decode(raw) else { return false }
            switch filter {
            case .nodes(let names):
                if !names.contains(localName) { return false }
            case .tag(let tag, let expression):
                guard let matched = Self.matches(expression, tags[tag] ?? "") else { return false }
                if !matched { return false }
            }
        }
        return true
    }

    /// Unanchored regex search like Go's `regexp.MatchString`; nil when the expression is refused.
    /// The expression comes from the peer that sent the query: it is matched in linear time (RE2
    /// syntax, as serf's), and a long one is refused outright.
    static func matches(_ expression: String, _ value: String) -> Bool? {
        guard expression.utf8.count <= 256, let regex = try? LinearRegex(expression) else { return nil }
        return regex.matches(value)
    }

    /// serf `Query.Respond`: answer to the query's source, plus relays.
    mutating func respond(to query: SerfIncomingQuery, payload: [UInt8], now: Timestamp) throws(SerfError) {
        let response = SerfQueryResponseMessage(lamportTime: query.query.lamportTime, id: query.query.id, from: localName, payload: payload)
        let encoded = SerfMessage.queryResponse(response).encoded
        guard encoded.count <= config.queryResponseSizeLimit else { throw .responseTooLarge(limit: config.queryResponseSizeLimit) }
        guard now <= query.deadline else { throw .responsePastDeadline }
        sendRaw(encoded, to: query.source)
        relay(response, factor: query.relayFactor, to: query.source, node: query.sourceNode)
    }

    /// serf `relayResponse`: the same answer also through `factor` random members, for lossy paths.
    private mutating func relay(_ response: SerfQueryResponseMessage, factor: UInt8, to destination: GossipAddress, node: String) {
        guard factor > 0, members.count >= Int(factor) + 1 else { return }
        let header = SerfRelayHeader(destinationIP: destination.ip, destinationPort: Int(destination.port), destinationName: node)
        let raw = SerfMessage.relay(header, inner: SerfMessage.queryResponse(response).encoded).encoded
        guard raw.count <= config.queryResponseSizeLimit else {
            log(.error, "relayed response exceeds limit of \(config.queryResponseSizeLimit) bytes")
            return
        }
        var candidates = members.keys.sorted().compactMap { name -> SerfMemberInfo? in
            guard let info = members[name]?.info, name != localName, info.status == .alive, info.versions.protocolMax >= 5 else { return nil }
            return info
        }
        for _ in 0..<min(Int(factor), candidates.count) {
            let pick = candidates.remove(at: Int(random.next() % UInt64(candidates.count)))
            sendRaw(raw, to: pick.address)
        }
    }

    // MARK: - Internal queries (serf internal_query.go)

    private mutating func handleInternalQuery(_ query: SerfIncomingQuery, now: Timestamp) {
        switch SerfInternalQuery(rawValue: query.name) {
        case .ping?:
            break
        case .conflict?:
            let node = String(decoding: query.payload, as: UTF8.self)
            guard node != localName else { return }
            log(.debug, "Got conflict resolution query for '\(node)'")
            try? respond(to: query, payload: SerfMessage.conflictResponse(members[node]?.info.wire).encoded, now: now)
        case .installKey?, .useKey?, .removeKey?:
            respondToKeyQuery(query, change: true, now: now)
        case .listKeys?:
            respondToKeyQuery(query, change: false, now: now)
        case nil:
            log(.warn, "Unhandled internal query '\(query.name)'")
        }
    }

    private mutating func respondToKeyQuery(_ query: SerfIncomingQuery, change: Bool, now: Timestamp) {
        var response = SerfKeyResponse(result: false)
        defer { sendKeyResponse(query, response, now: now) }
        guard var ring = keyring else {
            response.message = change ? "No keyring to modify (encryption not enabled)" : "Keyring is empty (encryption not enabled)"
            log(.error, response.message)
            return
        }
        guard change else {
            log(.info, "Received list-keys query")
            response.keys = ring.base64Keys
            response.primaryKey = ring.primaryKey.base64
            response.result = true
            return
        }
        let request: SerfKeyRequest
        do {
            guard query.payload.first == SerfMessageType.keyRequest.rawValue,
                  case .keyRequest(let decoded) = try SerfMessage.decode(query.payload)
            else {
                log(.error, "Failed to decode key request")
                return
            }
            request = decoded
        } catch {
            log(.error, "Failed to decode key request: \(error)")
            return
        }
        let key: GossipKey
        do {
            key = try GossipKey(bytes: request.key)
        } catch {
            response.message = "key size must be 16, 24 or 32 bytes"
            return
        }
        let operation = String(query.name.dropFirst(SerfInternalQuery.prefix.count))
        log(.info, "Received \(operation) query")
        do {
            switch SerfInternalQuery(rawValue: query.name) {
            case .installKey?: ring.install(key)
            case .useKey?: try ring.use(key)
            case .removeKey?: try ring.remove(key)
            default: return
            }
        } catch {
            response.message = error.description
            log(.error, "Failed to \(operation): \(error.description)")
            return
        }
        if ring != keyring {
            keyring = ring
            effects.append(.keyringChanged(ring))
        }
        response.result = true
    }

    /// Sends a key response; a key list too large for one response is cut down, as serf does.
    private mutating func sendKeyResponse(_ query: SerfIncomingQuery, _ response: SerfKeyResponse, now: Timestamp) {
        var response = response
        let total = response.keys.count
        var keep = config.queryResponseSizeLimit / 25
        while true {
            do {
                try respond(to: query, payload: SerfMessage.keyResponse(response).encoded, now: now)
                return
            } catch .responseTooLarge where keep > 0 && !response.keys.isEmpty {
                keep = min(keep, response.keys.count) - 1
                response.keys = Array(response.keys.prefix(keep))
                response.message = "truncated key list response, showing first \(keep) of \(total) keys"
            } catch {
                log(.error, "Failed to respond to key query: \(error)")
                return
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
