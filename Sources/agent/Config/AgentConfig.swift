import ConsulCore

/// The agent's runtime configuration: every setting the agent uses, typed, with Consul's defaults
/// filled in, after the config files, `-hcl` fragments and command-line flags have been merged.
///
/// Built only by `AgentConfigLoader`, which also validates it; code that receives one may rely on
/// the checks listed in `AgentConfigValidator`. Addresses stay text here: `0.0.0.0` as bind address
/// means "pick the single private IPv4 of this host", which can only be decided when the agent
/// starts (see `bindAddressNeedsResolution`).
struct AgentConfig: Equatable, Sendable {
    // Role and bootstrapping
    var server = false
    var bootstrap = false
    var bootstrapExpect = 0
    /// `raft_snapshot_threshold`: Raft log entries between two snapshots of the state store
    /// (Consul's default). Each snapshot writes the whole state, so this sets how often that
    /// cost is paid under a steady write load.
    var raftSnapshotThreshold = 16384
    /// `raft_snapshot_interval`: how often a server checks whether the threshold is reached
    /// (each wait between this and twice it, as Consul's Raft library draws it).
    var raftSnapshotInterval: Duration = .seconds(30)
    /// `raft_trailing_logs`: log entries kept below a new snapshot, so a follower that is only a
    /// little behind catches up from the log rather than by receiving the whole state.
    var raftTrailingLogs = 10240
    var dev = false

    // Identity
    var nodeName: String?
    var nodeID: String?
    var nodeMeta: [String: String] = [:]
    var datacenter = "dc1"
    var primaryDatacenter: String?
    var domain = "consul."
    var altDomain: String?

    // Files
    var dataDir: String?
    var pidFile: String?

    // Addresses
    var bindAddr = "0.0.0.0"
    var advertiseAddr: String?
    var advertiseAddrWAN: String?
    /// One or more addresses (Consul's `client_addr` is a space-separated list).
    var clientAddrs = ["127.0.0.1"]
    var ports = Ports()

    // Joining
    var retryJoin: [String] = []
    var retryJoinWAN: [String] = []
    var retryInterval: Duration = .seconds(30)
    var retryIntervalWAN: Duration = .seconds(30)
    /// 0 retries forever.
    var retryMax = 0
    var retryMaxWAN = 0
    var startJoin: [String] = []
    var startJoinWAN: [String] = []
    var rejoinAfterLeave = false
    var leaveOnTerminate: Bool?
    var skipLeaveOnInterrupt: Bool?

    // Gossip encryption
    var encrypt: String?
    var encryptVerifyIncoming = true
    var encryptVerifyOutgoing = true
    var disableKeyringFile = false

    // Logging
    var logLevel = "info"
    var logJSON = false

    // Features
    var ui = UIConfig()
    var recursors: [String] = []
    var enableScriptChecks = false
    var enableLocalScriptChecks = false
    /// HTTPS checks also trust the agent's CA (`tls.internal_rpc` / defaults).
    var enableAgentTLSForChecks = false
    var dns = DNSConfig()
    var raftProtocol = 3
    /// `gossip_lan`: overrides of memberlist's LAN timings; nil keeps the profile's value.
    var gossipLAN = GossipTimings()
    var autopilot = AutopilotConfig()

    var tls = TLSConfig()
    var acl = ACLConfig()

    /// Service and check definitions from all sources, in load order, untyped until the catalog
    /// issue types them.
    var services: [ConfigValue] = []
    var checks: [ConfigValue] = []
    /// How often a check whose output alone changes is written to the catalog (Consul's default).
    var checkUpdateInterval: Duration = .seconds(300)
    /// Consul's `sync_coordinate_interval_min`: the least time between two coordinate updates an
    /// agent sends to the servers (the leader also writes its batches at least this often).
    var syncCoordinateIntervalMin: Duration = .seconds(15)
    /// `disable_coordinates`: the agent sends no network coordinates.
    var disableCoordinates = false

    /// Consul config keys that were given and are valid, but that this agent does not act on yet.
    /// Reported so an operator is not misled into thinking they had an effect.
    var ignoredKeys: [String] = []

    struct Ports: Equatable, Sendable {
        var http = 8500
        /// -1: no HTTPS listener unless configured.
        var https = -1
        var dns = 8600
        var server = 8300
        var serfLAN = 8301
        var serfWAN = 8302
        /// -1 except in `-dev`, where Consul turns gRPC on at 8502.
        var grpc = -1
    }

