import Gossip

/// `/v1/agent/*`: answered by this agent about itself, never forwarded.
struct AgentEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        switch tail {
        case "self":
            try APIRouter.requireMethod(request, "GET")
            return APIRoute(action: .respond(.json { self.writeSelf(into: &$0) }), isWrite: false, resource: .agent(agent.nodeName), access: .read)
        case "members":
            try APIRouter.requireMethod(request, "GET")
            if request.has("wan") { throw .notImplemented("the WAN pool (federation) is not built yet; only LAN members can be listed") }
            let members = agent.lan?.members ?? []
            return .local(.json { writer in
                writer.array { array in
                    for member in members { Self.writeMember(member, into: &array) }
                }
            })
        case "leave":
            try APIRouter.requireMethod(request, "PUT")
            let agent = self.agent
            return .agentOperation(.agent(agent.nodeName)) { () async throws(APIError) -> APIResponse in
                // Answer first, then go: the shutdown closes this listener.
                Task {
                    try? await Task.sleep(for: .milliseconds(50))
                    _ = agent.requestLeave()
                }
                return APIResponse()
            }
        case _ where tail.hasPrefix("join/"):
            try APIRouter.requireMethod(request, "PUT")
            if request.has("wan") { throw .notImplemented("the WAN pool (federation) is not built yet; only LAN joins are possible") }
            let address = String(tail.dropFirst("join/".count))
            guard !address.isEmpty else { throw .badRequest("missing address to join") }
            let agent = self.agent
            return .agentOperation(.agent(agent.nodeName)) { () async throws(APIError) -> APIResponse in
                guard let lan = agent.lan else { throw .internalError("this agent has no LAN gossip pool") }
                do throws(LANPool.JoinFailure) {
                    _ = try await lan.join([address], defaultPort: agent.config.ports.serfLAN)
                } catch {
                    throw .internalError(error.description)
                }
                return APIResponse()
            }
        case _ where tail.hasPrefix("force-leave/"):
            try APIRouter.requireMethod(request, "PUT")
            let node = String(tail.dropFirst("force-leave/".count))
            guard !node.isEmpty else { throw .badRequest("missing node name") }
            let prune = request.has("prune")
            let agent = self.agent
            return .agentOperation(.operator) { () async throws(APIError) -> APIResponse in
                guard let lan = agent.lan else { throw .internalError("this agent has no LAN gossip pool") }
                do throws(GossipNodeError) {
                    try await lan.node.forceLeave(node, prune: prune)
                } catch {
                    throw .internalError(error.description)
                }
                return APIResponse()
            }
        case "monitor":
            try APIRouter.requireMethod(request, "GET")
            return try monitor(request)
        case "version", "host", "metrics":
            return try AgentInfoEndpoint(agent: agent).route(request, tail: tail)
        case _ where tail.hasPrefix("health/service/"):
            return try AgentHealthEndpoint(agent: agent).route(request, tail: tail.dropFirst("health/service/".count))
        case _ where tail.hasPrefix("token/"):
            // Setting the agent's tokens needs the ACL system, which is off in this build.
            try APIRouter.requireMethod(request, "PUT")
            throw .unauthorized("ACL support disabled")
        default:
            // Services, checks, maintenance and reload: the agent's local state.
            if let route = try AgentLocalEndpoint(agent: agent).route(request, tail: tail) { return route }
            throw .notImplemented("/v1/agent/\(tail) is not implemented in this build yet")
        }
    }

    /// `/v1/agent/monitor?loglevel=&logjson`: this agent's log lines as they happen, streamed until
    /// the client goes away. The level may be more detailed than the agent's own `-log-level`.
    private func monitor(_ request: APIRequest) throws(APIError) -> APIRoute {
        let name = request.query["loglevel"].flatMap { $0.isEmpty ? nil : $0 } ?? "INFO"
        guard let level = AgentLogger.Level(name.trimmingSpaces()) else { throw .badRequest("Unknown log level: \(name)") }
        guard let logger = agent.logger else { throw .internalError("this agent has no logger to monitor") }
        let monitor = LogMonitor(level: level, json: request.has("logjson"), registry: logger.monitors) { [weak logger] dropped in
            logger?.warn("agent.http", "Dropped logs during monitor request", ["dropped_count": String(dropped)])
        }
        let response = APIResponse(status: 200, contentType: "text/plain; charset=utf-8", stream: monitor)
        return APIRoute(action: .respond(response), isWrite: false, resource: .agent(agent.nodeName), access: .read)
    }

    static func writeMember(_ member: SerfMemberInfo, into writer: inout JSONWriter) {
        writer.object { w in
            w.field("Name") { $0.string(member.name) }
            w.field("Addr") { $0.string(member.address.host) }
            w.field("Port") { $0.int(Int(member.address.port)) }
            w.field("Tags") { $0.stringMap(member.tags) }
            w.field("Status") { $0.int(member.status.rawValue) }
            w.field("ProtocolMin") { $0.int(Int(member.versions.protocolMin)) }
            w.field("ProtocolMax") { $0.int(Int(member.versions.protocolMax)) }
            w.field("ProtocolCur") { $0.int(Int(member.versions.protocolCurrent)) }
            w.field("DelegateMin") { $0.int(Int(member.versions.delegateMin)) }
            w.field("DelegateMax") { $0.int(Int(member.versions.delegateMax)) }
            w.field("DelegateCur") { $0.int(Int(member.versions.delegateCurrent)) }
        }
    }

    private func writeSelf(into writer: inout JSONWriter) {
        let config = agent.config
        let view = agent.clusterView
        writer.object { w in
            w.field("Config") { c in
                c.object { o in
                    o.field("Datacenter") { $0.string(config.datacenter) }
                    o.field("PrimaryDatacenter") { $0.string(config.primaryDatacenter ?? config.datacenter) }
                    o.field("NodeName") { $0.string(agent.nodeName) }
                    o.field("NodeID") { $0.string(agent.nodeID) }
                    o.field("Revision") { $0.string(ConsulVersion.revision) }
                    o.field("Server") { $0.bool(config.server) }
                    o.field("Version") { $0.string(ConsulVersion.version) }
                    o.field("BuildDate") { $0.string("") }
                }
            }
            w.field("DebugConfig") { d in
                d.object { o in
                    o.field("Bootstrap") { $0.bool(config.bootstrap) }
                    o.field("BootstrapExpect") { $0.int(config.bootstrapExpect) }
                    o.field("DataDir") { $0.string(config.dataDir ?? "") }
                    o.field("Datacenter") { $0.string(config.datacenter) }
                    o.field("DevMode") { $0.bool(config.dev) }
                    o.field("DNSDomain") { $0.string(config.domain) }
                    o.field("HTTPPort") { $0.int(config.ports.http) }
                    o.field("DNSPort") { $0.int(config.ports.dns) }
                    o.field("ServerPort") { $0.int(config.ports.server) }
                    o.field("SerfPortLAN") { $0.int(config.ports.serfLAN) }
                    o.field("SerfPortWAN") { $0.int(config.ports.serfWAN) }
                    o.field("NodeName") { $0.string(agent.nodeName) }
                    o.field("ServerMode") { $0.bool(config.server) }
                    o.field("ACLsEnabled") { $0.bool(config.acl.enabled) }
                }
            }
            w.field("Coord") { $0.null() }
            w.field("Member") { writer in
                if let me = agent.lan?.node.member(agent.nodeName) { Self.writeMember(me, into: &writer) } else { writer.null() }
            }
            w.field("Stats") { s in
                s.object { o in
                    o.field("agent") {
                        let local = agent.local.snapshot
                        let kinds = local.checks.values.compactMap { $0.definition?.kind.typeName }
                        $0.stringMap([
                            "check_monitors": String(kinds.filter { $0 == "script" }.count), "check_ttls": String(kinds.filter { $0 == "ttl" }.count),
                            "checks": String(local.checks.count), "services": String(local.services.count),
                        ])
                    }
                    if agent.raft != nil { o.field("raft") { $0.stringMap(view.raftStats) } }
                    if let tls = agent.tls { o.field("tls") { $0.stringMap(tls.stats(httpsPort: config.ports.https)) } }
                    if let lan = agent.lan {
                        let members = lan.members
                        o.field("serf_lan") {
                            $0.stringMap([
                                "members": String(members.count), "failed": String(members.filter { $0.status == .failed }.count),
                                "left": String(members.filter { $0.status == .left }.count), "health_score": String(lan.node.healthScore),
                                "encrypted": String(lan.encrypted),
                            ])
                        }
                    }
                    o.field("consul") { c in
                        // Consul's keys differ by role: a client only knows how many servers it can use.
                        c.stringMap(config.server
                            ? [
                                "server": "true", "leader": String(view.isLeader), "bootstrap": String(config.bootstrap),
                                "known_datacenters": "1", "leader_addr": view.leaderID.map(agent.rpcAddress(of:)) ?? "",
                            ]
                            : ["server": "false", "known_servers": String(agent.servers.current.count)])
                    }
                }
            }
            w.field("Meta") { $0.stringMap(config.nodeMeta) }
        }
    }
}
