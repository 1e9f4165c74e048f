import ConsulCore

/// Turns the merged config tree into an `AgentConfig`, starting from Consul's defaults.
///
/// Every source has already passed `ConfigSchema.check`, so each typed key holds a value of its
/// type and every duration parses; reading one here cannot fail, and a key that is absent (or
/// JSON `null`) keeps the default.
enum AgentConfigBuilder {
    /// Legacy top-level TLS names and where Consul (1.12+) moved them.
    static let legacyTLSKeys: [(legacy: String, stanza: String, key: String)] = [
        ("ca_file", "defaults", "ca_file"), ("ca_path", "defaults", "ca_path"),
        ("cert_file", "defaults", "cert_file"), ("key_file", "defaults", "key_file"),
        ("verify_incoming", "defaults", "verify_incoming"), ("verify_outgoing", "defaults", "verify_outgoing"),
        ("tls_min_version", "defaults", "tls_min_version"),
        ("verify_incoming_rpc", "internal_rpc", "verify_incoming"),
        ("verify_incoming_https", "https", "verify_incoming"),
        ("verify_server_hostname", "internal_rpc", "verify_server_hostname"),
    ]

    static func build(_ tree: ConfigValue, dev: Bool) -> (config: AgentConfig, warnings: [String]) {
        var c = AgentConfig.defaults(dev: dev)
        var warnings: [String] = []
        let r = TreeReader(tree: tree)

        r.bool("server").map { c.server = $0 }
        r.bool("bootstrap").map { c.bootstrap = $0 }
        r.int("bootstrap_expect").map { c.bootstrapExpect = $0 }
        r.int("raft_snapshot_threshold").map { c.raftSnapshotThreshold = $0 }
        r.duration("raft_snapshot_interval").map { c.raftSnapshotInterval = $0 }
        r.int("raft_trailing_logs").map { c.raftTrailingLogs = $0 }
        c.nodeName = r.string("node_name") ?? c.nodeName
        c.nodeID = r.string("node_id") ?? c.nodeID
        r.stringMap("node_meta").map { c.nodeMeta = $0 }
        // Consul lower-cases the datacenter before validating it.
        r.string("datacenter").map { c.datacenter = $0.lowercased() }
        c.primaryDatacenter = r.string("primary_datacenter").map { $0.lowercased() } ?? c.primaryDatacenter
        r.string("domain").map { c.domain = $0 }
        c.altDomain = r.string("alt_domain") ?? c.altDomain
        c.dataDir = r.string("data_dir") ?? c.dataDir
        c.pidFile = r.string("pid_file") ?? c.pidFile

        r.string("bind_addr").map { c.bindAddr = $0 }
        c.advertiseAddr = r.string("advertise_addr") ?? c.advertiseAddr
        c.advertiseAddrWAN = r.string("advertise_addr_wan") ?? c.advertiseAddrWAN
        r.string("client_addr").map { c.clientAddrs = $0.split(separator: " ").map(String.init) }
        r.int("ports", "http").map { c.ports.http = $0 }
        r.int("ports", "https").map { c.ports.https = $0 }
        r.int("ports", "dns").map { c.ports.dns = $0 }
        r.int("ports", "server").map { c.ports.server = $0 }
        r.int("ports", "serf_lan").map { c.ports.serfLAN = $0 }
        r.int("ports", "serf_wan").map { c.ports.serfWAN = $0 }
        r.int("ports", "grpc").map { c.ports.grpc = $0 }

        c.retryJoin = r.strings("retry_join")
        c.retryJoinWAN = r.strings("retry_join_wan")
        r.duration("retry_interval").map { c.retryInterval = $0 }
        r.duration("retry_interval_wan").map { c.retryIntervalWAN = $0 }
        r.int("retry_max").map { c.retryMax = $0 }
        r.int("retry_max_wan").map { c.retryMaxWAN = $0 }
        c.startJoin = r.strings("start_join")
        c.startJoinWAN = r.strings("start_join_wan")
        r.bool("rejoin_after_leave").map { c.rejoinAfterLeave = $0 }
        c.leaveOnTerminate = r.bool("leave_on_terminate") ?? c.leaveOnTerminate
        c.skipLeaveOnInterrupt = r.bool("skip_leave_on_interrupt") ?? c.skipLeaveOnInterrupt

        c.encrypt = r.string("encrypt") ?? c.encrypt
        r.bool("encrypt_verify_incoming").map { c.encryptVerifyIncoming = $0 }
        r.bool("encrypt_verify_outgoing").map { c.encryptVerifyOutgoing = $0 }
        r.bool("disable_keyring_file").map { c.disableKeyringFile = $0 }

        // Consul accepts any case ("INFO" in many configs) and compares case-insensitively.
        r.string("log_level").map { c.logLevel = $0.lowercased() }
        r.bool("log_json").map { c.logJSON = $0 }

        // `ui` and `ui_dir` are the pre-1.9 names of `ui_config.enabled` / `ui_config.dir`.
        r.bool("ui").map { c.ui.enabled = $0 }
        c.ui.dir = r.string("ui_dir") ?? c.ui.dir
        r.bool("ui_config", "enabled").map { c.ui.enabled = $0 }
        c.ui.dir = r.string("ui_config", "dir") ?? c.ui.dir
        if r.present("ui") { warnings.append("The 'ui' field is deprecated. Use the 'ui_config.enabled' field instead.") }
        if r.present("ui_dir") { warnings.append("The 'ui_dir' field is deprecated. Use the 'ui_config.dir' field instead.") }

        c.recursors = (r.string("recursor").map { [$0] } ?? []) + r.strings("recursors")
        r.bool("enable_script_checks").map { c.enableScriptChecks = $0 }
        r.bool("enable_local_script_checks").map { c.enableLocalScriptChecks = $0 }
        r.bool("enable_agent_tls_for_checks").map { c.enableAgentTLSForChecks = $0 }

        r.bool("dns_config", "allow_stale").map { c.dns.allowStale = $0 }
        r.duration("dns_config", "max_stale").map { c.dns.maxStale = $0 }
        r.duration("dns_config", "node_ttl").map { c.dns.nodeTTL = $0 }
        r.durationMap("dns_config", "service_ttl").map { c.dns.serviceTTL = $0 }
        r.int("dns_config", "udp_answer_limit").map { c.dns.udpAnswerLimit = $0 }
        r.bool("dns_config", "enable_truncate").map { c.dns.enableTruncate = $0 }
        r.bool("dns_config", "only_passing").map { c.dns.onlyPassing = $0 }
        r.int("raft_protocol").map { c.raftProtocol = $0 }
        r.int("gossip_lan", "gossip_nodes").map { c.gossipLAN.gossipNodes = $0 }
        r.duration("gossip_lan", "gossip_interval").map { c.gossipLAN.gossipInterval = $0 }
        r.duration("gossip_lan", "probe_interval").map { c.gossipLAN.probeInterval = $0 }
        r.duration("gossip_lan", "probe_timeout").map { c.gossipLAN.probeTimeout = $0 }
        r.int("gossip_lan", "suspicion_mult").map { c.gossipLAN.suspicionMult = $0 }
        r.int("gossip_lan", "retransmit_mult").map { c.gossipLAN.retransmitMult = $0 }
        r.bool("autopilot", "cleanup_dead_servers").map { c.autopilot.cleanupDeadServers = $0 }
        r.duration("autopilot", "last_contact_threshold").map { c.autopilot.lastContactThreshold = $0 }
        r.int("autopilot", "max_trailing_logs").map { c.autopilot.maxTrailingLogs = $0 }
        r.int("autopilot", "min_quorum").map { c.autopilot.minQuorum = $0 }
        r.duration("autopilot", "server_stabilization_time").map { c.autopilot.serverStabilizationTime = $0 }

        // TLS: legacy names first, then the `tls` block, which wins where both set a value.
        for (legacy, stanza, key) in legacyTLSKeys where r.present(legacy) {
            warnings.append("The '\(legacy)' field is deprecated. Use the 'tls.\(stanza).\(key)' field instead.")
        }
        c.tls.defaults = tlsSettings(r, stanza: "defaults")
        c.tls.internalRPC = tlsSettings(r, stanza: "internal_rpc")
        c.tls.https = tlsSettings(r, stanza: "https")

        r.bool("acl", "enabled").map { c.acl.enabled = $0 }
        r.string("acl", "default_policy").map { c.acl.defaultPolicy = $0 }
        // `master` is the pre-1.11 name of `initial_management`.
        c.acl.initialManagementToken = r.string("acl", "tokens", "initial_management") ?? r.string("acl", "tokens", "master")
        c.acl.agentToken = r.string("acl", "tokens", "agent")
        c.acl.defaultToken = r.string("acl", "tokens", "default")

        // The loader has moved every single `service`/`check` into the lists, in file order.
        c.services = r.definitions("service") + r.definitions("services")
        c.checks = r.definitions("check") + r.definitions("checks")
        r.duration("check_update_interval").map { c.checkUpdateInterval = $0 }
        r.duration("sync_coordinate_interval_min").map { c.syncCoordinateIntervalMin = $0 }
        r.bool("disable_coordinates").map { c.disableCoordinates = $0 }

        if let object = tree.objectValue {
            c.ignoredKeys = object.keys.filter { ConfigSchema.agent.fields[$0]?.isUntyped == true && !definitionKeys.contains($0) }
        }
        return (c, warnings)
    }

