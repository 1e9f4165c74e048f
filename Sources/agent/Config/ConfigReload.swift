import ConsulCore

/// What a reload (SIGHUP, `consul reload`, `PUT /v1/agent/reload`) does with a freshly loaded
/// configuration, decided without touching the running agent.
///
/// Consul applies only its documented reloadable settings and keeps the start-up value of every
/// other one. `plan(running:loaded:)` is that rule as a pure function: the configuration the agent
/// runs with afterwards (`next`: the running one with the reloadable settings taken from the
/// loaded one), which reloadable settings changed, and which changed settings were not applied.
struct ConfigReload: Equatable, Sendable {
    /// Consul's reloadable settings that this agent has. Each names the config keys it covers, as
    /// an operator writes them, for log lines.
    enum Setting: String, CaseIterable, Sendable {
        case logLevel = "log_level"
        case nodeMeta = "node_meta"
        case dnsConfig = "dns_config"
        case recursors = "recursors"
        case aclTokens = "acl.tokens"
        case services = "services"
        case checks = "checks"
        /// The `tls` block; the agent also re-reads the certificate files on every reload.
        case tls = "tls"
        case raftSnapshotThreshold = "raft_snapshot_threshold"
        case raftSnapshotInterval = "raft_snapshot_interval"
        case raftTrailingLogs = "raft_trailing_logs"

        /// The settings a server's Raft node takes on a reload.
        static let raftSnapshots: [Setting] = [.raftSnapshotThreshold, .raftSnapshotInterval, .raftTrailingLogs]
    }

    /// The configuration to run with from now on.
    var next: AgentConfig
    /// Reloadable settings whose value changed (in `Setting.allCases` order, each once).
    var changed: [Setting]
    /// Settings that differ in the loaded configuration but cannot change while the agent runs,
    /// by their config key; they keep their running value.
    var notApplied: [String]

    static func plan(running: AgentConfig, loaded: AgentConfig) -> ConfigReload {
        var next = running
        var changed: [Setting] = []
        func take<T: Equatable>(_ setting: Setting, _ path: WritableKeyPath<AgentConfig, T>) {
            guard running[keyPath: path] != loaded[keyPath: path] else { return }
            next[keyPath: path] = loaded[keyPath: path]
            if !changed.contains(setting) { changed.append(setting) }
        }
        take(.logLevel, \.logLevel)
        take(.nodeMeta, \.nodeMeta)
        take(.dnsConfig, \.dns)
        take(.recursors, \.recursors)
        take(.aclTokens, \.acl.agentToken)
        take(.aclTokens, \.acl.defaultToken)
        take(.services, \.services)
        take(.checks, \.checks)
        take(.raftSnapshotThreshold, \.raftSnapshotThreshold)
        take(.raftSnapshotInterval, \.raftSnapshotInterval)
        take(.raftTrailingLogs, \.raftTrailingLogs)
        // Consul: a reload cannot turn TLS on or off, only change it where it is on.
        let tlsSwitched = AgentTLS.rpcEnabled(running) != AgentTLS.rpcEnabled(loaded)
        if !tlsSwitched { take(.tls, \.tls) }
        // Keys this agent accepts but does not act on are reported at start; not a change to refuse.
        next.ignoredKeys = loaded.ignoredKeys

        var notApplied = restartOnlyKeys.filter { !$0.same(next, loaded) }.map(\.key)
        if tlsSwitched { notApplied.append("tls (turning TLS on or off)") }
        // A field missing from the table still must not change silently.
        if notApplied.isEmpty && next != loaded { notApplied = ["(other settings)"] }
        return ConfigReload(next: next, changed: changed, notApplied: notApplied)
    }

    /// Every setting that is not reloadable, by the key an operator writes.
    private static let restartOnlyKeys: [(key: String, same: @Sendable (AgentConfig, AgentConfig) -> Bool)] = [
        key("server", \.server), key("bootstrap", \.bootstrap), key("bootstrap_expect", \.bootstrapExpect),
        key("dev", \.dev), key("node_name", \.nodeName), key("node_id", \.nodeID),
        key("datacenter", \.datacenter), key("primary_datacenter", \.primaryDatacenter),
        key("domain", \.domain), key("alt_domain", \.altDomain),
        key("data_dir", \.dataDir), key("pid_file", \.pidFile),
        key("bind_addr", \.bindAddr), key("advertise_addr", \.advertiseAddr), key("advertise_addr_wan", \.advertiseAddrWAN),
        key("client_addr", \.clientAddrs), key("ports", \.ports),
        key("retry_join", \.retryJoin), key("retry_join_wan", \.retryJoinWAN),
        key("retry_interval", \.retryInterval), key("retry_interval_wan", \.retryIntervalWAN),
        key("retry_max", \.retryMax), key("retry_max_wan", \.retryMaxWAN),
        key("start_join", \.startJoin), key("start_join_wan", \.startJoinWAN),
        key("rejoin_after_leave", \.rejoinAfterLeave), key("leave_on_terminate", \.leaveOnTerminate),
        key("skip_leave_on_interrupt", \.skipLeaveOnInterrupt),
        key("encrypt", \.encrypt), key("encrypt_verify_incoming", \.encryptVerifyIncoming),
        key("encrypt_verify_outgoing", \.encryptVerifyOutgoing), key("disable_keyring_file", \.disableKeyringFile),
        key("log_json", \.logJSON), key("ui_config", \.ui),
        key("enable_script_checks", \.enableScriptChecks), key("enable_local_script_checks", \.enableLocalScriptChecks),
        key("enable_agent_tls_for_checks", \.enableAgentTLSForChecks),
        key("raft_protocol", \.raftProtocol), key("gossip_lan", \.gossipLAN), key("autopilot", \.autopilot),
        key("acl.enabled", \.acl.enabled), key("acl.default_policy", \.acl.defaultPolicy),
        key("acl.tokens.initial_management", \.acl.initialManagementToken),
        key("check_update_interval", \.checkUpdateInterval),
        key("sync_coordinate_interval_min", \.syncCoordinateIntervalMin), key("disable_coordinates", \.disableCoordinates),
    ]

    private static func key<T: Equatable & Sendable>(
        _ name: String, _ path: KeyPath<AgentConfig, T> & Sendable
    ) -> (key: String, same: @Sendable (AgentConfig, AgentConfig) -> Bool) {
        (name, { $0[keyPath: path] == $1[keyPath: path] })
    }
}
