import ConsulCore
import Foundation
import Raft
import Synchronization

/// `/v1/operator/autopilot/configuration` (GET, PUT with `?cas=`) and `/v1/operator/autopilot/state`.
/// The configuration lives in the replicated state store; `health` and `state` are the leader's
/// view, gathered by `AutopilotHealth`.
struct AutopilotEndpoint {
    let agent: AgentRuntime

    func configuration(_ request: APIRequest) throws(APIError) -> APIRoute {
        try APIRouter.requireMethod(request, "GET", "PUT")
        let agent = self.agent
        guard request.method == "PUT" else {
            return .read(.operator, tables: [.autopilot]) { store throws(APIError) in
                Self.render(store.autopilot ?? StoredAutopilotConfig(settings: agent.config.autopilot, indexes: RaftIndexes(createIndex: 0, modifyIndex: 0)))
            }
        }
        var parsedCAS: UInt64?
        if let text = request.query["cas"] {
            guard let value = UInt64(text) else { throw .badRequest("Error parsing cas value: strconv.ParseUint: parsing \"\(text)\": invalid syntax") }
            parsedCAS = value
        }
        let cas = parsedCAS
        let settings = try Self.parse(request.body)
        return .write(.operator) { () async throws(APIError) -> APIResponse in
            let result = try await agent.apply(.setAutopilot(settings, cas: cas))
            switch result {
            case .applied(let applied): return .bool(applied)
            case .refused(let message): throw .internalError(message)
            default: return .true
            }
        }
    }

    /// Consul decodes the body into a fresh configuration: a field left out is its zero value.
    /// Durations are Go duration strings or numbers of nanoseconds (Consul's `ReadableDuration`).
    static func parse(_ bytes: [UInt8]) throws(APIError) -> AgentConfig.AutopilotConfig {
        let body: JSONBody
        do {
            body = try JSONBody.parse(bytes)
        } catch {
            throw .badRequest("Error parsing autopilot config: \(error.message)")
        }
        guard body.isObject() else { throw .badRequest("Error parsing autopilot config: the body must be a JSON object") }
        func duration(_ key: String) throws(APIError) -> Duration {
            guard let member = body.member(key), !member.isNull else { return .zero }
            let value: Duration
            if let text = member.stringValue {
                do {
                    value = try GoDuration.parse(text)
                } catch {
                    throw .badRequest("Error parsing autopilot config: \(key): \(error)")
                }
            } else if let number = member.doubleValue, number.isFinite, abs(number) < 9.2e18 {
                value = .nanoseconds(Int64(number))
            } else {
                throw .badRequest("Error parsing autopilot config: \(key) must be a duration such as \"200ms\"")
            }
            guard value >= .zero else { throw .badRequest("Error parsing autopilot config: \(key) must not be negative") }
            return value
        }
        func count(_ key: String) throws(APIError) -> Int {
            let value: Int?
            do {
                value = try body.int(key)
            } catch {
                throw .badRequest("Error parsing autopilot config: \(error.message)")
            }
            guard let value else { return 0 }
            guard value >= 0 else { throw .badRequest("Error parsing autopilot config: \(key) must not be negative") }
            return value
        }
        var settings = AgentConfig.AutopilotConfig()
        do {
            settings.cleanupDeadServers = try body.bool("CleanupDeadServers") ?? false
            // Enterprise settings: accepted for compatibility, without effect here.
            _ = try body.string("RedundancyZoneTag")
            _ = try body.bool("DisableUpgradeMigration")
            _ = try body.string("UpgradeVersionTag")
        } catch {
            throw .badRequest("Error parsing autopilot config: \(error.message)")
        }
        settings.lastContactThreshold = try duration("LastContactThreshold")
        settings.serverStabilizationTime = try duration("ServerStabilizationTime")
        settings.maxTrailingLogs = try count("MaxTrailingLogs")
        settings.minQuorum = try count("MinQuorum")
        return settings
    }