    private static let definitionKeys: Set<String> = ["service", "services", "check", "checks"]

    private static func tlsSettings(_ r: TreeReader, stanza: String) -> AgentConfig.TLSSettings {
        var s = AgentConfig.TLSSettings()
        for (legacyKey, legacyStanza, key) in legacyTLSKeys where legacyStanza == stanza {
            switch key {
            case "ca_file": s.caFile = r.string(legacyKey)
            case "ca_path": s.caPath = r.string(legacyKey)
            case "cert_file": s.certFile = r.string(legacyKey)
            case "key_file": s.keyFile = r.string(legacyKey)
            case "verify_incoming": s.verifyIncoming = r.bool(legacyKey)
            case "verify_outgoing": s.verifyOutgoing = r.bool(legacyKey)
            case "verify_server_hostname": s.verifyServerHostname = r.bool(legacyKey)
            case "tls_min_version": s.tlsMinVersion = r.string(legacyKey)
            default: break
            }
        }
        s.caFile = r.string("tls", stanza, "ca_file") ?? s.caFile
        s.caPath = r.string("tls", stanza, "ca_path") ?? s.caPath
        s.certFile = r.string("tls", stanza, "cert_file") ?? s.certFile
        s.keyFile = r.string("tls", stanza, "key_file") ?? s.keyFile
        s.verifyIncoming = r.bool("tls", stanza, "verify_incoming") ?? s.verifyIncoming
        s.verifyOutgoing = r.bool("tls", stanza, "verify_outgoing") ?? s.verifyOutgoing
        s.verifyServerHostname = r.bool("tls", stanza, "verify_server_hostname") ?? s.verifyServerHostname
        s.tlsMinVersion = r.string("tls", stanza, "tls_min_version") ?? s.tlsMinVersion
        return s
    }
}

