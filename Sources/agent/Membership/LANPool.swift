import ConsulCore
import ConsulCrypto
import Foundation
import Gossip
import NIOCore
import Synchronization

/// The agent's LAN gossip pool (serf on `ports.serf_lan`, 8301): every agent of the datacenter,
/// each carrying Consul's tags (role, dc, port, expect, build, vsn, raft_vsn, id). It keeps the
/// `ServerDirectory` current — how clients find servers and servers find each other — and counts
/// membership changes so leader duties know when to reconcile the catalog and Raft.
final class LANPool: Sendable {
    let node: GossipNode
    /// Whether gossip is encrypted (a key from the keyring file or `encrypt`), for the banner and `consul info`.
    let encrypted: Bool
    /// Recent Consul user events seen in the pool (`/v1/event/list`).
    let events: UserEventLog
    private let directory: ServerDirectory
    private let datacenter: String
    private let changes: AsyncStream<Void>
    private let changed: AsyncStream<Void>.Continuation
    /// Bumped after every membership change has been folded into the directory.
    private let generationCounter = Atomic<UInt64>(1)

    private init(
        node: GossipNode, encrypted: Bool, events: UserEventLog, directory: ServerDirectory, datacenter: String, changes: AsyncStream<Void>,
        changed: AsyncStream<Void>.Continuation
    ) {
        self.node = node
        self.encrypted = encrypted
        self.events = events
        self.directory = directory
        self.datacenter = datacenter
        self.changes = changes
        self.changed = changed
    }

    struct Identity: Sendable {
        var nodeName: String
        var nodeID: String
        var advertiseAddress: String
    }

    /// Resolves the keyring (Consul's precedence: `serf/local.keyring`, then `encrypt`), binds the
    /// UDP and TCP listeners and starts gossiping. `dataPath` nil (dev mode): no keyring file.
    static func start(
        config: AgentConfig, identity: Identity, dataPath: String?, group: any EventLoopGroup, clock: any MonotonicClock,
        logger: AgentLogger, directory: ServerDirectory
    ) async throws(Agent.StartFailure) -> LANPool {
        guard let bindIP = GossipAddress("\(config.bindAddr):\(config.ports.serfLAN)"),
              let advertise = GossipAddress("\(identity.advertiseAddress):\(config.ports.serfLAN)")
        else {
            throw Agent.StartFailure(description: "Failed to start LAN gossip: bind (\(config.bindAddr)) and advertise (\(identity.advertiseAddress)) addresses must be IPv4 addresses")
        }
        let resolution: GossipKeyringFile.Resolution
        do {
            if let dataPath, !config.disableKeyringFile {
                try FileManager.default.createDirectory(atPath: dataPath + "/serf", withIntermediateDirectories: true)
            }
            resolution = try GossipKeyringFile.resolve(
                dataDirectory: dataPath, encrypt: config.encrypt, disableKeyringFile: config.disableKeyringFile)
        } catch {
            throw Agent.StartFailure(description: "Failed to configure gossip encryption: \(error)")
        }
        let module = config.server ? "agent.server.serf.lan" : "agent.client.serf.lan"
        for (level, message) in resolution.messages { logger.log(level.agentLevel, module, message) }

        var configuration = GossipNodeConfiguration(
            name: identity.nodeName, bindAddress: bindIP,
            serf: SerfConfig(swim: timings(config.gossipLAN), tags: tags(config, identity: identity)), keyring: resolution.keyring)
        configuration.advertiseAddress = advertise
        configuration.keyringFilePath = resolution.source == .none || config.disableKeyringFile
            ? nil : dataPath.map { $0 + "/" + GossipKeyringFile.lanPath }
        // serf's snapshot: a restarted agent rejoins the members of its last run (after a graceful
        // leave only with -rejoin / rejoin_after_leave).
        configuration.snapshotPath = dataPath.map { $0 + "/serf/local.snapshot" }
        configuration.rejoinAfterLeave = config.rejoinAfterLeave
        configuration.verifyIncoming = config.encryptVerifyIncoming
        configuration.verifyOutgoing = config.encryptVerifyOutgoing

        let (changes, changed) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let gossipLogger = RateLimitedLogger(
            accepts: { logger.wants($0.agentLevel) }, clock: clock,
            sink: { level, text in logger.log(level.agentLevel, module, text) })
        let events = UserEventLog(nodeName: identity.nodeName)
        let node = GossipNode(
            configuration: configuration, group: group, clock: clock, logger: gossipLogger,
            onEvent: { event in
                // The gossip node logs the event itself ("serf: EventMemberJoin: n1 10.0.0.1").
                switch event {
                case .member: changed.yield()
                case .user(let delivery):
                    if let kept = events.deliver(delivery) {
                        logger.log(.debug, "agent", "new event: event_name=\(kept.name) event_id=\(kept.id)")
                    }
                default: break
                }
            },
            onNameConflict: { conflict in
                logger.error(module, "another node claims this node's name and the pool sided with it; gossip stopped (give this agent a unique -node name)", ["conflict": "\(conflict)"])
            })
        do {
            try await node.start()
        } catch {
            throw Agent.StartFailure(description: "Failed to start LAN gossip on \(config.bindAddr):\(config.ports.serfLAN): \(error)")
        }
        if !node.previousMembers.isEmpty {
            Task { await node.rejoinPrevious() }
        }
        let pool = LANPool(
            node: node, encrypted: resolution.keyring != nil, events: events, directory: directory, datacenter: config.datacenter, changes: changes,
            changed: changed)
        pool.refreshDirectory()
        return pool
    }

