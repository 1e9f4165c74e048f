import ConsulCore
import ConsulCrypto
import NIOCore
import NIOPosix
import Synchronization

/// A gossip (serf) node on real sockets: one UDP and one TCP listener on the same address and
/// port, the pure `SerfCore` behind a lock, and timers on an event loop driven by an injected
/// clock. Every datagram and stream is encrypted with the keyring (Consul's
/// `encrypt_verify_incoming` / `encrypt_verify_outgoing` decide what is refused and what is
/// sent in the clear); whatever a peer sends is bounded by `GossipNetworkLimits` and ends in a
/// counted, rate-limited log line at worst.
package final class GossipNode: Sendable {
    package let configuration: GossipNodeConfiguration
    private let group: any EventLoopGroup
    private let eventLoop: any EventLoop
    private let clock: any MonotonicClock
    private let logger: RateLimitedLogger
    private let onEvent: GossipEventHandler?
    private let onNameConflict: (@Sendable (SerfNameConflict) -> Void)?
    private let seed: UInt64
    private let recorder = GossipMetricsRecorder()
    private let packetCodec: PacketCodec
    private let streamCodec: StreamCodec
    private let state = Mutex(State())
    private let cipher: Mutex<Keyring?>

    private struct State: ~Copyable {
        var core: SerfCore?
        var udp: (any Channel)?
        var tcp: (any Channel)?
        var address: GossipAddress?
        var stopped = false
        var wakes = WakeSchedule()
        var timer: Scheduled<Void>?
        var inbound: [InboundStreamID: any Channel] = [:]
        var nextInbound: UInt64 = 0
        var openStreams = 0
        var nextJoin: UInt64 = 0
        var joins: [JoinID: CheckedContinuation<(Int, [String]), Never>] = [:]
        var leaveWaiters: [CheckedContinuation<Void, Never>] = []
        var keyOperations: [SerfQueryID: CheckedContinuation<SerfKeyOperationResult, Never>] = [:]
        var queries: [SerfQueryID: PendingQuery] = [:]
        var snapshot: GossipSnapshotFile?
        /// Alive members of the last run, from the snapshot (minus ourselves), by name.
        var previous: [(name: String, address: GossipAddress)] = []
        var lostNameConflict: SerfNameConflict?
        var nextForceLeave: UInt64 = 0
        var forceLeaves: [ForceLeaveID: CheckedContinuation<ForceLeaveOutcome, Never>] = [:]

        var pendingRequests: Int { joins.count + keyOperations.count + queries.count + forceLeaves.count }
    }

    private enum ForceLeaveOutcome {
        case gossiped, timedOut, refused(GossipNodeError)
    }

    private struct PendingQuery {
        var acks: [String] = []
        var responses: [(String, [UInt8])] = []
        var continuation: CheckedContinuation<SerfQueryResult, Never>
    }

    /// `seed` fixes the core's randomness (tests); nil draws it from OpenSSL. `onNameConflict` is
    /// called when another node claims our name and the pool sides with it: the node has then shut
    /// down its gossip (serf's behaviour; Consul logs it and the agent is cut off from the pool).
    package init(
        configuration: GossipNodeConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        clock: any MonotonicClock = SystemMonotonicClock(), logger: RateLimitedLogger, seed: UInt64? = nil,
        onEvent: GossipEventHandler? = nil, onNameConflict: (@Sendable (SerfNameConflict) -> Void)? = nil
    ) {
        self.onNameConflict = onNameConflict
        self.configuration = configuration
        self.group = group
        self.eventLoop = group.next()
        self.clock = clock
        self.logger = logger
        self.onEvent = onEvent
        self.seed = seed ?? SecureRandom.bytes(8).reduce(0) { $0 << 8 | UInt64($1) }
        self.packetCodec = PacketCodec(limits: configuration.limits.codec)
        self.streamCodec = StreamCodec(limits: configuration.limits.codec)
        self.cipher = Mutex(configuration.keyring)
    }

    // MARK: - Lifecycle

    /// Opens the snapshot (if configured), binds the listeners (UDP first; TCP on the same port)
    /// and starts the core.
    package func start() async throws(GossipNodeError) {
        var snapshot: GossipSnapshotFile?
        if let path = configuration.snapshotPath {
            do {
                snapshot = try await GossipSnapshotFile.open(path: path, rejoinAfterLeave: configuration.rejoinAfterLeave, logger: logger)
            } catch {
                throw .snapshotFailed(error.description)
            }
        }
        do throws(GossipNodeError) {
            try await bindAndStart(snapshot: snapshot)
        } catch {
            await snapshot?.close()
            throw error
        }
    }

    private func bindAndStart(snapshot: GossipSnapshotFile?) async throws(GossipNodeError) {
        let bind = configuration.bindAddress
        guard let host = GossipSocketAddress.socket(bind)?.ipAddress else { throw .bindFailed("bad bind address \(bind)") }
        var lastError = "unknown"
        for _ in 0..<(bind.port == 0 ? 5 : 1) {
            let udp: any Channel
            do {
                udp = try await datagramBootstrap().bind(host: host, port: Int(bind.port)).get()
            } catch {
                throw .bindFailed("UDP \(host):\(bind.port): \(error)")
            }
            guard let port = udp.localAddress?.port else {
                try? await udp.close()
                throw .bindFailed("UDP socket has no local port")
            }
            do {
                let tcp = try await serverBootstrap().bind(host: host, port: port).get()
                let bound = GossipAddress(ip: bind.ip, port: UInt16(port))
                try startCore(udp: udp, tcp: tcp, bound: bound, snapshot: snapshot)
                return
            } catch let error as GossipNodeError {
                try? await udp.close()
                throw error
            } catch {
                lastError = "TCP \(host):\(port): \(error)"
                try? await udp.close()
            }
        }
        throw .bindFailed(lastError)
    }

    private func startCore(udp: any Channel, tcp: any Channel, bound: GossipAddress, snapshot: GossipSnapshotFile?) throws(GossipNodeError) {
        let advertise = configuration.advertiseAddress.map { $0.port == 0 ? GossipAddress(ip: $0.ip, port: bound.port) : $0 } ?? bound
        guard advertise.ip.contains(where: { $0 != 0 }) else { throw .advertiseAddressRequired }
        var serf = configuration.serf
        let encrypting = configuration.keyring != nil && configuration.verifyOutgoing
        serf.swim.encryptionOverhead = encrypting ? GossipEnvelope.overhead(plaintextLength: 0) : 0
        var core: SerfCore
        do {
            core = try SerfCore(
                name: configuration.name, address: advertise, config: serf, keyring: configuration.keyring,
                random: SeededRandom(seed: seed), now: clock.now())
        } catch {
            throw .serf(error)
        }
        var previous: [(name: String, address: GossipAddress)] = []
        if let snapshot {
            let restored = snapshot.snapshot
            core.restoreClocks(member: restored.clock, event: restored.eventClock, query: restored.queryClock)
            previous = restored.previousMembers(excluding: configuration.name).filter { $0.address != advertise }
            logger.log(.info, "serf: snapshot \(snapshot.path): \(previous.count) previous member(s), clocks restored (member \(restored.clock), event \(restored.eventClock), query \(restored.queryClock))")
        }
        let startup = core.startupEffects()
        let wake = core.nextWakeup
        state.withLock { state in
            state.core = core
            state.udp = udp
            state.tcp = tcp
            state.address = advertise
            state.snapshot = snapshot
            state.previous = previous
        }
        logNetwork(.info, "gossip: \(configuration.name) listening on \(bound) (UDP and TCP), advertising \(advertise), encryption \(configuration.keyring == nil ? "off" : "on")")
        schedule(wake)
        perform(startup)
    }

    /// Stops at once, telling nobody (what a crash looks like to the others).
    package func shutdown() async {
        let (channels, inbound, timer, waiters, snapshot) = state.withLock { state in
            let snapshot = state.stopped ? nil : state.snapshot.map { ($0, state.core?.clocks.member ?? 0) }
            state.stopped = true
            let channels = [state.udp, state.tcp].compactMap { $0 }
            let inbound = Array(state.inbound.values)
            state.inbound.removeAll()
            let waiters = (
                state.joins.map { $0.value }, state.leaveWaiters, state.keyOperations.map { $0.value }, state.queries.map { $0.value },
                state.forceLeaves.map { $0.value })
            state.forceLeaves.removeAll()
            state.joins.removeAll()
            state.leaveWaiters.removeAll()
            state.keyOperations.removeAll()
            state.queries.removeAll()
            return (channels, inbound, state.timer, waiters, snapshot)
        }
        timer?.cancel()
        for channel in inbound { channel.close(promise: nil) }
        for channel in channels { try? await channel.close() }
        for join in waiters.0 { join.resume(returning: (0, ["the gossip node shut down"])) }
        for leave in waiters.1 { leave.resume() }
        for operation in waiters.2 { operation.resume(returning: SerfKeyOperationResult()) }
        for query in waiters.3 { query.continuation.resume(returning: SerfQueryResult(acks: query.acks, responses: query.responses)) }
        for forceLeave in waiters.4 { forceLeave.resume(returning: .refused(.notRunning)) }
        if let (file, clock) = snapshot {
            file.clockAdvanced(to: clock)
            await file.close()
        }
    }

    /// Serf's graceful leave: intent, memberlist leave, propagation delay. Shut down afterwards.
    /// With a snapshot, `leave` is recorded (and fsynced) first, as serf does, so the next start
    /// does not rejoin unless `rejoinAfterLeave` is set.
    package func leave() async {
        if let snapshot = state.withLock({ $0.stopped ? nil : $0.snapshot }) { await snapshot.leave() }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            var done = false
            let accepted = drive { state, now in
                // Already left: nothing to wait for. Leaving: wait for the leave under way.
                guard state.core!.lifecycle != .left else {
                    done = true
                    return []
                }
                state.leaveWaiters.append(continuation)
                return state.core!.handle(.leave, now: now)
            }
            if !accepted || done { continuation.resume() }
        }
    }

    // MARK: - Commands

    /// Joins through these addresses; returns how many answered, or throws every reason when none did.
    @discardableResult
    package func join(_ addresses: [GossipAddress], ignoreOld: Bool = false) async throws(GossipNodeError) -> Int {
        let limit = configuration.limits.maxPendingRequests
        let (joined, errors) = await withCheckedContinuation { (continuation: CheckedContinuation<(Int, [String]), Never>) in
            var refusal: String?
            let accepted = drive { state, now in
                guard state.pendingRequests < limit else {
                    refusal = GossipNodeError.tooManyPendingRequests(limit: limit).description
                    return []
                }
                state.nextJoin += 1
                let id = JoinID(state.nextJoin)
                state.joins[id] = continuation
                return state.core!.handle(.join(id, addresses, ignoreOld: ignoreOld), now: now)
            }
            if !accepted { continuation.resume(returning: (0, [GossipNodeError.notRunning.description])) }
            else if let refusal { continuation.resume(returning: (0, [refusal])) }
        }
        guard joined > 0 else { throw .joinFailed(errors) }
        return joined
    }

    /// Consul `force-leave [-prune] NODE` and `PUT /v1/agent/force-leave/:node?prune` (serf
    /// `RemoveFailedNode` / `RemoveFailedNodePrune`): gossips a leave intent on behalf of `name`, so
    /// every member moves it from failed to left and stops reconnecting to it; with `prune` every
    /// member also forgets it at once (a left member can be pruned too). Returns once the intent
    /// has been gossiped out. Throws `.serf(.unknownMember)` ("agent: No node found with name
    /// 'x'") for a name the pool does not know, and `.serf(.forceLeaveTimedOut)` when the intent
    /// could not be sent within serf's broadcast timeout (it may still spread).
    package func forceLeave(_ name: String, prune: Bool = false) async throws(GossipNodeError) {
        let limit = configuration.limits.maxPendingRequests
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<ForceLeaveOutcome, Never>) in
            var refusal: GossipNodeError?
            let accepted = drive { state, now in
                guard state.pendingRequests < limit else {
                    refusal = .tooManyPendingRequests(limit: limit)
                    return []
                }
                state.nextForceLeave += 1
                let id = ForceLeaveID(state.nextForceLeave)
                do throws(SerfError) {
                    let effects = try state.core!.forceLeave(name, prune: prune, id: id, now: now)
                    state.forceLeaves[id] = continuation
                    return effects
                } catch {
                    refusal = .serf(error)
                    return []
                }
            }
            if !accepted { continuation.resume(returning: .refused(.notRunning)) }
            else if let refusal { continuation.resume(returning: .refused(refusal)) }
        }
        switch outcome {
        case .gossiped: return
        case .timedOut: throw .serf(.forceLeaveTimedOut)
        case .refused(let error): throw error
        }
    }

    package func userEvent(name: String, payload: [UInt8], coalesce: Bool = false) throws(GossipNodeError) {
        var failure: SerfError?
        let accepted = drive { state, now in
            do throws(SerfError) {
                return try state.core!.userEvent(name: name, payload: payload, coalesce: coalesce, now: now)
            } catch {
                failure = error
                return []
            }
        }
        guard accepted else { throw .notRunning }
        if let failure { throw .serf(failure) }
    }

    /// Sends a query and collects acks and answers until its timeout.
    package func query(name: String, payload: [UInt8], parameters: SerfQueryParameters = SerfQueryParameters()) async throws(GossipNodeError) -> SerfQueryResult {
        var failure: GossipNodeError?
        let limit = configuration.limits.maxPendingRequests
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<SerfQueryResult, Never>) in
            let accepted = drive { state, now in
                guard state.pendingRequests < limit else {
                    failure = .tooManyPendingRequests(limit: limit)
                    return []
                }
                do throws(SerfError) {
                    let (id, effects) = try state.core!.query(name: name, payload: payload, parameters: parameters, now: now)
                    state.queries[id] = PendingQuery(continuation: continuation)
                    return effects
                } catch {
                    failure = .serf(error)
                    return []
                }
            }
            if !accepted { failure = .notRunning }
            if failure != nil { continuation.resume(returning: SerfQueryResult(acks: [], responses: [])) }
        }
        if let failure { throw failure }
        return result
    }

    /// Answers a query delivered as `GossipNodeEvent.query`.
    package func respond(to query: SerfIncomingQuery, payload: [UInt8]) {
        _ = drive { state, now in state.core!.handle(.respond(query, payload: payload), now: now) }
    }

    /// Installs, uses, removes or lists gossip keys across the pool (Consul `keyring`).
    package func keyOperation(_ operation: SerfKeyOperation, key: String? = nil) async throws(GossipNodeError) -> SerfKeyOperationResult {
        var failure: GossipNodeError?
        let limit = configuration.limits.maxPendingRequests
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<SerfKeyOperationResult, Never>) in
            let accepted = drive { state, now in
                guard state.pendingRequests < limit else {
                    failure = .tooManyPendingRequests(limit: limit)
                    return []
                }
                do throws(SerfError) {
                    let (id, effects) = try state.core!.keyOperation(operation, key: key, now: now)
                    state.keyOperations[id] = continuation
                    return effects
                } catch {
                    failure = .serf(error)
                    return []
                }
            }
            if !accepted { failure = .notRunning }
            if failure != nil { continuation.resume(returning: SerfKeyOperationResult()) }
        }
        if let failure { throw failure }
        return result
    }

    package func setTags(_ tags: [String: String]) throws(GossipNodeError) {
        var failure: SerfError?
        let accepted = drive { state, now in
            do throws(SerfError) {
                return try state.core!.setTags(tags, now: now)
            } catch {
                failure = error
                return []
            }
        }
        guard accepted else { throw .notRunning }
        if let failure { throw .serf(failure) }
    }

    // MARK: - Views

    package var members: [SerfMemberInfo] { state.withLock { $0.core?.members ?? [] } }
    package func member(_ name: String) -> SerfMemberInfo? { state.withLock { $0.core?.member(name) } }
    /// The address others use to reach us (the bound port when 0 was asked for).
    package var address: GossipAddress? { state.withLock { $0.address } }
    package var metrics: GossipMetrics { recorder.snapshot }
    package var keyring: Keyring? { cipher.withLock { $0 } }
    package var healthScore: Int { state.withLock { $0.core?.swim.healthScore ?? 0 } }
    /// Our Vivaldi coordinate, updated from every ping's round trip; nil when coordinates are off.
    package var coordinate: VivaldiCoordinate? { state.withLock { $0.core?.coordinate } }
    /// Set when another node claimed our name and the pool sided with it (the node shut down).
    package var lostNameConflict: SerfNameConflict? { state.withLock { $0.lostNameConflict } }
    /// Members alive at the end of the last run, from the snapshot (ourselves excluded; empty
    /// without a snapshot, and after a graceful leave unless `rejoinAfterLeave`), sorted by name.
    package var previousMembers: [GossipAddress] { state.withLock { $0.previous.map(\.address) } }

    /// serf `handleRejoin` (what a Consul agent does at start when its snapshot knows members):
    /// tries the previous members one at a time in random order until one join succeeds. Returns
    /// how many were joined (0 or 1; 0 also without previous members).
    @discardableResult
    package func rejoinPrevious() async -> Int {
        let previous = state.withLock { $0.previous }.shuffled()
        guard !previous.isEmpty else { return 0 }
        for member in previous {
            logger.log(.info, "serf: Attempting re-join to previously known node: \(member.name): \(member.address.hostPort)")
            do throws(GossipNodeError) {
                let joined = try await join([member.address])
                logger.log(.info, "serf: Re-joined to previously known node: \(member.name): \(member.address.hostPort)")
                return joined
            } catch {
                if error == .notRunning { return 0 }
            }
        }
        logger.log(.warn, "serf: Failed to re-join any previously known node")
        return 0
    }

    // MARK: - Driving the core

    /// Runs `body` on the core under the lock, reschedules the timer, then carries out the effects
    /// outside the lock. False when the node is not running.
    @discardableResult
    private func drive(_ body: (inout State, Timestamp) -> [SerfEffect]) -> Bool {
        let now = clock.now()
        let outcome: (effects: [SerfEffect], wake: Timestamp?)? = state.withLock { state in
            guard state.core != nil, !state.stopped else { return nil }
            let effects = body(&state, now)
            let wake = state.core!.nextWakeup
            if let pending = state.wakes.pending, pending <= wake { return (effects, nil) }
            return (effects, wake)
        }
        guard let outcome else { return false }
        if let wake = outcome.wake { schedule(wake) }
        perform(outcome.effects)
        return true
    }

    private func schedule(_ wake: Timestamp) {
        // At least a millisecond, so a clock that does not move (a test's manual clock) cannot spin.
        let delay = max(wake.duration(since: clock.now()), .milliseconds(1))
        let previous: Scheduled<Void>? = state.withLock { state in
            // Two drives on different threads may each decide to schedule: a later wake never
            // replaces an earlier pending one (that deadline, say the end of a leave's
            // propagation, would never be handled). The task is started under the lock, so it
            // cannot fire before its wake is recorded: when it could, a drive from another thread
            // recorded a wake whose task had already run, cancelled the newer one, and the node
            // never ticked again (seen as a leave that never finished).
            guard !state.stopped, let generation = state.wakes.request(wake) else { return nil }
            let previous = state.timer
            state.timer = eventLoop.scheduleTask(in: .nanoseconds(delay.totalNanoseconds)) { [self] in tick(generation) }
            return previous
        }
        previous?.cancel()
    }

    private func tick(_ generation: UInt64) {
        state.withLock { $0.wakes.fired(generation) }
        drive { state, now in state.core!.handle(.tick, now: now) }
        recordClock()
    }

    /// Appends the membership clock to the snapshot when it moved (serf checks every 500 ms and
    /// after member events; ticks come at least every gossip interval).
    private func recordClock() {
        guard let (snapshot, clock) = state.withLock({ state in state.snapshot.map { ($0, state.core?.clocks.member ?? 0) } }) else { return }
        snapshot.clockAdvanced(to: clock)
    }

    private var snapshotFile: GossipSnapshotFile? { state.withLock { $0.snapshot } }

    // MARK: - Effects

    private func perform(_ effects: [SerfEffect]) {
        for effect in effects {
            switch effect {
            case .swim(let transport):
                carry(transport)
            case .member(let event):
                if let snapshot = snapshotFile {
                    switch event.kind {
                    case .join: snapshot.memberAlive(event.member.name, address: event.member.address)
                    case .leave, .failed: snapshot.memberGone(event.member.name)
                    case .update, .reap: break
                    }
                    recordClock()
                }
                onEvent?(.member(event))
            case .userEvent(let event):
                snapshotFile?.userEventDelivered(at: event.lamportTime)
                onEvent?(.user(event))
            case .query(let query):
                snapshotFile?.queryDelivered(at: query.query.lamportTime)
                onEvent?(.query(query))
            case .queryAck(let id, let from):
                state.withLock { $0.queries[id]?.acks.append(from) }
            case .queryResponse(let id, let from, let payload):
                state.withLock { $0.queries[id]?.responses.append((from, payload)) }
            case .queryFinished(let id):
                if let pending = state.withLock({ $0.queries.removeValue(forKey: id) }) {
                    pending.continuation.resume(returning: SerfQueryResult(acks: pending.acks, responses: pending.responses))
                }
            case .keyringChanged(let keyring):
                keyringChanged(keyring)
            case .keyOperationFinished(let id, _, let result):
                state.withLock { $0.keyOperations.removeValue(forKey: id) }?.resume(returning: result)
            case .joinFinished(let id, let joined, let errors):
                state.withLock { $0.joins.removeValue(forKey: id) }?.resume(returning: (joined, errors))
            case .leaveFinished:
                for waiter in state.withLock({ state -> [CheckedContinuation<Void, Never>] in
                    defer { state.leaveWaiters.removeAll() }
                    return state.leaveWaiters
                }) { waiter.resume() }
            case .nameConflictResolved(let vote):
                guard !vote.kept else { break }
                logger.log(.error, "serf: shutting down gossip: lost the name conflict, \(vote)")
                let first = state.withLock { state -> Bool in
                    defer { if state.lostNameConflict == nil { state.lostNameConflict = vote } }
                    return state.lostNameConflict == nil
                }
                guard first else { break }
                onNameConflict?(vote)
                Task { await self.shutdown() }
            case .forceLeaveFinished(let id, let timedOut):
                state.withLock { $0.forceLeaves.removeValue(forKey: id) }?.resume(returning: timedOut ? .timedOut : .gossiped)
            }
        }
    }

    private func carry(_ effect: SWIMEffect) {
        switch effect {
        case .sendPacket(let to, let messages, let checksum):
            sendPacket(messages, to: to, checksum: checksum)
        case .openStream(let id, let to, let message, let expectsReply, let deadline):
            openStream(id, to: to, message: message, expectsReply: expectsReply, deadline: deadline)
        case .replyStream(let id, let reply):
            replyStream(id, reply)
        case .log(let level, let text):
            logger.log(level, text)
        case .probeCompleted(_, let rtt):
            recorder.update { metrics in
                metrics.probes += 1
                metrics.probeRTTTotal += rtt
                metrics.probeRTTMax = max(metrics.probeRTTMax, rtt)
            }
        case .suspicionExpired:
            recorder.update { $0.suspicionsExpired += 1 }
        case .joinFinished, .leaveBroadcastFinished:
            break  // consumed by the serf layer
        }
    }

    private var outgoingCipher: Keyring? { configuration.verifyOutgoing ? cipher.withLock { $0 } : nil }

    private func sendPacket(_ messages: [[UInt8]], to: GossipAddress, checksum: Bool) {
        guard let udp = state.withLock({ $0.udp }), let address = GossipSocketAddress.socket(to) else { return }
        let bytes: [UInt8]
        do {
            bytes = try packetCodec.encode(
                messages, options: OutboundPacketOptions(compress: configuration.compression, checksum: checksum), cipher: outgoingCipher)
        } catch {
            logger.log(.error, "memberlist: Failed to encode a packet for \(to): \(error)")
            return
        }
        guard udp.isWritable else {
            recorder.update { $0.sendsDropped += 1 }
            logger.log(.warn, "memberlist: UDP send queue full, dropping a packet to \(to)")
            return
        }
        recorder.update { metrics in
            metrics.packetsOut += 1
            metrics.bytesOut += bytes.count
        }
        udp.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: bytes)), promise: nil)
    }

    private func openStream(_ id: OutboundStreamID, to: GossipAddress, message: StreamMessage, expectsReply: Bool, deadline: Timestamp) {
        let limit = configuration.limits.maxConcurrentStreams
        let admitted = state.withLock { state -> Bool in
            guard state.openStreams < limit else { return false }
            state.openStreams += 1
            return true
        }
        guard admitted, let address = GossipSocketAddress.socket(to) else {
            if admitted { releaseStream() }
            recorder.update { $0.streamsRefused += 1 }
            streamResultOutsideHandler(id, .failed(GossipStreamError(admitted ? "bad address \(to)" : "too many open streams")))
            return
        }
        let bytes: [UInt8]
        do {
            bytes = try streamCodec.encode(message, compress: configuration.compression, cipher: outgoingCipher)
        } catch {
            releaseStream()
            streamResultOutsideHandler(id, .failed(GossipStreamError("\(error)")))
            return
        }
        recorder.update { metrics in
            metrics.streamsOut += 1
            metrics.streamBytesOut += bytes.count
        }
        let remaining = max(deadline.duration(since: clock.now()), .milliseconds(10))
        let node = self
        let connect = ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(remaining.totalNanoseconds))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(GossipStreamClientHandler(node: node, id: id, expectsReply: expectsReply))
                }
            }
            .connect(to: address)
        connect.whenComplete { result in
            switch result {
            case .success(let channel):
                channel.closeFuture.whenComplete { _ in node.releaseStream() }
                channel.eventLoop.scheduleTask(in: .nanoseconds(remaining.totalNanoseconds)) {
                    channel.pipeline.fireUserInboundEventTriggered(GossipStreamClientHandler.Signal.deadline)
                }
                channel.writeAndFlush(ByteBuffer(bytes: bytes)).whenSuccess {
                    channel.pipeline.fireUserInboundEventTriggered(GossipStreamClientHandler.Signal.written)
                }
            case .failure(let error):
                node.releaseStream()
                node.streamResultOutsideHandler(id, .failed(GossipStreamError("dial tcp \(to): \(error)")))
            }
        }
    }

    private func streamResultOutsideHandler(_ id: OutboundStreamID, _ outcome: StreamOutcome) {
        // Never re-enter the core from inside `perform`'s caller synchronously: hop once.
        eventLoop.execute { [self] in streamFinished(id, outcome) }
    }

    private func replyStream(_ id: InboundStreamID, _ reply: StreamMessage?) {
        guard let channel = state.withLock({ $0.inbound.removeValue(forKey: id) }) else { return }
        guard let reply else {
            channel.close(promise: nil)
            return
        }
        writeAndClose(channel, reply)
    }

    private func writeAndClose(_ channel: any Channel, _ message: StreamMessage) {
        do {
            let bytes = try streamCodec.encode(message, compress: configuration.compression, cipher: outgoingCipher)
            recorder.update { $0.streamBytesOut += bytes.count }
            channel.writeAndFlush(ByteBuffer(bytes: bytes)).whenComplete { _ in channel.close(promise: nil) }
        } catch {
            logger.log(.error, "memberlist: Failed to encode a stream reply: \(error)")
            channel.close(promise: nil)
        }
    }

    private func keyringChanged(_ keyring: Keyring) {
        cipher.withLock { $0 = keyring }
        if let path = configuration.keyringFilePath {
            do throws(GossipKeyringFileError) {
                try GossipKeyringFile.save(keyring, to: path)
            } catch {
                logger.log(.error, "serf: Failed to write keyring file: \(error)")
            }
        }
        onEvent?(.keyringChanged(keyring))
    }

    // MARK: - Called by the channel handlers

    func receiveDatagram(_ bytes: [UInt8], from remote: SocketAddress?) {
        recorder.update { metrics in
            metrics.packetsIn += 1
            metrics.bytesIn += bytes.count
        }
        guard let from = GossipSocketAddress.gossip(remote) else { return }
        let keyring = cipher.withLock { $0 }
        let packet: DecodedPacket
        do {
            packet = try packetCodec.decode(bytes, cipher: keyring, verifyIncoming: configuration.verifyIncoming)
        } catch {
            if case .decryptionFailed(let reason) = error {
                if (try? packetCodec.decode(bytes, cipher: nil)) != nil {
                    recorder.update { $0.plaintextDropped += 1 }
                    logger.log(.error, "memberlist: Decrypt packet failed: plaintext packet while encryption is required from=\(from)")
                } else {
                    recorder.update { $0.decryptFailures += 1 }
                    logger.log(.error, "memberlist: Decrypt packet failed: \(reason) from=\(from)")
                }
            } else {
                recorder.update { $0.malformed += 1 }
                logger.log(.error, "memberlist: Dropping a malformed packet: \(error) from=\(from)")
            }
            return
        }
        if !packet.rejectedParts.isEmpty || packet.truncatedParts > 0 {
            recorder.update { $0.malformed += 1 }
            logger.log(.warn, "memberlist: \(packet.rejectedParts.count) bad and \(packet.truncatedParts) truncated parts in a packet from=\(from)")
        }
        guard !packet.messages.isEmpty else { return }
        drive { state, now in state.core!.handle(.packet(from: from, messages: packet.messages), now: now) }
    }

    func decodeStream(_ bytes: [UInt8]) throws(GossipCodecError) -> StreamDecodeResult {
        try streamCodec.decode(bytes, cipher: cipher.withLock { $0 }, verifyIncoming: configuration.verifyIncoming)
    }

    var streamTimeout: TimeAmount { .nanoseconds(configuration.serf.swim.tcpTimeout.totalNanoseconds) }

    func admitStream() -> Bool {
        let limit = configuration.limits.maxConcurrentStreams
        let admitted = state.withLock { state -> Bool in
            guard !state.stopped, state.openStreams < limit else { return false }
            state.openStreams += 1
            return true
        }
        recorder.update { admitted ? ($0.streamsIn += 1) : ($0.streamsRefused += 1) }
        if !admitted { logger.log(.warn, "memberlist: Too many pending stream requests, refusing one") }
        return admitted
    }

    func releaseStream() { state.withLock { $0.openStreams = max(0, $0.openStreams - 1) } }

    func countStreamBytesIn(_ count: Int) { recorder.update { $0.streamBytesIn += count } }

    func inboundStream(_ channel: any Channel, from: GossipAddress?, message: StreamMessage) {
        guard let from else {
            channel.close(promise: nil)
            return
        }
        let accepted = drive { state, now in
            state.nextInbound += 1
            let id = InboundStreamID(state.nextInbound)
            state.inbound[id] = channel
            return state.core!.handle(.inboundStream(id, from: from, message: message), now: now)
        }
        if !accepted { channel.close(promise: nil) }
    }

    /// A stream that did not decode: answer with memberlist's error message (so the peer's join
    /// error says why), then close.
    func refuseStream(_ channel: any Channel, from: GossipAddress?, error: GossipCodecError) {
        let text = Self.describe(error)
        switch error {
        case .decryptionFailed: recorder.update { $0.decryptFailures += 1 }
        case .plaintextRejected: recorder.update { $0.plaintextDropped += 1 }
        default: recorder.update { $0.malformed += 1 }
        }
        logger.log(.error, "memberlist: failed to receive: \(text) from=\(from.map { "\($0)" } ?? "?")")
        writeAndClose(channel, .error(ErrorMessage(error: text)))
    }

    func streamFinished(_ id: OutboundStreamID, _ outcome: StreamOutcome) {
        if case .failed = outcome { recorder.update { $0.streamFailures += 1 } }
        drive { state, now in state.core!.handle(.streamResult(id, outcome), now: now) }
    }

    func logNetwork(_ level: GossipLogLevel, _ text: String) { logger.log(level, text) }

    /// memberlist's words for stream failures, which operators search for.
    static func describe(_ error: GossipCodecError) -> String {
        switch error {
        case .decryptionFailed(let reason): reason
        case .plaintextRejected: "Encryption is configured but remote state is not encrypted"
        case .encryptedButNoKeys: "Remote state is encrypted and encryption is not configured"
        default: "\(error)"
        }
    }

    // MARK: - Bootstraps

    private func datagramBootstrap() -> DatagramBootstrap {
        let limits = configuration.limits
        let node = self
        return DatagramBootstrap(group: eventLoop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(limits.udpReceiveBufferBytes))
            .channelOption(.maxMessagesPerRead, value: UInt(limits.datagramsPerRead))
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: limits.codec.maxPacketBytes))
            .channelOption(.writeBufferWaterMark, value: .init(low: limits.udpSendQueueBytes / 2, high: limits.udpSendQueueBytes))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(GossipDatagramHandler(node: node))
                }
            }
    }

    private func serverBootstrap() -> ServerBootstrap {
        let node = self
        return ServerBootstrap(group: eventLoop)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(GossipStreamServerHandler(node: node))
                }
            }
    }
}

/// What a query brought back.
package struct SerfQueryResult: Sendable, Equatable {
    package var acks: [String]
    package var responses: [(String, [UInt8])]

    package static func == (lhs: SerfQueryResult, rhs: SerfQueryResult) -> Bool {
        lhs.acks == rhs.acks && lhs.responses.map(\.0) == rhs.responses.map(\.0) && lhs.responses.map(\.1) == rhs.responses.map(\.1)
    }
}
