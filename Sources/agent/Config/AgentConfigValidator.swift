#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore
import ConsulCrypto

/// The checks Consul makes on the merged configuration before an agent starts (its builder's
/// `Validate`), with Consul's wording where it has one. Run once, after the merge, so a value set
/// in one file and contradicted in another is judged by what the agent would really use.
///
/// Errors stop the agent; warnings are printed and the agent goes on, as Consul does (an even
/// `bootstrap_expect`, a node name DNS cannot serve).
struct AgentConfigValidator {
    /// `consul validate` checks files that may be shared by many agents, each given its data dir
    /// on the command line, so it does not insist on one (Consul's validate does the same).
    var requireDataDir = true

    static let logLevels: Set<String> = ["trace", "debug", "info", "warn", "err", "error"]
    static let tlsVersions: Set<String> = ["TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3", "tls10", "tls11", "tls12", "tls13"]

    func validate(_ c: AgentConfig) -> (errors: [String], warnings: [String]) {
        var errors: [String] = []
        var warnings: [String] = []

        if c.datacenter.isEmpty {
            errors.append("datacenter cannot be empty")
        } else if !Self.isValidDatacenter(c.datacenter) {
            errors.append("datacenter cannot be \(quoted(c.datacenter)). Please use only [a-z0-9-_].")
        }
        if let primary = c.primaryDatacenter, !primary.isEmpty, !Self.isValidDatacenter(primary) {
            errors.append("primary_datacenter cannot be \(quoted(primary)). Please use only [a-z0-9-_].")
        }
        if requireDataDir && !c.dev && (c.dataDir ?? "").isEmpty {
            errors.append("data_dir cannot be empty")
        }
        if let name = c.nodeName {
            if name.isEmpty {
                errors.append("node_name cannot be empty")
            } else if name.utf8.count > 63 {
                warnings.append("Node name \(quoted(name)) will not be discoverable via DNS due to it being too long. Valid lengths are between 1 and 63 bytes.")
            } else if !Self.isValidDNSLabel(name) {
                warnings.append("Node name \(quoted(name)) will not be discoverable via DNS due to invalid characters. Valid characters include all alpha-numerics and dashes.")
            }
        }
        if let id = c.nodeID, !Self.isUUID(id) {
            errors.append("node_id must be a UUID such as \"adf4238a-882b-9ddc-4a9d-5b6758e4159e\", got \(quoted(id))")
        }

        // Bootstrapping, in Consul's order.
        if c.bootstrap && !c.server {
            errors.append("'bootstrap = true' requires 'server = true'")
        }
        if c.raftSnapshotThreshold < 1 {
            errors.append("raft_snapshot_threshold cannot be \(c.raftSnapshotThreshold). Must be at least 1")
        }
        if c.raftSnapshotInterval < .milliseconds(5) {
            errors.append("raft_snapshot_interval cannot be \(GoDuration.format(c.raftSnapshotInterval)). Must be at least 5ms")
        }
        if c.raftTrailingLogs < 0 {
            errors.append("raft_trailing_logs cannot be \(c.raftTrailingLogs). Must be greater than or equal to zero")
        }
        if c.bootstrapExpect < 0 {
            errors.append("bootstrap_expect cannot be \(c.bootstrapExpect). Must be greater than or equal to zero")
        }
        if c.bootstrapExpect > 0 && !c.server {
            errors.append("'bootstrap_expect > 0' requires 'server = true'")
        }
        if c.bootstrapExpect > 0 && c.dev {
            errors.append("'bootstrap_expect > 0' not allowed in dev mode")
        }
        if c.bootstrapExpect > 0 && c.bootstrap {
            errors.append("'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive")
        }
        if c.server && !c.dev && !c.bootstrap && c.bootstrapExpect > 1 {
            warnings.append("bootstrap_expect > 0: expecting \(c.bootstrapExpect) servers")
        }
        if c.server && !c.dev && !c.bootstrap && c.bootstrapExpect == 2 {
            warnings.append("bootstrap_expect = 2: A cluster with 2 servers will provide no failure tolerance. See https://www.consul.io/docs/internals/consensus.html#deployment-table")
        }
        if c.server && !c.bootstrap && c.bootstrapExpect > 2 && c.bootstrapExpect % 2 == 0 {
            warnings.append("bootstrap_expect is even number: A cluster with an even number of servers does not achieve optimum fault tolerance. See https://www.consul.io/docs/internals/consensus.html#deployment-table")
        }
        if c.server && !c.dev && c.bootstrap && c.bootstrapExpect == 0 {
            warnings.append("bootstrap = true: do not enable unless necessary")
        }

        // Ports: client-facing listeners may be disabled with -1; the server RPC and LAN gossip
        // ports are what makes a node part of the cluster, so they must exist. Consul allows
        // `serf_wan = -1` (no WAN federation from this agent).
        let ports: [(key: String, value: Int, what: String, canDisable: Bool)] = [
            ("http", c.ports.http, "the HTTP API", true), ("https", c.ports.https, "the HTTPS API", true),
            ("dns", c.ports.dns, "the DNS interface", true), ("grpc", c.ports.grpc, "the gRPC API", true),
            ("server", c.ports.server, "server RPC", false), ("serf_lan", c.ports.serfLAN, "LAN gossip", false),
            ("serf_wan", c.ports.serfWAN, "WAN gossip", true),
        ]
        for port in ports where !(1...65535).contains(port.value) && !(port.canDisable && port.value == -1) {
            if port.canDisable {
                errors.append("ports.\(port.key): invalid port \(port.value); use 1-65535, or -1 to disable \(port.what)")
            } else {
                errors.append("ports.\(port.key): invalid port \(port.value); use 1-65535 (the \(port.what) port cannot be disabled)")
            }
        }

        if let key = c.encrypt {
            do throws(GossipKeyError) {
                _ = try GossipKey(base64: key)
            } catch {
                errors.append("encrypt has invalid key: \(error)")
            }
        }
        if !Self.logLevels.contains(c.logLevel) {
            errors.append("Invalid log level: \(c.logLevel). Valid log levels are: [trace debug info warn err error]")
        }

        // Addresses. Go-sockaddr templates ("{{ GetPrivateIP }}") are resolved when the agent starts.
        if !Self.isIPOrTemplate(c.bindAddr) {
            errors.append("bind_addr: \(quoted(c.bindAddr)) is not a valid IP address")
        }
        for (key, address, label) in [("advertise_addr", c.advertiseAddr, "Advertise address"), ("advertise_addr_wan", c.advertiseAddrWAN, "Advertise WAN address")] {
            guard let address else { continue }
            if !Self.isIPOrTemplate(address) {
                errors.append("\(key): \(quoted(address)) is not a valid IP address")
            } else if Self.isAnyAddress(address) {
                errors.append("\(label) cannot be 0.0.0.0, :: or [::]")
            }
        }
        if c.clientAddrs.isEmpty {
            errors.append("client_addr cannot be empty")
        }
        for address in c.clientAddrs where !Self.isIPOrTemplate(address) {
            errors.append("client_addr: \(quoted(address)) is not a valid IP address")
        }
        for recursor in c.recursors {
            if Self.isAnyAddress(recursor) {
                errors.append("DNS recursor address cannot be 0.0.0.0, :: or [::]")
            }
        }

        if c.dns.udpAnswerLimit <= 0 {
            errors.append("dns_config.udp_answer_limit cannot be \(c.dns.udpAnswerLimit). Must be positive")
        }
        if c.ui.enabled && c.ui.dir != nil {
            errors.append("Both the ui_config.enabled and ui_config.dir (or -ui and -ui-dir) were specified, please provide only one. If trying to use your own web UI resources, use ui_config.dir or the -ui-dir flag. The web UI is included in the binary so use ui_config.enabled or the -ui flag to enable it")
        }
        if c.raftProtocol != 3 {
            errors.append("raft_protocol version \(c.raftProtocol) is not supported by this version of Consul")
        }
        if c.acl.defaultPolicy != "allow" && c.acl.defaultPolicy != "deny" {
            errors.append("acl.default_policy must be \"allow\" or \"deny\", not \(quoted(c.acl.defaultPolicy))")
        }
        for (stanza, settings) in [("defaults", c.tls.defaults), ("internal_rpc", c.tls.internalRPC), ("https", c.tls.https)] {
            if let version = settings.tlsMinVersion, !Self.tlsVersions.contains(version) {
                errors.append("tls.\(stanza).tls_min_version: TLS version \(quoted(version)) is not supported; use TLSv1_0, TLSv1_1, TLSv1_2 or TLSv1_3")
            }
        }
        // Certificates the listeners would need; Consul's TLS configurator refuses these at start.
        for (stanza, settings) in [("internal_rpc", c.tls.effectiveInternalRPC), ("https", c.tls.effectiveHTTPS)] {
            let hasCA = settings.caFile != nil || settings.caPath != nil
            if (settings.certFile == nil) != (settings.keyFile == nil) {
                errors.append("tls.\(stanza): cert_file and key_file must be given together")
            }
            if settings.verifyOutgoing == true && stanza == "internal_rpc" && !hasCA {
                errors.append("tls.\(stanza): VerifyOutgoing set, and no CA certificate provided!")
            }
            if settings.verifyIncoming == true {
                if !hasCA { errors.append("tls.\(stanza): VerifyIncoming set, and no CA certificate provided") }
                if settings.certFile == nil || settings.keyFile == nil {
                    errors.append("tls.\(stanza): VerifyIncoming set, and no Cert/Key pair provided")
                }
            }
        }
        return (errors, warnings)
    }