    /// Folds membership changes into the server directory until cancelled.
    func run() async {
        for await _ in changes {
            refreshDirectory()
        }
    }

    /// Gossips a Consul user event to the pool (this agent records it too, as serf delivers its own).
    func fire(_ event: UserEvent) throws(GossipNodeError) {
        try node.userEvent(name: UserEvent.serfPrefix + event.name, payload: event.encoded)
    }

    /// Serf's graceful leave: the others record this agent as left, not failed.
    func leave() async { await node.leave() }

    func stop() async {
        await node.shutdown()
        changed.finish()
    }

    /// Counts membership changes seen so far; leader duties reconcile when it moves.
    var generation: UInt64 { generationCounter.load(ordering: .acquiring) }

    var members: [SerfMemberInfo] { node.members }

    /// Joins through these addresses (`ip`, `ip:port`, or a host name; the port defaults to the
    /// LAN gossip port). Returns how many answered; throws every reason when none did.
    func join(_ addresses: [String], defaultPort: Int) async throws(JoinFailure) -> Int {
        var targets: [GossipAddress] = []
        var problems: [String] = []
        for address in addresses {
            switch Self.resolve(address, defaultPort: defaultPort) {
            case .success(let resolved): targets.append(contentsOf: resolved)
            case .failure(let problem): problems.append(problem.description)
            }
        }
        guard !targets.isEmpty else { throw JoinFailure(reasons: problems) }
        do {
            return try await node.join(targets)
        } catch {
            throw JoinFailure(reasons: problems + [error.description])
        }
    }

    struct JoinFailure: Error, CustomStringConvertible {
        var reasons: [String]
        var description: String {
            reasons.count == 1 ? reasons[0] : "\(reasons.count) errors occurred:\n" + reasons.map { "\t* \($0)" }.joined(separator: "\n")
        }
    }

    // MARK: - Servers

    private func refreshDirectory() {
        directory.replace(with: node.members.compactMap { member in
            guard member.status == .alive, let server = Self.server(member), server.datacenter == datacenter else { return nil }
            return server
        })
        generationCounter.add(1, ordering: .releasing)
    }

    /// A member's Consul server identity, from its tags; nil for client agents.
    static func server(_ member: SerfMemberInfo) -> KnownServer? {
        guard member.tags["role"] == "consul", let id = member.tags["id"], let dc = member.tags["dc"],
              let port = member.tags["port"].flatMap(Int.init)
        else { return nil }
        return KnownServer(name: member.name, id: id, datacenter: dc, rpcAddress: "\(member.address.host):\(port)")
    }

    // MARK: - Configuration

    /// The tags Consul puts on a LAN member: role, datacenter, ports and versions.
    static func tags(_ config: AgentConfig, identity: Identity) -> [String: String] {
        var tags = [
            "dc": config.datacenter, "id": identity.nodeID, "vsn": "2", "vsn_min": "2", "vsn_max": "3",
            "build": "\(ConsulVersion.version):\(ConsulVersion.revision)", "segment": "",
        ]
        if config.server {
            tags["role"] = "consul"
            tags["port"] = String(config.ports.server)
            tags["raft_vsn"] = String(config.raftProtocol)
            if config.bootstrap { tags["bootstrap"] = "1" }
            if config.bootstrapExpect > 0 { tags["expect"] = String(config.bootstrapExpect) }
        } else {
            tags["role"] = "node"
        }
        return tags
    }

    /// memberlist's LAN profile with the `gossip_lan` overrides applied.
    static func timings(_ overrides: AgentConfig.GossipTimings) -> SWIMConfig {
        var swim = SWIMConfig.lan
        if let value = overrides.gossipNodes { swim.gossipNodes = value }
        if let value = overrides.gossipInterval { swim.gossipInterval = value }
        if let value = overrides.probeInterval { swim.probeInterval = value }
        if let value = overrides.probeTimeout { swim.probeTimeout = value }
        if let value = overrides.suspicionMult { swim.suspicionMult = value }
        if let value = overrides.retransmitMult { swim.retransmitMult = value }
        return swim
    }

    struct AddressProblem: Error, CustomStringConvertible {
        var description: String
    }

    /// `ip`, `ip:port` or `host[:port]` → gossip addresses (host names through the system resolver).
    static func resolve(_ text: String, defaultPort: Int) -> Result<[GossipAddress], AddressProblem> {
        var host = Substring(text)
        var port = defaultPort
        if let colon = text.lastIndex(of: ":") {
            guard let parsed = Int(text[text.index(after: colon)...]), (1...65535).contains(parsed) else {
                return .failure(AddressProblem(description: "Failed to join \(text): invalid port"))
            }
            host = text[..<colon]
            port = parsed
        }
        if let literal = GossipAddress("\(host):\(port)") { return .success([literal]) }
        let resolved = HostNames.ipv4Addresses(of: String(host)).compactMap { GossipAddress("\($0):\(port)") }
        guard !resolved.isEmpty else {
            return .failure(AddressProblem(description: "Failed to join \(text): lookup \(host): no such host"))
        }
        return .success(resolved)
    }
}

extension GossipLogLevel {
    var agentLevel: AgentLogger.Level {
        switch self {
        case .debug: .debug
        case .info: .info
        case .warn: .warn
        case .error: .error
        }
    }
}

extension AgentLogger.Level {
    var gossipLevel: GossipLogLevel {
        switch self {
        case .trace, .debug: .debug
        case .info: .info
        case .warn: .warn
        case .error: .error
        }
    }
}
