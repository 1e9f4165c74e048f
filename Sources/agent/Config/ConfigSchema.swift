import ConsulCore

/// The shape of Consul's agent config: which keys exist and what each must hold.
///
/// Every source (file, `-hcl` fragment, the flags) is checked against it on its own, before the
/// merge, because only then is it known which file and line a key came from: Consul decodes each
/// source separately for the same reason. After the check, `AgentConfigBuilder` can read the merged
/// tree without meeting a value of the wrong type.
indirect enum ConfigType: Sendable {
    case string
    case bool
    case int
    /// A Go duration string ("30s", "1m30s"), parsed with `GoDuration`.
    case duration
    case stringList
    /// A map of strings (Go `map[string]string`, e.g. `node_meta`).
    case stringMap
    /// A map of duration strings (`dns_config.service_ttl`).
    case durationMap
    /// A nested block; only the listed keys are allowed.
    case object(ConfigSchemaFields)
    /// A setting Consul has but this agent does not type (yet): accepted as written.
    case untyped

    var expectation: String {
        switch self {
        case .string: return "a string"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .duration: return "a duration string such as \"30s\""
        case .stringList: return "a list of strings"
        case .stringMap: return "an object of strings"
        case .durationMap: return "an object of duration strings"
        case .object: return "an object"
        case .untyped: return "any value"
        }
    }

    var isUntyped: Bool {
        if case .untyped = self { return true }
        return false
    }
}

/// The keys of one block. A dictionary only for lookup; it is never iterated.
struct ConfigSchemaFields: Sendable {
    var fields: [String: ConfigType]

    init(_ fields: [String: ConfigType]) { self.fields = fields }
}

enum ConfigSchema {
    /// Checks one source against `agent`, collecting every problem (unknown keys, wrong types,
    /// unparseable durations) with the source's name and the key's position.
    static func check(_ value: ConfigValue, source: String) -> [AgentConfigProblem] {
        var problems: [AgentConfigProblem] = []
        guard case .object(let object) = value else {
            problems.append(.wrongType(ConfigLocation(source: source), key: "(top level)", expected: "an object", found: value.kindDescription))
            return problems
        }
        checkObject(object, fields: agent, path: "", source: source, into: &problems)
        return problems
    }

    private static func checkObject(
        _ object: ConfigObject, fields: ConfigSchemaFields, path: String, source: String, into problems: inout [AgentConfigProblem]
    ) {
        for member in object.members {
            let key = path.isEmpty ? member.key : path + "." + member.key
            let location = ConfigLocation(source: source, position: member.position)
            guard let type = fields.fields[member.key] else {
                problems.append(.unknownKey(location, key: key))
                continue
            }
            checkValue(member.value, type: type, key: key, location: location, source: source, into: &problems)
        }
    }

    private static func checkValue(
        _ value: ConfigValue, type: ConfigType, key: String, location: ConfigLocation, source: String,
        into problems: inout [AgentConfigProblem]
    ) {
        // JSON null means "not set" in Consul (a nil pointer), whatever the type.
        if value.isNull { return }
        func wrong() {
            problems.append(.wrongType(location, key: key, expected: type.expectation, found: value.kindDescription))
        }
        switch type {
        case .untyped:
            return
        case .string:
            if value.stringValue == nil { wrong() }
        case .bool:
            if value.boolValue == nil { wrong() }
        case .int:
            if value.integerValue == nil { wrong() }
        case .duration:
            guard let text = value.stringValue else { return wrong() }
            checkDuration(text, key: key, location: location, into: &problems)
        case .stringList:
            guard let elements = value.arrayValue, elements.allSatisfy({ $0.stringValue != nil }) else { return wrong() }
        case .stringMap:
            guard let object = value.objectValue else { return wrong() }
            for member in object.members where member.value.stringValue == nil {
                let memberLocation = ConfigLocation(source: source, position: member.position ?? location.position)
                problems.append(.wrongType(memberLocation, key: key + "." + member.key, expected: "a string", found: member.value.kindDescription))
            }
        case .durationMap:
            guard let object = value.objectValue else { return wrong() }
            for member in object.members {
                let memberLocation = ConfigLocation(source: source, position: member.position ?? location.position)
                guard let text = member.value.stringValue else {
                    problems.append(.wrongType(memberLocation, key: key + "." + member.key, expected: "a duration string such as \"30s\"", found: member.value.kindDescription))
                    continue
                }
                checkDuration(text, key: key + "." + member.key, location: memberLocation, into: &problems)
            }
        case .object(let fields):
            guard let object = value.objectValue else { return wrong() }
            checkObject(object, fields: fields, path: key, source: source, into: &problems)
        }
    }

