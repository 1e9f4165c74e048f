/// Everything `consul agent` accepts on its command line, typed but not yet validated against the
/// config files (that merge happens when the agent starts). Names follow Consul's flags exactly.
struct AgentFlags: Equatable, Sendable {
    // Role and bootstrapping
    var server = false
    var bootstrap = false
    var bootstrapExpect: Int?
    var dev = false
    var nonVotingServer = false

    // Identity and placement
    var nodeName: String?
    var nodeID: String?
    var nodeMeta: [String] = []
    var datacenter: String?
    var primaryDatacenter: String?
    var domain: String?
    var altDomain: String?
    var segment: String?
    var partition: String?

    // Files
    var dataDir: String?
    var configFiles: [String] = []
    var configDirs: [String] = []
    /// Every `-config-file` and `-config-dir`, in command-line order: Consul loads them in that
    /// order (one list), so a file given after a dir overrides the dir's files.
    var configPaths: [String] = []
    var configFormat: String?
    var hclFragments: [String] = []
    var pidFile: String?
    var autoReloadConfig = false

    // Addresses and ports
    var bind: String?
    var advertise: String?
    var advertiseWAN: String?
    var client: String?
    var serfLANBind: String?
    var serfWANBind: String?
    var serfLANAllowedCIDRs: [String] = []
    var serfWANAllowedCIDRs: [String] = []
    var httpPort: Int?
    var httpsPort: Int?
    var dnsPort: Int?
    var grpcPort: Int?
    var grpcTLSPort: Int?
    var serverPort: Int?
    var serfLANPort: Int?
    var serfWANPort: Int?

    // Joining
    var join: [String] = []
    var joinWAN: [String] = []
    var retryJoin: [String] = []
    var retryJoinWAN: [String] = []
    var retryInterval: Duration?
    var retryIntervalWAN: Duration?
    var retryMax: Int?
    var retryMaxWAN: Int?
    var rejoin = false
    var primaryGateways: [String] = []

    // Security
    var encrypt: String?
    var disableKeyringFile = false

    // Features
    var ui = false
    var uiDir: String?
    var uiContentPath: String?
    var recursors: [String] = []
    var enableScriptChecks = false
    var enableLocalScriptChecks = false
    var disableHostNodeID = false
    var checkOutputMaxSize: Int?
    var defaultQueryTime: Duration?
    var maxQueryTime: Duration?
    var raftProtocol: Int?
    var protocolVersion: Int?

    // Logging
    var logLevel: String?
    var logJSON = false
    var logFile: String?
    var logRotateBytes: Int?
    var logRotateDuration: Duration?
    var logRotateMaxFiles: Int?
    var syslog = false

    /// Flags from retired Consul features that were given: each entry says why it has no effect.
    var retiredFlagWarnings: [String] = []

