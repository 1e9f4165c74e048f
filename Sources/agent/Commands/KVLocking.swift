import ConsulCore
import Foundation

/// The value of a semaphore's `<prefix>/.lock` key, as Consul's API client writes it:
/// `{"Limit":2,"Holders":{"<session>":true}}`. Pure; changed only through CAS writes of the key.
struct SemaphoreHolders: Sendable, Equatable {
    var limit: Int
    var holders: Set<String>

    enum DecodeError: Error, Equatable, CustomStringConvertible {
        case notJSON
        var description: String { "failed to unmarshal lock: the .lock value is not a semaphore's JSON" }
    }

    /// An absent or empty key is a semaphore nobody holds yet, with the caller's limit.
    static func decode(_ value: [UInt8]?, defaultLimit: Int) throws(DecodeError) -> SemaphoreHolders {
        guard let value, !value.isEmpty else { return SemaphoreHolders(limit: defaultLimit, holders: []) }
        guard let json = try? JSONConfigParser.parseValue(bytes: value, file: ".lock"), let limit = json["Limit"]?.integerValue else {
            throw .notJSON
        }
        let holders = json["Holders"]?.objectValue?.keys ?? []
        return SemaphoreHolders(limit: Int(limit), holders: Set(holders))
    }

    /// Holders sorted, so the same set always writes the same bytes.
    var encoded: [UInt8] {
        var writer = JSONWriter()
        writer.object { w in
            w.field("Limit") { $0.int(limit) }
            w.field("Holders") { h in
                h.object { o in
                    for holder in holders.sorted() { o.field(dynamic: holder) { $0.bool(true) } }
                }
            }
        }
        return writer.bytes
    }

    /// Drops holders whose session no longer holds a key under the prefix (their contender key
    /// went with their session), as Consul's semaphore does before counting.
    func pruned(aliveSessions: Set<String>) -> SemaphoreHolders {
        SemaphoreHolders(limit: limit, holders: holders.intersection(aliveSessions))
    }

    var isFull: Bool { holders.count >= limit }

    func adding(_ session: String) -> SemaphoreHolders {
        SemaphoreHolders(limit: limit, holders: holders.union([session]))
    }

    func removing(_ session: String) -> SemaphoreHolders {
        SemaphoreHolders(limit: limit, holders: holders.subtracting([session]))
    }
}

/// One KV entry as `/v1/kv` answers it.
struct KVPair: Sendable, Equatable {
    var key: String
    var flags: UInt64
    var session: String?
    var value: [UInt8]
    var modifyIndex: UInt64
}

/// The KV and session calls `consul lock` makes, over the agent's HTTP API, each cancellable.
struct KVLockingClient: Sendable {
    let http: AgentHTTPClient
    /// `-datacenter`.
    let datacenter: String?

    struct Failure: Error, CustomStringConvertible {
        var description: String
        /// A 5xx or a connection problem: worth retrying while monitoring.
        var retryable: Bool
    }

    private func call(_ method: String, _ path: String, _ query: [(String, String?)] = [], body: [UInt8] = []) async throws(Failure) -> AgentHTTPClient.Response {
        var parameters = query
        if let datacenter, !datacenter.isEmpty { parameters.append(("dc", datacenter)) }
        let response: AgentHTTPClient.Response
        do {
            response = try await http.send(.init(rawValue: method), HTTPOptions.target(path, parameters), body: body)
        } catch {
            throw Failure(description: error.description, retryable: true)
        }
        guard (200..<300).contains(response.status) || response.status == 404 else {
            throw Failure(
                description: "Unexpected response code: \(response.status) (\(response.text.trimmingCharacters(in: .whitespacesAndNewlines)))",
                retryable: response.status >= 500)
        }
        return response
    }

    /// A blocking query's parameters: `wait` rounded to milliseconds.
    private static func blocking(index: UInt64, wait: Duration?) -> [(String, String?)] {
        var query: [(String, String?)] = []
        if index > 0 { query.append(("index", String(index))) }
        if let wait {
            let (seconds, attoseconds) = wait.components
            query.append(("wait", "\(max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000))ms"))
        }
        return query
    }