    static func render(_ stored: StoredAutopilotConfig) -> APIResponse {
        let config = stored.settings
        return .json { writer in
            writer.object { o in
                o.field("CleanupDeadServers") { $0.bool(config.cleanupDeadServers) }
                o.field("LastContactThreshold") { $0.string(GoDuration.format(config.lastContactThreshold)) }
                o.field("MaxTrailingLogs") { $0.int(config.maxTrailingLogs) }
                o.field("MinQuorum") { $0.int(config.minQuorum) }
                o.field("ServerStabilizationTime") { $0.string(GoDuration.format(config.serverStabilizationTime)) }
                o.field("RedundancyZoneTag") { $0.string("") }
                o.field("DisableUpgradeMigration") { $0.bool(false) }
                o.field("UpgradeVersionTag") { $0.string("") }
                o.field("CreateIndex") { $0.int(stored.indexes.createIndex) }
                o.field("ModifyIndex") { $0.int(stored.indexes.modifyIndex) }
            }
        }
    }

    func state(_ request: APIRequest) throws(APIError) -> APIRoute {
        try APIRouter.requireMethod(request, "GET")
        let agent = self.agent
        return .leaderOperation(.operator, access: .read) { () async throws(APIError) -> APIResponse in
            Self.renderState(try await AutopilotHealth.gather(agent))
        }
    }

    /// Go's RFC 3339 time (a formatter per call: Foundation's is not Sendable).
    static func rfc3339(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    /// Consul's `api.AutopilotState` (the open-source fields: no redundancy zones, read replicas
    /// or upgrade migration). Without redundancy zones the optimistic failure tolerance is the
    /// failure tolerance.
    static func renderState(_ report: AutopilotReport) -> APIResponse {
        let servers = report.servers.sorted { $0.entry.id < $1.entry.id }
        return .json { writer in
            writer.object { o in
                o.field("Healthy") { $0.bool(report.healthy) }
                o.field("FailureTolerance") { $0.int(report.failureTolerance) }
                o.field("OptimisticFailureTolerance") { $0.int(report.failureTolerance) }
                o.field("Servers") { s in
                    s.object { m in
                        for server in servers {
                            m.field(dynamic: server.entry.id.rawValue) { w in
                                w.object { w in
                                    w.field("ID") { $0.string(server.entry.id.rawValue) }
                                    w.field("Name") { $0.string(server.name) }
                                    w.field("Address") { $0.string(server.address) }
                                    w.field("NodeStatus") { $0.string(server.serf) }
                                    w.field("Version") { $0.string(server.version) }
                                    w.field("LastContact") { $0.string(server.contact.map(GoDuration.format) ?? "0s") }
                                    w.field("LastTerm") { $0.int(report.term) }
                                    w.field("LastIndex") { $0.int(server.index) }
                                    w.field("Healthy") { $0.bool(server.healthy) }
                                    w.field("StableSince") { $0.string(rfc3339(server.stableSince)) }
                                    w.field("Status") { $0.string(server.status) }
                                    w.field("Meta") { $0.stringMap(server.meta) }
                                    w.field("NodeType") { $0.string("voter") }
                                }
                            }
                        }
                    }
                }
                o.field("Leader") { $0.string(report.leader?.rawValue ?? "") }
                o.field("Voters") { $0.strings(servers.filter { $0.entry.suffrage == .voter }.map(\.entry.id.rawValue)) }
            }
        }
    }
}

/// One server as autopilot judges it on the leader.
struct AutopilotServerHealth: Sendable {
    var entry: ServerEntry
    var name: String
    var address: String
    /// Gossip status ("alive", "failed", ...; "none" when gossip does not know it).
    var serf: String
    var version: String
    var leader: Bool
    /// Since the server last answered the leader; nil when it has not this term.
    var contact: Duration?
    var index: LogIndex
    var healthy: Bool
    var meta: [String: String]
    /// When `healthy` last changed (wall clock), as autopilot's StableSince.
    var stableSince: Date