    private static func checkDuration(_ text: String, key: String, location: ConfigLocation, into problems: inout [AgentConfigProblem]) {
        do throws(GoDuration.ParseError) {
            _ = try GoDuration.parse(text)
        } catch {
            problems.append(.invalidValue(location, key: key, reason: "invalid duration: \(error)"))
        }
    }

    // MARK: Consul's keys

    static let tlsStanza: [String: ConfigType] = [
        "ca_file": .string, "ca_path": .string, "cert_file": .string, "key_file": .string,
        "verify_incoming": .bool, "verify_outgoing": .bool, "tls_min_version": .string,
        "tls_cipher_suites": .untyped,
    ]

    /// The agent config keys. Typed keys are the ones `AgentConfig` carries; `.untyped` ones are
    /// Consul settings that are valid but not acted on yet (listed in `AgentConfig.ignoredKeys`).
    static let agent = ConfigSchemaFields([
        "server": .bool, "bootstrap": .bool, "bootstrap_expect": .int, "raft_snapshot_threshold": .int,
        "raft_snapshot_interval": .duration, "raft_trailing_logs": .int,
        "node_name": .string, "node_id": .string, "node_meta": .stringMap,
        "datacenter": .string, "primary_datacenter": .string, "domain": .string, "alt_domain": .string,
        "data_dir": .string, "pid_file": .string,
        "bind_addr": .string, "advertise_addr": .string, "advertise_addr_wan": .string, "client_addr": .string,
        "ports": .object(ConfigSchemaFields([
            "http": .int, "https": .int, "dns": .int, "server": .int, "serf_lan": .int, "serf_wan": .int, "grpc": .int,
            "grpc_tls": .untyped, "sidecar_min_port": .untyped, "sidecar_max_port": .untyped,
            "expose_min_port": .untyped, "expose_max_port": .untyped,
        ])),
        "retry_join": .stringList, "retry_join_wan": .stringList,
        "retry_interval": .duration, "retry_interval_wan": .duration,
        "retry_max": .int, "retry_max_wan": .int,
        "start_join": .stringList, "start_join_wan": .stringList,
        "rejoin_after_leave": .bool, "leave_on_terminate": .bool, "skip_leave_on_interrupt": .bool,
        "encrypt": .string, "encrypt_verify_incoming": .bool, "encrypt_verify_outgoing": .bool,
        "disable_keyring_file": .bool,
        "log_level": .string, "log_json": .bool,
        "ui": .bool, "ui_dir": .string,
        "ui_config": .object(ConfigSchemaFields([
            "enabled": .bool, "dir": .string, "content_path": .untyped, "metrics_provider": .untyped,
            "metrics_provider_files": .untyped, "metrics_provider_options_json": .untyped,
            "metrics_proxy": .untyped, "dashboard_url_templates": .untyped,
        ])),
        "recursors": .stringList, "recursor": .string,
        "enable_script_checks": .bool, "enable_local_script_checks": .bool,
        "dns_config": .object(ConfigSchemaFields([
            "allow_stale": .bool, "max_stale": .duration, "node_ttl": .duration, "service_ttl": .durationMap,
            "udp_answer_limit": .int, "enable_truncate": .bool, "only_passing": .bool,
            "a_record_limit": .untyped, "recursor_timeout": .untyped, "recursor_strategy": .untyped,
            "disable_compression": .untyped, "enable_additional_node_meta_txt": .untyped, "soa": .untyped,
            "use_cache": .untyped, "cache_max_age": .untyped, "prefer_namespace": .untyped,
        ])),
        "raft_protocol": .int,
        // Advanced LAN gossip timings (memberlist's names), e.g. faster failure detection in tests.
        "gossip_lan": .object(ConfigSchemaFields([
            "gossip_nodes": .int, "gossip_interval": .duration, "probe_interval": .duration, "probe_timeout": .duration,
            "suspicion_mult": .int, "retransmit_mult": .int,
        ])),
        "autopilot": .object(ConfigSchemaFields([
            "cleanup_dead_servers": .bool, "last_contact_threshold": .duration, "max_trailing_logs": .int,
            "min_quorum": .int, "server_stabilization_time": .duration,
            "disable_upgrade_migration": .untyped, "redundancy_zone_tag": .untyped, "upgrade_version_tag": .untyped,
        ])),
        // Legacy top-level TLS names (still accepted by Consul, mapped onto `tls`).
        "ca_file": .string, "ca_path": .string, "cert_file": .string, "key_file": .string,
        "verify_incoming": .bool, "verify_incoming_rpc": .bool, "verify_incoming_https": .bool,
        "verify_outgoing": .bool, "verify_server_hostname": .bool, "tls_min_version": .string,
        "tls_cipher_suites": .untyped, "tls_prefer_server_cipher_suites": .untyped,
        "tls": .object(ConfigSchemaFields([
            "defaults": .object(ConfigSchemaFields(tlsStanza)),
            "internal_rpc": .object(ConfigSchemaFields(tlsStanza.merging(["verify_server_hostname": .bool]) { $1 })),
            "https": .object(ConfigSchemaFields(tlsStanza)),
            "grpc": .object(ConfigSchemaFields(tlsStanza.merging(["use_auto_cert": .untyped]) { $1 })),
        ])),
        "acl": .object(ConfigSchemaFields([
            "enabled": .bool, "default_policy": .string,
            "tokens": .object(ConfigSchemaFields([
                "initial_management": .string, "agent": .string, "default": .string,
                "master": .string, "agent_recovery": .untyped, "agent_master": .untyped, "replication": .untyped,
                "config_file_service_registration": .untyped, "dns": .untyped, "managed_service_provider": .untyped,
            ])),
            "down_policy": .untyped, "policy_ttl": .untyped, "role_ttl": .untyped, "token_ttl": .untyped,
            "enable_token_persistence": .untyped, "enable_token_replication": .untyped,
            "enable_key_list_policy": .untyped, "msp_disable_bootstrap": .untyped,
        ])),
        "service": .untyped, "services": .untyped, "check": .untyped, "checks": .untyped,
        // Valid Consul settings this agent does not act on yet.
        "acl_datacenter": .untyped, "acl_default_policy": .untyped, "acl_down_policy": .untyped,
        "acl_master_token": .untyped, "acl_agent_master_token": .untyped, "acl_agent_token": .untyped,
        "acl_token": .untyped, "acl_replication_token": .untyped, "acl_ttl": .untyped,
        "acl_enforce_version_8": .untyped, "addresses": .untyped, "advertise_addr_ipv4": .untyped,
        "advertise_addr_ipv6": .untyped, "advertise_addr_wan_ipv4": .untyped, "advertise_addr_wan_ipv6": .untyped,
        "advertise_reconnect_timeout": .untyped, "audit": .untyped, "auto_config": .untyped,
        "auto_encrypt": .untyped, "auto_reload_config": .untyped,
        "check_output_max_size": .untyped, "check_update_interval": .duration, "cloud": .untyped,
        "config_entries": .untyped, "connect": .untyped, "default_query_time": .untyped,
        "disable_anonymous_signature": .untyped, "disable_coordinates": .bool, "disable_host_node_id": .untyped,
        "disable_http_unprintable_char_filter": .untyped, "disable_remote_exec": .untyped,
        "disable_update_check": .untyped, "discard_check_output": .untyped, "discovery_max_stale": .untyped,
        "enable_acl_replication": .untyped, "enable_agent_tls_for_checks": .bool,
        "enable_central_service_config": .untyped, "enable_debug": .untyped, "enable_syslog": .untyped,
        "experiments": .untyped, "gossip_wan": .untyped, "http_config": .untyped,
        "license_path": .untyped, "limits": .untyped, "locality": .untyped, "log_file": .untyped,
        "log_rotate_bytes": .untyped, "log_rotate_duration": .untyped, "log_rotate_max_files": .untyped,
        "max_query_time": .untyped, "non_voting_server": .untyped, "read_replica": .untyped, "partition": .untyped,
        "peering": .untyped, "performance": .untyped, "primary_gateways": .untyped,
        "primary_gateways_interval": .untyped, "protocol": .untyped, "raft_boltdb": .untyped,
        "raft_logstore": .untyped, "reconnect_timeout": .untyped, "reconnect_timeout_wan": .untyped,
        "reporting": .untyped, "rpc": .untyped, "segment": .untyped, "segments": .untyped,
        "serf_lan": .untyped, "serf_wan": .untyped, "serf_lan_allowed_cidrs": .untyped,
        "serf_wan_allowed_cidrs": .untyped, "server_name": .untyped, "server_rejoin_age_max": .untyped,
        "session_ttl_min": .untyped, "sync_coordinate_interval_min": .duration, "sync_coordinate_rate_target": .untyped, "syslog_facility": .untyped, "tagged_addresses": .untyped,
        "telemetry": .untyped, "translate_wan_addrs": .untyped, "ui_content_path": .untyped,
        "unix_sockets": .untyped, "use_streaming_backend": .untyped, "watches": .untyped, "xds": .untyped,
    ])
}