    /// The entries at `key` (one, or every one under it with `recurse`), and the index to block on next.
    func read(_ key: String, recurse: Bool, index: UInt64 = 0, wait: Duration? = nil, consistent: Bool = false) async throws(Failure) -> (pairs: [KVPair], index: UInt64) {
        var query = Self.blocking(index: index, wait: wait)
        if recurse { query.append(("recurse", nil)) }
        if consistent { query.append(("consistent", nil)) }
        let response = try await call("GET", "/v1/kv/" + key, query)
        let nextIndex = response.header("X-Consul-Index").flatMap { UInt64($0) } ?? 0
        guard response.status == 200 else { return ([], nextIndex) }
        guard let json = try? JSONConfigParser.parseValue(bytes: response.body, file: "agent response"), let entries = json.arrayValue else {
            throw Failure(description: "Error decoding the agent's KV answer", retryable: false)
        }
        let pairs = entries.map { entry in
            KVPair(
                key: entry.text("Key"), flags: entry["Flags"]?.numberValue.flatMap { UInt64($0.text) } ?? 0,
                session: entry["Session"]?.stringValue,
                value: entry["Value"]?.stringValue.flatMap { Data(base64Encoded: $0) }.map { Array($0) } ?? [],
                modifyIndex: entry["ModifyIndex"]?.numberValue.flatMap { UInt64($0.text) } ?? 0)
        }
        return (pairs, nextIndex)
    }

    /// PUT with `?acquire`, `?release` or `?cas`: whether it took effect.
    func write(_ key: String, value: [UInt8] = [], flags: UInt64, _ condition: (String, String)) async throws(Failure) -> Bool {
        let response = try await call("PUT", "/v1/kv/" + key, [("flags", String(flags)), (condition.0, condition.1)], body: value)
        return response.text.trimmingCharacters(in: .whitespacesAndNewlines) == "true"
    }

    func delete(_ key: String, cas: UInt64? = nil) async throws(Failure) -> Bool {
        let response = try await call("DELETE", "/v1/kv/" + key, cas.map { [("cas", String($0))] } ?? [])
        return response.text.trimmingCharacters(in: .whitespacesAndNewlines) == "true"
    }

    /// A session for the lock (Consul's defaults: TTL 15s, renewed at half of it).
    func createSession(name: String, ttl: String, deleteOnInvalidate: Bool) async throws(Failure) -> String {
        var writer = JSONWriter()
        writer.object { w in
            w.field("Name") { $0.string(name) }
            w.field("TTL") { $0.string(ttl) }
            if deleteOnInvalidate { w.field("Behavior") { $0.string("delete") } }
        }
        let response = try await call("PUT", "/v1/session/create", body: writer.bytes)
        guard let id = (try? JSONConfigParser.parseValue(bytes: response.body, file: "agent response"))?["ID"]?.stringValue else {
            throw Failure(description: "Error decoding the session the agent created", retryable: false)
        }
        return id
    }

    /// False when the session is gone (the lock it held is lost).
    func renewSession(_ id: String) async throws(Failure) -> Bool {
        try await call("PUT", "/v1/session/renew/" + id).status == 200
    }

    func destroySession(_ id: String) async throws(Failure) {
        _ = try await call("PUT", "/v1/session/destroy/" + id)
    }
}

/// Keys under a prefix, as Go's `path.Join` makes them for Consul (an empty prefix adds no slash).
enum KVPath {
    static func join(_ prefix: String, _ name: String) -> String { prefix.isEmpty ? name : prefix + "/" + name }
}

/// The flag values Consul's API client marks its lock and semaphore keys with, so a lock and a
/// semaphore (or anything else) at one prefix are told apart and reported as a conflict.
enum KVLockFlags {
    static let lock: UInt64 = 0x2ddc_cbc0_58a5_0c18
    static let semaphore: UInt64 = 0xe0f6_9a2b_aa41_4de0
}

/// Why acquiring, monitoring or releasing failed, in Consul's words.
struct KVLockError: Error, CustomStringConvertible {
    var description: String
    static let lockConflict = KVLockError(description: "Existing key does not match lock use")
    static let semaphoreConflict = KVLockError(description: "Existing key does not match semaphore use")
    static let lockInUse = KVLockError(description: "Lock in use")
    static let semaphoreInUse = KVLockError(description: "Semaphore in use")
}

/// A lock (`-n 1`) or semaphore (`-n N`) at a KV prefix, held by one session, following the
/// algorithms of Consul's API client (leader election; semaphore) and its key layout.
protocol KVLocking: Sendable {
    /// True once held; false when `timeout` (one-shot mode) ran out first.
    func acquire(session: String, timeout: Duration?) async throws(KVLockError) -> Bool
    /// Returns when the session no longer holds it (or the agent could not be asked
    /// `monitorRetries` times in a row).
    func monitor(session: String, monitorRetries: Int) async
    func release(session: String) async throws(KVLockError)
    /// Removes the lock key when nobody holds it: `inUse` when someone does.
    func cleanup() async throws(KVLockError)
    var inUse: KVLockError { get }
}

extension KVLocking {
    /// Consul's API client waits this long between monitor retries.
    static var monitorRetryPause: Duration { .seconds(2) }
    /// How long one blocking query waits while acquiring (Consul's default lock wait time).
    static var acquireWait: Duration { .seconds(15) }