    /// raft-autopilot's status names.
    var status: String { leader ? "leader" : entry.suffrage == .voter ? "voter" : "non-voter" }
}

struct AutopilotReport: Sendable {
    var term: Term
    var leader: ServerID?
    var servers: [AutopilotServerHealth]
    var healthy: Bool
    var failureTolerance: Int
}

/// Remembers since when each server's health has been what it is (autopilot's StableSince).
final class AutopilotStability: Sendable {
    private let since = Mutex<[ServerID: (healthy: Bool, since: Date)]>([:])

    init() {}

    /// Records the health just judged and answers since when each server has had it.
    func note(_ health: [(ServerID, Bool)], now: Date) -> [ServerID: Date] {
        since.withLock { table in
            var next: [ServerID: (healthy: Bool, since: Date)] = [:]
            for (id, healthy) in health {
                if let known = table[id], known.healthy == healthy {
                    next[id] = known
                } else {
                    next[id] = (healthy, now)
                }
            }
            table = next
            return next.mapValues(\.since)
        }
    }
}

/// Server health as autopilot judges it on the leader: alive in gossip, heard from within
/// `last_contact_threshold`, and no more than `max_trailing_logs` behind (the settings stored
/// through the operator API, else the agent configuration's).
enum AutopilotHealth {
    static func gather(_ agent: AgentRuntime) async throws(APIError) -> AutopilotReport {
        guard let raft = agent.raft else { throw .noServers }
        let status = await raft.status()
        guard status.role == "leader" else { throw .noLeader }
        let followers = await raft.followerHealth()
        let store = agent.watch.current
        let settings = store.autopilot?.settings ?? agent.config.autopilot
        var names = [agent.nodeID: agent.nodeName]
        var members: [String: SerfMemberSummary] = [:]
        for member in agent.lan?.members ?? [] {
            guard let id = member.tags["id"], members[id] == nil else { continue }
            members[id] = SerfMemberSummary(status: member.status.description, build: member.tags["build"])
            if member.tags["role"] == "consul" { names[id] = member.name }
        }
        var servers: [AutopilotServerHealth] = []
        for entry in status.configuration.servers {
            let member = members[entry.id.rawValue]
            let isLeader = entry.id == status.leader
            let contact = isLeader ? Duration.zero : followers[entry.id]?.sinceContact
            let index = isLeader ? status.lastIndex : followers[entry.id]?.matchIndex ?? 0
            let serf = member?.status ?? "none"
            let healthy = serf == "alive" && contact.map { $0 < settings.lastContactThreshold || isLeader } == true
                && status.lastIndex - min(index, status.lastIndex) <= LogIndex(settings.maxTrailingLogs)
            let version = member?.build.map { String($0.split(separator: ":").first ?? "") } ?? ""
            let name = names[entry.id.rawValue] ?? "(unknown)"
            servers.append(AutopilotServerHealth(
                entry: entry, name: name, address: agent.rpcAddress(of: entry.id), serf: serf, version: version, leader: isLeader,
                contact: contact, index: index, healthy: healthy, meta: store.node(named: name)?.meta ?? [:], stableSince: Date()))
        }
        let stable = agent.autopilotStability.note(servers.map { ($0.entry.id, $0.healthy) }, now: Date())
        for position in servers.indices { servers[position].stableSince = stable[servers[position].entry.id] ?? Date() }
        let voters = servers.filter { $0.entry.suffrage == .voter }
        let healthyVoters = voters.filter(\.healthy).count
        return AutopilotReport(
            term: status.term, leader: status.leader, servers: servers, healthy: servers.allSatisfy(\.healthy),
            failureTolerance: max(0, healthyVoters - (voters.count / 2 + 1)))
    }

    private struct SerfMemberSummary {
        var status: String
        var build: String?
    }
}