    struct UIConfig: Equatable, Sendable {
        var enabled = false
        var dir: String?
    }

    struct DNSConfig: Equatable, Sendable {
        var allowStale = true
        var maxStale: Duration = .seconds(87_600 * 3600)
        var nodeTTL: Duration = .zero
        /// Per-service TTLs; the key `*` applies to services not named.
        var serviceTTL: [String: Duration] = [:]
        var udpAnswerLimit = 3
        var enableTruncate = false
        var onlyPassing = false
    }

    /// One `tls` stanza (`defaults`, `internal_rpc` or `https`); nil means "inherit from defaults".
    struct TLSSettings: Equatable, Sendable {
        var caFile: String?
        var caPath: String?
        var certFile: String?
        var keyFile: String?
        var verifyIncoming: Bool?
        var verifyOutgoing: Bool?
        var verifyServerHostname: Bool?
        var tlsMinVersion: String?
    }

    struct TLSConfig: Equatable, Sendable {
        var defaults = TLSSettings()
        var internalRPC = TLSSettings()
        var https = TLSSettings()

        /// What the server RPC listener uses: its own settings, else the defaults (Consul's rule).
        var effectiveInternalRPC: TLSSettings { internalRPC.inheriting(defaults) }
        var effectiveHTTPS: TLSSettings { https.inheriting(defaults) }
    }

    struct GossipTimings: Equatable, Sendable {
        var gossipNodes: Int?
        var gossipInterval: Duration?
        var probeInterval: Duration?
        var probeTimeout: Duration?
        var suspicionMult: Int?
        var retransmitMult: Int?
    }

    /// Consul's autopilot settings and defaults.
    struct AutopilotConfig: Equatable, Sendable {
        var cleanupDeadServers = true
        var lastContactThreshold: Duration = .milliseconds(200)
        var maxTrailingLogs = 250
        var minQuorum = 0
        var serverStabilizationTime: Duration = .seconds(10)
    }

    struct ACLConfig: Equatable, Sendable {
        var enabled = false
        var defaultPolicy = "allow"
        var initialManagementToken: String?
        var agentToken: String?
        var defaultToken: String?
    }

    /// The defaults before any file or flag is applied: Consul's, or its `-dev` ones.
    static func defaults(dev: Bool) -> AgentConfig {
        var config = AgentConfig()
        guard dev else { return config }
        config.dev = true
        config.server = true
        config.bootstrap = true
        config.bindAddr = "127.0.0.1"
        config.logLevel = "debug"
        config.ui.enabled = true
        config.ports.grpc = 8502
        // Consul's dev gossip: failures noticed in well under a second.
        config.gossipLAN = GossipTimings(
            gossipInterval: .milliseconds(100), probeInterval: .milliseconds(100), probeTimeout: .milliseconds(100),
            suspicionMult: 3, retransmitMult: 2)
        return config
    }

    /// True when the bind address is the "any" address: Consul then picks the host's single
    /// private IPv4 at start (and fails if there are several), so the address is not known yet.
    var bindAddressNeedsResolution: Bool { bindAddr == "0.0.0.0" || bindAddr == "::" || bindAddr == "[::]" }

    /// Whether the agent leaves the cluster on SIGTERM: Consul's default is false for servers and
    /// true for clients.
    var effectiveLeaveOnTerminate: Bool { leaveOnTerminate ?? !server }
    /// Whether SIGINT skips the graceful leave: true for servers, false for clients by default.
    var effectiveSkipLeaveOnInterrupt: Bool { skipLeaveOnInterrupt ?? server }
}

extension AgentConfig.TLSSettings {
    func inheriting(_ base: AgentConfig.TLSSettings) -> AgentConfig.TLSSettings {
        AgentConfig.TLSSettings(
            caFile: caFile ?? base.caFile, caPath: caPath ?? base.caPath,
            certFile: certFile ?? base.certFile, keyFile: keyFile ?? base.keyFile,
            verifyIncoming: verifyIncoming ?? base.verifyIncoming, verifyOutgoing: verifyOutgoing ?? base.verifyOutgoing,
            verifyServerHostname: verifyServerHostname ?? base.verifyServerHostname,
            tlsMinVersion: tlsMinVersion ?? base.tlsMinVersion)
    }
}