    /// Built on each use (once per command run), so no shared mutable state is involved.
    static var flagSet: FlagSet<AgentFlags> {
        var f = FlagSet<AgentFlags>(commandName: "agent")
        f.bool("server", \.server, usage: "Switches agent to server mode.")
        f.bool("bootstrap", \.bootstrap, usage: "Sets server to bootstrap mode.")
        f.int("bootstrap-expect", \.bootstrapExpect, usage: "Sets server to expect bootstrap mode.")
        f.bool("dev", \.dev, usage: "Starts the agent in development mode.")
        f.bool("non-voting-server", \.nonVotingServer, usage: "(Enterprise-only) DEPRECATED: -read-replica should be used instead")
        f.bool("read-replica", \.nonVotingServer, usage: "(Enterprise-only) This flag is used to make the server not participate in the Raft quorum, and have it only receive the data replication stream.")

        f.string("node", \.nodeName, usage: "Name of this node. Must be unique in the cluster.")
        f.string("node-id", \.nodeID, usage: "A unique ID for this node across space and time. Defaults to a randomly-generated ID that persists in the data-dir.")
        f.repeated("node-meta", \.nodeMeta, usage: "An arbitrary metadata key/value pair for this node, of the format `key:value`. Can be specified multiple times.", valueName: "key:value")
        f.string("datacenter", \.datacenter, usage: "Datacenter of the agent.")
        f.string("dc", \.datacenter, usage: "Datacenter of the agent (same as -datacenter).")
        f.string("primary-datacenter", \.primaryDatacenter, usage: "Sets the primary datacenter for ACLs and federation.")
        f.string("domain", \.domain, usage: "Domain to use for DNS interface.")
        f.string("alt-domain", \.altDomain, usage: "Alternate domain to use for DNS interface.")
        f.string("segment", \.segment, usage: "(Enterprise-only) Sets the network segment to join.")
        f.string("partition", \.partition, usage: "(Enterprise-only) Sets the admin partition to join.")

        f.string("data-dir", \.dataDir, usage: "Path to a data directory to store agent state.", valueName: "path")
        f.repeated("config-file", \.configFiles, alsoInto: \.configPaths, usage: "A config file to use. Can be either .hcl or .json format. Can be specified multiple times.", valueName: "path")
        f.repeated("config-dir", \.configDirs, alsoInto: \.configPaths, usage: "Path to a directory to read configuration files from. Files are read in lexical order. Can be specified multiple times.", valueName: "path")
        f.string("config-format", \.configFormat, usage: "Config files are in this format irrespective of their extension. Must be 'hcl' or 'json'", valueName: "string")
        f.repeated("hcl", \.hclFragments, usage: "hcl config fragment. Can be specified multiple times.", valueName: "string")
        f.string("pid-file", \.pidFile, usage: "Path to file to store agent PID.", valueName: "path")
        f.bool("auto-reload-config", \.autoReloadConfig, usage: "Watches config files for changes and auto reloads the files when modified.")

        f.string("bind", \.bind, usage: "Sets the bind address for cluster communication.")
        f.string("advertise", \.advertise, usage: "Sets the advertise address to use.")
        f.string("advertise-wan", \.advertiseWAN, usage: "Sets address to advertise on WAN instead of -advertise address.")
        f.string("client", \.client, usage: "Sets the address to bind for client access. This includes RPC, DNS, HTTP, HTTPS and gRPC (if configured).")
        f.string("serf-lan-bind", \.serfLANBind, usage: "Address to bind Serf LAN listeners to.")
        f.string("serf-wan-bind", \.serfWANBind, usage: "Address to bind Serf WAN listeners to.")
        f.repeated("serf-lan-allowed-cidrs", \.serfLANAllowedCIDRs, usage: "Networks (eg: 192.168.1.0/24) allowed for Serf LAN. Can be specified multiple times.")
        f.repeated("serf-wan-allowed-cidrs", \.serfWANAllowedCIDRs, usage: "Networks (eg: 192.168.1.0/24) allowed for Serf WAN (other datacenters). Can be specified multiple times.")
        f.int("http-port", \.httpPort, usage: "Sets the HTTP API port to listen on.")
        f.int("https-port", \.httpsPort, usage: "Sets the HTTPS API port to listen on.")
        f.int("dns-port", \.dnsPort, usage: "DNS port to use.")
        f.int("grpc-port", \.grpcPort, usage: "Sets the gRPC API port to listen on.")
        f.int("grpc-tls-port", \.grpcTLSPort, usage: "Sets the gRPC-TLS API port to listen on.")
        f.int("server-port", \.serverPort, usage: "Sets the server port to listen on.")
        f.int("serf-lan-port", \.serfLANPort, usage: "Sets the Serf LAN port to listen on.")
        f.int("serf-wan-port", \.serfWANPort, usage: "Sets the Serf WAN port to listen on.")

        f.repeated("join", \.join, usage: "Address of an agent to join at start time. Can be specified multiple times.")
        f.repeated("join-wan", \.joinWAN, usage: "Address of an agent to join -wan at start time. Can be specified multiple times.")
        f.repeated("retry-join", \.retryJoin, usage: "Address of an agent to join at start time with retries enabled. Can be specified multiple times.")
        f.repeated("retry-join-wan", \.retryJoinWAN, usage: "Address of an agent to join -wan at start time with retries enabled. Can be specified multiple times.")
        f.duration("retry-interval", \.retryInterval, usage: "Time to wait between join attempts.")
        f.duration("retry-interval-wan", \.retryIntervalWAN, usage: "Time to wait between join -wan attempts.")
        f.int("retry-max", \.retryMax, usage: "Maximum number of join attempts. Defaults to 0, which will retry indefinitely.")
        f.int("retry-max-wan", \.retryMaxWAN, usage: "Maximum number of join -wan attempts. Defaults to 0, which will retry indefinitely.")
        f.bool("rejoin", \.rejoin, usage: "Ignores a previous leave and attempts to rejoin the cluster.")
        f.repeated("primary-gateway", \.primaryGateways, usage: "Address of a mesh gateway in the primary datacenter to use to bootstrap WAN federation at start time with retries enabled. Can be specified multiple times.")

        f.string("encrypt", \.encrypt, usage: "Provides the gossip encryption key.", valueName: "key")
        f.bool("disable-keyring-file", \.disableKeyringFile, usage: "Disables the backing up of the keyring to a file.")

        f.bool("ui", \.ui, usage: "Enables the built-in static web UI server.")
        f.string("ui-dir", \.uiDir, usage: "Path to directory containing the web UI resources.", valueName: "path")
        f.string("ui-content-path", \.uiContentPath, usage: "Sets the external UI path to a string. Defaults to: /ui/")
        f.repeated("recursor", \.recursors, usage: "Address of an upstream DNS server. Can be specified multiple times.")
        f.bool("enable-script-checks", \.enableScriptChecks, usage: "Enables health check scripts.")
        f.bool("enable-local-script-checks", \.enableLocalScriptChecks, usage: "Enables health check scripts from configuration file.")
        f.bool("disable-host-node-id", \.disableHostNodeID, usage: "Setting this to true will prevent Consul from using information from the host to generate a node ID, and will cause Consul to generate a random node ID instead.")
        f.int("check_output_max_size", \.checkOutputMaxSize, usage: "Sets the maximum output size for checks on this agent")
        f.duration("default-query-time", \.defaultQueryTime, usage: "the amount of time a blocking query will wait before Consul will force a response.")
        f.duration("max-query-time", \.maxQueryTime, usage: "the maximum amount of time a blocking query can wait before Consul will force a response.")
        f.int("raft-protocol", \.raftProtocol, usage: "Sets the Raft protocol version. Defaults to latest.")
        f.int("protocol", \.protocolVersion, usage: "Sets the protocol version. Defaults to latest.")

        f.string("log-level", \.logLevel, usage: "Log level of the agent.")
        f.bool("log-json", \.logJSON, usage: "Output logs in JSON format.")
        f.string("log-file", \.logFile, usage: "Path to the file the logs get written to", valueName: "path")
        f.int("log-rotate-bytes", \.logRotateBytes, usage: "Maximum number of bytes that should be written to a log file")
        f.duration("log-rotate-duration", \.logRotateDuration, usage: "Time after which log rotation needs to be performed")
        f.int("log-rotate-max-files", \.logRotateMaxFiles, usage: "Maximum number of log file archives to keep")
        f.bool("syslog", \.syslog, usage: "Enables logging to syslog.")

        // HashiCorp Atlas was shut down in 2017 and Consul removed these flags; tutorials still
        // show them, so they are read and explained instead of failing the whole command line.
        let atlas = "HashiCorp Atlas no longer exists; use -retry-join (or -retry-join with cloud auto-join) instead"
        f.retired("atlas", takesValue: true, \.retiredFlagWarnings, reason: atlas)
        f.retired("atlas-join", takesValue: false, \.retiredFlagWarnings, reason: atlas)
        f.retired("atlas-token", takesValue: true, \.retiredFlagWarnings, reason: atlas)
        f.retired("atlas-endpoint", takesValue: true, \.retiredFlagWarnings, reason: atlas)
        return f
    }
}