    /// Blocking reads of `key` (consistent, as Consul's client monitors) until `held` says the
    /// session lost it, or the agent could not be asked `monitorRetries` times in a row.
    static func watchWhileHeld(
        _ client: KVLockingClient, _ key: String, recurse: Bool, monitorRetries: Int, held: ([KVPair]) -> Bool
    ) async {
        var index: UInt64 = 0
        var retries = monitorRetries
        while !Task.isCancelled {
            do {
                let read = try await client.read(key, recurse: recurse, index: index, consistent: true)
                guard held(read.pairs) else { return }
                index = read.index
                retries = monitorRetries
            } catch {
                guard error.retryable, retries > 0, !Task.isCancelled else { return }
                retries -= 1
                try? await Task.sleep(for: monitorRetryPause)
            }
        }
    }

    /// `cleanup`'s last step: deletes the lock record only if nobody changed it since it was read
    /// (someone who did is using it: `inUse`).
    static func remove(_ client: KVLockingClient, _ key: String, at modifyIndex: UInt64, what: String, inUse: KVLockError) async throws(KVLockError) {
        let removed: Bool
        do {
            removed = try await client.delete(key, cas: modifyIndex)
        } catch {
            throw KVLockError(description: "failed to remove \(what): \(error.description)")
        }
        if !removed { throw inUse }
    }

    /// Time left in one-shot mode (`-timeout`); nil: none left. No timeout: the default wait.
    static func nextWait(started: ContinuousClock.Instant, timeout: Duration?, attempts: Int) -> Duration?? {
        guard let timeout else { return .some(acquireWait) }
        guard attempts > 0 else { return .some(min(acquireWait, timeout)) }
        let elapsed = ContinuousClock.now - started
        guard elapsed < timeout else { return .none }
        return .some(min(acquireWait, timeout - elapsed))
    }
}

/// `<prefix>/.lock` held with the session (Consul's leader-election lock).
struct KVLock: KVLocking {
    let client: KVLockingClient
    let key: String
    /// After a failed acquire (lock-delay, a race), Consul's client waits this long before trying again.
    static let retryPause: Duration = .seconds(5)

    var inUse: KVLockError { .lockInUse }

    func acquire(session: String, timeout: Duration?) async throws(KVLockError) -> Bool {
        let started = ContinuousClock.now
        var attempts = 0
        var index: UInt64 = 0
        while !Task.isCancelled {
            guard case .some(let wait) = Self.nextWait(started: started, timeout: timeout, attempts: attempts) else { return false }
            attempts += 1
            let pair: KVPair?
            do {
                let read = try await client.read(key, recurse: false, index: index, wait: wait)
                pair = read.pairs.first
                index = read.index
            } catch {
                throw KVLockError(description: "failed to read lock: \(error.description)")
            }
            if let pair {
                guard pair.flags == KVLockFlags.lock else { throw .lockConflict }
                if pair.session == session { return true }
                if let holder = pair.session, !holder.isEmpty { continue }
            }
            let acquired: Bool
            do {
                acquired = try await client.write(key, flags: KVLockFlags.lock, ("acquire", session))
            } catch {
                throw KVLockError(description: "failed to acquire lock: \(error.description)")
            }
            if acquired { return true }
            try? await Task.sleep(for: Self.retryPause)
        }
        return false
    }

    func monitor(session: String, monitorRetries: Int) async {
        await Self.watchWhileHeld(client, key, recurse: false, monitorRetries: monitorRetries) { pairs in
            pairs.first?.session == session
        }
    }

    func release(session: String) async throws(KVLockError) {
        do {
            _ = try await client.write(key, flags: KVLockFlags.lock, ("release", session))
        } catch {
            throw KVLockError(description: "failed to release lock: \(error.description)")
        }
    }

    func cleanup() async throws(KVLockError) {
        let pair: KVPair?
        do {
            pair = try await client.read(key, recurse: false).pairs.first
        } catch {
            throw KVLockError(description: "failed to read lock: \(error.description)")
        }
        guard let pair else { return }
        guard pair.flags == KVLockFlags.lock else { throw .lockConflict }
        if let holder = pair.session, !holder.isEmpty { throw .lockInUse }
        try await Self.remove(client, key, at: pair.modifyIndex, what: "lock", inUse: .lockInUse)
    }
}

/// A semaphore under `<prefix>/`: each contender holds `<prefix>/<session>` with its session, and
/// `<prefix>/.lock` lists the holders (at most `limit`), changed only by CAS.
struct KVSemaphore: KVLocking {
    let client: KVLockingClient
    let prefix: String
    let limit: Int