    private func quoted(_ text: String) -> String {
        "\"" + text.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"") + "\""
    }

    static func isValidDatacenter(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D || $0 == 0x5F }
    }

    /// Consul's node-name rule for DNS: letters, digits and dashes.
    static func isValidDNSLabel(_ name: String) -> Bool {
        name.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x41...0x5A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }
    }

    static func isUUID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return false }
        for (offset, byte) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(offset) {
                if byte != 0x2D { return false }
            } else if !(Character(UnicodeScalar(byte)).isHexDigit) {
                return false
            }
        }
        return true
    }

    static func isIPOrTemplate(_ text: String) -> Bool {
        text.hasPrefix("{{") || isIP(text)
    }

    /// IPv4 or IPv6 text as `inet_pton` reads it; `[::]` (bracketed, as Consul also accepts) too.
    static func isIP(_ text: String) -> Bool {
        var address = text
        if address.hasPrefix("[") && address.hasSuffix("]") { address = String(address.dropFirst().dropLast()) }
        var buffer = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, address, &buffer) == 1 { return true }
        return inet_pton(AF_INET6, address, &buffer) == 1
    }

    static func isAnyAddress(_ text: String) -> Bool {
        text == "0.0.0.0" || text == "::" || text == "[::]"
    }
}

extension String {
    /// Plain substring replacement without Foundation.
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