/// Typed reads from a schema-checked tree; `nil` means absent or `null`.
private struct TreeReader {
    let tree: ConfigValue

    func value(_ path: [String]) -> ConfigValue? {
        guard let found = tree.lookup(path.map { .key($0) }), !found.isNull else { return nil }
        return found
    }

    func present(_ path: String...) -> Bool { value(path) != nil }
    func string(_ path: String...) -> String? { value(path)?.stringValue }
    func bool(_ path: String...) -> Bool? { value(path)?.boolValue }
    func int(_ path: String...) -> Int? { value(path)?.integerValue.map { Int(clamping: $0) } }

    func duration(_ path: String...) -> Duration? {
        value(path)?.stringValue.flatMap { try? GoDuration.parse($0) }
    }

    func strings(_ path: String...) -> [String] {
        value(path)?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    func stringMap(_ path: String...) -> [String: String]? {
        guard let object = value(path)?.objectValue else { return nil }
        var result: [String: String] = [:]
        for member in object.members { result[member.key] = member.value.stringValue }
        return result
    }

    func durationMap(_ path: String...) -> [String: Duration]? {
        guard let object = value(path)?.objectValue else { return nil }
        var result: [String: Duration] = [:]
        for member in object.members { result[member.key] = member.value.stringValue.flatMap { try? GoDuration.parse($0) } }
        return result
    }

    /// Service or check definitions: a single object or a list of them.
    func definitions(_ key: String) -> [ConfigValue] {
        guard let found = value([key]) else { return [] }
        if case .array(let elements) = found { return elements.filter { !$0.isNull } }
        return [found]
    }
}