    var lockKey: String { KVPath.join(prefix, ".lock") }
    var inUse: KVLockError { .semaphoreInUse }
    /// What the semaphore's keys are listed with: the prefix as a directory.
    private var listing: String { prefix.isEmpty ? "" : prefix + "/" }

    private func contenderKey(_ session: String) -> String { KVPath.join(prefix, session) }

    /// The `.lock` entry among `pairs`, its decoded holders pruned of dead sessions.
    private func holders(in pairs: [KVPair]) throws(KVLockError) -> (pair: KVPair?, holders: SemaphoreHolders) {
        let lockPair = pairs.first { $0.key == lockKey }
        if let lockPair, lockPair.flags != KVLockFlags.semaphore { throw .semaphoreConflict }
        let decoded: SemaphoreHolders
        do {
            decoded = try SemaphoreHolders.decode(lockPair?.value, defaultLimit: limit)
        } catch {
            throw KVLockError(description: error.description)
        }
        let alive = Set(pairs.compactMap { $0.session.flatMap { $0.isEmpty ? nil : $0 } })
        return (lockPair, decoded.pruned(aliveSessions: alive))
    }

    func acquire(session: String, timeout: Duration?) async throws(KVLockError) -> Bool {
        let entered: Bool
        do {
            entered = try await client.write(contenderKey(session), flags: KVLockFlags.semaphore, ("acquire", session))
        } catch {
            throw KVLockError(description: "failed to make contender entry: \(error.description)")
        }
        guard entered else { throw KVLockError(description: "failed to make contender entry") }
        let started = ContinuousClock.now
        var attempts = 0
        var index: UInt64 = 0
        while !Task.isCancelled {
            guard case .some(let wait) = Self.nextWait(started: started, timeout: timeout, attempts: attempts) else { return false }
            attempts += 1
            let pairs: [KVPair]
            do {
                let read = try await client.read(listing, recurse: true, index: index, wait: wait)
                pairs = read.pairs
                index = read.index
            } catch {
                throw KVLockError(description: "failed to read prefix: \(error.description)")
            }
            let (lockPair, current) = try holders(in: pairs)
            guard current.limit == limit else {
                throw KVLockError(description: "semaphore limit conflict (lock: \(current.limit), local: \(limit))")
            }
            if current.holders.contains(session) { return true }
            if current.isFull { continue }
            let updated = current.adding(session)
            do {
                if try await client.write(lockKey, value: updated.encoded, flags: KVLockFlags.semaphore, ("cas", String(lockPair?.modifyIndex ?? 0))) {
                    return true
                }
            } catch {
                throw KVLockError(description: "failed to update lock: \(error.description)")
            }
            // Another contender changed the holders first: read again at once.
            index = 0
        }
        return false
    }

    func monitor(session: String, monitorRetries: Int) async {
        await Self.watchWhileHeld(client, listing, recurse: true, monitorRetries: monitorRetries) { pairs in
            (try? holders(in: pairs))?.holders.holders.contains(session) == true
        }
    }

    func release(session: String) async throws(KVLockError) {
        // Out of the holder set (CAS, retried on a race), then the contender key goes.
        for _ in 0..<64 {
            let pair: KVPair?
            do {
                pair = try await client.read(lockKey, recurse: false).pairs.first
            } catch {
                throw KVLockError(description: "failed to read lock: \(error.description)")
            }
            let current: SemaphoreHolders
            do {
                current = try SemaphoreHolders.decode(pair?.value, defaultLimit: limit)
            } catch {
                throw KVLockError(description: error.description)
            }
            guard current.holders.contains(session) else { break }
            do {
                let updated = current.removing(session)
                if try await client.write(lockKey, value: updated.encoded, flags: KVLockFlags.semaphore, ("cas", String(pair?.modifyIndex ?? 0))) {
                    break
                }
            } catch {
                throw KVLockError(description: "failed to update lock: \(error.description)")
            }
        }
        do {
            _ = try await client.delete(contenderKey(session))
        } catch {
            throw KVLockError(description: "failed to remove contender entry: \(error.description)")
        }
    }

    func cleanup() async throws(KVLockError) {
        let pairs: [KVPair]
        do {
            pairs = try await client.read(listing, recurse: true).pairs
        } catch {
            throw KVLockError(description: "failed to read prefix: \(error.description)")
        }
        let (lockPair, current) = try holders(in: pairs)
        guard let lockPair else { return }
        if !current.holders.isEmpty { throw .semaphoreInUse }
        try await Self.remove(client, lockKey, at: lockPair.modifyIndex, what: "semaphore", inUse: .semaphoreInUse)
    }
}
