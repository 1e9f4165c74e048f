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
            return .local(.json { writer in writer.array { self.writeMember(into: &$0) } })
        case "services":
            try APIRouter.requireMethod(request, "GET")
            let node = agent.nodeName
            return .readHere(.filteredList, tables: [.services]) { store throws(APIError) in
                .json { writer in
                    writer.object { w in
                        for service in store.services(onNode: node) {
                            w.field(dynamic: service.id) { CatalogJSON.service(service, into: &$0, withIndexes: false) }
                        }
                    }
                }
            }
        case "checks":
            try APIRouter.requireMethod(request, "GET")
            let node = agent.nodeName
            return .readHere(.filteredList, tables: [.checks]) { store throws(APIError) in
                .json { writer in
                    writer.object { w in
                        for check in store.checks(onNode: node) { w.field(dynamic: check.id) { CatalogJSON.check(check, into: &$0) } }
                    }
                }
            }
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
        default:
            throw .notImplemented("/v1/agent/\(tail) is not implemented in this build yet")
        }
    }

    /// The gossip tags Consul puts on a member: role, datacenter, ports and versions.
    var memberTags: [String: String] {
        var tags = [
            "dc": agent.datacenter, "id": agent.nodeID, "vsn": "2", "vsn_min": "2", "vsn_max": "3",
            "build": "\(ConsulVersion.version):\(ConsulVersion.revision)", "segment": "",
        ]
        if agent.config.server {
            tags["role"] = "consul"
            tags["port"] = String(agent.config.ports.server)
            tags["raft_vsn"] = "3"
            if agent.config.bootstrap { tags["bootstrap"] = "1" }
            if agent.config.bootstrapExpect > 0 { tags["expect"] = String(agent.config.bootstrapExpect) }
        } else {
            tags["role"] = "node"
        }
        return tags
    }

    private func writeMember(into writer: inout JSONWriter) {
        let tags = memberTags
        writer.object { w in
            w.field("Name") { $0.string(agent.nodeName) }
            w.field("Addr") { $0.string(agent.advertiseAddress) }
            w.field("Port") { $0.int(agent.config.ports.serfLAN) }
            w.field("Tags") { $0.stringMap(tags) }
            w.field("Status") { $0.int(1) }
            w.field("ProtocolMin") { $0.int(1) }
            w.field("ProtocolMax") { $0.int(5) }
            w.field("ProtocolCur") { $0.int(2) }
            w.field("DelegateMin") { $0.int(2) }
            w.field("DelegateMax") { $0.int(5) }
            w.field("DelegateCur") { $0.int(4) }
        }
    }

    private func writeSelf(into writer: inout JSONWriter) {
        let config = agent.config
        let view = agent.clusterView
        let store = agent.watch.current
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
            w.field("Member") { self.writeMember(into: &$0) }
            w.field("Stats") { s in
                s.object { o in
                    // No check runners exist yet, so monitors and TTL checks are truly zero.
                    o.field("agent") {
                        $0.stringMap([
                            "check_monitors": "0", "check_ttls": "0", "checks": String(store.checks(onNode: agent.nodeName).count),
                            "services": String(store.services(onNode: agent.nodeName).count),
                        ])
                    }
                    if agent.raft != nil { o.field("raft") { $0.stringMap(view.raftStats) } }
                    o.field("consul") { c in
                        c.stringMap([
                            "server": String(config.server), "leader": String(view.isLeader), "bootstrap": String(config.bootstrap),
                            "known_datacenters": "1",
                            "leader_addr": view.leaderID.map(agent.rpcAddress(of:)) ?? "",
                        ])
                    }
                }
            }
            w.field("Meta") { $0.stringMap(config.nodeMeta) }
        }
    }
}
