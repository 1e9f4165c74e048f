import ConsulCore

/// `GET /v1/operator/usage` (`?global`, `?stale`): service, instance and node counts per
/// datacenter, counted by the server that answers from its state store, in Consul's shape (the
/// counts under `Usage.<dc>`, then Consul's QueryMeta fields in the body as well as the headers).
///
/// Without WAN federation the only datacenter this agent knows is its own, so `?global` answers
/// the same single entry a local query does; other datacenters are never invented.
struct OperatorUsageEndpoint {
    let agent: AgentRuntime

    /// The body's copy of what the request path also sends as headers.
    struct QueryMeta: Equatable, Sendable {
        var index: UInt64
        var lastContact: Duration
        var knownLeader: Bool
        /// `leader`, `stale` or `consistent`, as Consul's `ConsistencyLevel`.
        var consistencyLevel: String
    }

    func route(_ request: APIRequest) throws(APIError) -> APIRoute {
        try APIRouter.requireMethod(request, "GET")
        let agent = self.agent
        let consistencyLevel = request.has("consistent") ? "consistent" : request.has("stale") ? "stale" : "leader"
        return .read(.operator, tables: StateStore.usageTables) { store throws(APIError) in
            let leader = agent.leaderContact
            let meta = QueryMeta(
                index: store.index(of: StateStore.usageTables), lastContact: leader.sinceContact ?? .zero, knownLeader: leader.knownLeader,
                consistencyLevel: consistencyLevel)
            return Self.render([(agent.datacenter, store.serviceUsage())], meta: meta)
        }
    }

    static func render(_ datacenters: [(name: String, usage: ServiceUsage)], meta: QueryMeta) -> APIResponse {
        .json { writer in
            writer.object { o in
                o.field("Usage") { u in
                    u.object { list in
                        for (name, usage) in datacenters {
                            list.field(dynamic: name) { write(usage, into: &$0) }
                        }
                    }
                }
                o.field("Index") { $0.int(meta.index) }
                // A Go time.Duration: nanoseconds.
                o.field("LastContact") { $0.int(meta.lastContact.totalNanoseconds) }
                o.field("KnownLeader") { $0.bool(meta.knownLeader) }
                o.field("ConsistencyLevel") { $0.string(meta.consistencyLevel) }
                o.field("NotModified") { $0.bool(false) }
                o.field("Backend") { $0.int(0) }
                o.field("ResultsFilteredByACLs") { $0.bool(false) }
            }
        }
    }

    private static func write(_ usage: ServiceUsage, into writer: inout JSONWriter) {
        writer.object { o in
            o.field("Services") { $0.int(usage.services) }
            o.field("ServiceInstances") { $0.int(usage.serviceInstances) }
            o.field("ConnectServiceInstances") { c in
                c.object { kinds in
                    for (kind, count) in zip(ServiceUsage.connectKinds, usage.connectServiceInstances) {
                        kinds.field(dynamic: kind) { $0.int(count) }
                    }
                }
            }
            o.field("BillableServiceInstances") { $0.int(usage.billableServiceInstances) }
            o.field("Nodes") { $0.int(usage.nodes) }
        }
    }
}
