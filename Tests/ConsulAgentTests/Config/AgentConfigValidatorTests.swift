import Testing
@testable import ConsulAgent

@Suite struct AgentConfigValidatorTests {
    static let key32 = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="

    /// Each bad command line and the one error it must produce, in Consul's words where Consul has them.
    static let refused: [(arguments: [String], error: String)] = [
        ([], "data_dir cannot be empty"),
        (["-data-dir=/d", "-dc=east.1"], "datacenter cannot be \"east.1\". Please use only [a-z0-9-_]."),
        (["-data-dir=/d", "-dc="], "datacenter cannot be empty"),
        (["-data-dir=/d", "-primary-datacenter=p q"], "primary_datacenter cannot be \"p q\". Please use only [a-z0-9-_]."),
        (["-data-dir=/d", "-node="], "node_name cannot be empty"),
        (["-data-dir=/d", "-node-id=1234"], "node_id must be a UUID such as \"adf4238a-882b-9ddc-4a9d-5b6758e4159e\", got \"1234\""),
        (["-data-dir=/d", "-bootstrap"], "'bootstrap = true' requires 'server = true'"),
        (["-data-dir=/d", "-server", "-bootstrap-expect=-1"], "bootstrap_expect cannot be -1. Must be greater than or equal to zero"),
        (["-data-dir=/d", "-bootstrap-expect=3"], "'bootstrap_expect > 0' requires 'server = true'"),
        (["-data-dir=/d", "-server", "-bootstrap", "-bootstrap-expect=3"], "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive"),
        (["-data-dir=/d", "-http-port=70000"], "ports.http: invalid port 70000; use 1-65535, or -1 to disable the HTTP API"),
        (["-data-dir=/d", "-dns-port=0"], "ports.dns: invalid port 0; use 1-65535, or -1 to disable the DNS interface"),
        (["-data-dir=/d", "-server-port=-1"], "ports.server: invalid port -1; use 1-65535 (the server RPC port cannot be disabled)"),
        (["-data-dir=/d", "-serf-lan-port=-1"], "ports.serf_lan: invalid port -1; use 1-65535 (the LAN gossip port cannot be disabled)"),
        (["-data-dir=/d", "-serf-wan-port=65536"], "ports.serf_wan: invalid port 65536; use 1-65535, or -1 to disable WAN gossip"),
        (["-data-dir=/d", "-encrypt=not base64!"], "encrypt has invalid key: gossip encryption key is not valid base64; generate one with 'consul keygen'"),
        (["-data-dir=/d", "-encrypt=AAAAAAAAAAAAAAAAAAAAAAAAAA=="], "encrypt has invalid key: gossip encryption key must be 16, 24 or 32 bytes once base64-decoded (AES-128/192/256), got 19 bytes"),
        (["-data-dir=/d", "-log-level=verbose"], "Invalid log level: verbose. Valid log levels are: [trace debug info warn err error]"),
        (["-data-dir=/d", "-bind=10.0.0"], "bind_addr: \"10.0.0\" is not a valid IP address"),
        (["-data-dir=/d", "-advertise=0.0.0.0"], "Advertise address cannot be 0.0.0.0, :: or [::]"),
        (["-data-dir=/d", "-advertise-wan=::"], "Advertise WAN address cannot be 0.0.0.0, :: or [::]"),
        (["-data-dir=/d", "-advertise=host.example"], "advertise_addr: \"host.example\" is not a valid IP address"),
        (["-data-dir=/d", "-client=127.0.0.1 localhost"], "client_addr: \"localhost\" is not a valid IP address"),
        (["-data-dir=/d", "-client="], "client_addr cannot be empty"),
        (["-data-dir=/d", "-recursor=0.0.0.0"], "DNS recursor address cannot be 0.0.0.0, :: or [::]"),
        (["-data-dir=/d", "-hcl", "dns_config { udp_answer_limit = 0 }"], "dns_config.udp_answer_limit cannot be 0. Must be positive"),
        (["-data-dir=/d", "-hcl", "raft_snapshot_threshold = 0"], "raft_snapshot_threshold cannot be 0. Must be at least 1"),
        (["-data-dir=/d", "-hcl", "raft_snapshot_interval = \"1ms\""], "raft_snapshot_interval cannot be 1ms. Must be at least 5ms"),
        (["-data-dir=/d", "-hcl", "raft_trailing_logs = -1"], "raft_trailing_logs cannot be -1. Must be greater than or equal to zero"),
        (["-data-dir=/d", "-raft-protocol=2"], "raft_protocol version 2 is not supported by this version of Consul"),
        (["-data-dir=/d", "-hcl", "acl { default_policy = \"block\" }"], "acl.default_policy must be \"allow\" or \"deny\", not \"block\""),
        (["-data-dir=/d", "-hcl", "tls_min_version = \"ssl3\""], "tls.defaults.tls_min_version: TLS version \"ssl3\" is not supported; use TLSv1_0, TLSv1_1, TLSv1_2 or TLSv1_3"),
        (["-dev", "-bootstrap-expect=3", "-hcl", "bootstrap = false"], "'bootstrap_expect > 0' not allowed in dev mode"),
        (["-data-dir=/d", "-hcl", "tls { internal_rpc { verify_outgoing = true } }"], "tls.internal_rpc: VerifyOutgoing set, and no CA certificate provided!"),
        (["-data-dir=/d", "-hcl", "tls { https { cert_file = \"/c.pem\" } }"], "tls.https: cert_file and key_file must be given together"),
    ]

    /// TLS settings inherited from `tls.defaults` are checked for each listener that uses them.
    static let refusedTLS: [(hcl: String, errors: [String])] = [
        ("verify_incoming = true", [
            "tls.internal_rpc: VerifyIncoming set, and no CA certificate provided",
            "tls.internal_rpc: VerifyIncoming set, and no Cert/Key pair provided",
            "tls.https: VerifyIncoming set, and no CA certificate provided",
            "tls.https: VerifyIncoming set, and no Cert/Key pair provided",
        ]),
        ("tls { defaults { verify_incoming = true, ca_file = \"/ca.pem\" } }", [
            "tls.internal_rpc: VerifyIncoming set, and no Cert/Key pair provided",
            "tls.https: VerifyIncoming set, and no Cert/Key pair provided",
        ]),
    ]

    @Test(arguments: refused.indices)
    func refusedWithANamedError(index: Int) throws {
        let (arguments, error) = Self.refused[index]
        #expect(try loadConfig(commandLine: arguments).errors == [error], "arguments: \(arguments)")
    }

    @Test(arguments: refusedTLS.indices)
    func incompleteTLSIsRefused(index: Int) throws {
        let (hcl, errors) = Self.refusedTLS[index]
        #expect(try loadConfig(commandLine: ["-data-dir=/d", "-hcl", hcl]).errors == errors, "hcl: \(hcl)")
    }

    @Test func completeTLSPasses() throws {
        let result = try loadConfig(commandLine: ["-data-dir=/d", "-hcl", """
            tls {
              defaults { ca_file = "/ca.pem", cert_file = "/c.pem", key_file = "/k.pem", verify_incoming = true, verify_outgoing = true }
              internal_rpc { verify_server_hostname = true }
            }
            """])
        #expect(result.errors.isEmpty && result.warnings.isEmpty)
    }

    @Test func uiAndUIDirTogetherAreRefused() throws {
        let errors = try loadConfig(commandLine: ["-data-dir=/d", "-ui", "-ui-dir=/ui"]).errors
        #expect(errors.count == 1 && errors[0].hasPrefix("Both the ui_config.enabled and ui_config.dir (or -ui and -ui-dir) were specified"))
    }

    @Test func allProblemsAreReportedTogether() throws {
        let errors = try loadConfig(commandLine: ["-log-level=x", "-encrypt=x"]).errors
        #expect(errors.count == 3)
        #expect(errors.first == "data_dir cannot be empty")
    }

    @Test func validValuesPass() throws {
        for arguments in [
            ["-data-dir=/d", "-encrypt=\(Self.key32)", "-log-level=ERR", "-bind=::1", "-client=[::] 0.0.0.0"],
            ["-data-dir=/d", "-encrypt=AAAAAAAAAAAAAAAAAAAAAA==", "-log-level=trace", "-bind={{ GetPrivateIP }}"],
            ["-data-dir=/d", "-https-port=-1", "-grpc-port=-1", "-dns-port=-1", "-http-port=-1", "-serf-wan-port=-1"],
            ["-data-dir=/d", "-dc=my_dc-2", "-node=web-01", "-node-id=ADF4238A-882B-9DDC-4A9D-5B6758E4159E"],
        ] {
            let result = try loadConfig(commandLine: arguments)
            #expect(result.errors.isEmpty, "arguments: \(arguments)")
            #expect(result.warnings.isEmpty, "arguments: \(arguments)")
        }
    }

    @Test func bootstrapExpectWarningsAsConsul() throws {
        let two = try loadConfig(commandLine: ["-data-dir=/d", "-server", "-bootstrap-expect=2"])
        #expect(two.errors.isEmpty)
        #expect(two.warnings == [
            "bootstrap_expect > 0: expecting 2 servers",
            "bootstrap_expect = 2: A cluster with 2 servers will provide no failure tolerance. See https://www.consul.io/docs/internals/consensus.html#deployment-table",
        ])
        let four = try loadConfig(commandLine: ["-data-dir=/d", "-server", "-bootstrap-expect=4"])
        #expect(four.warnings == [
            "bootstrap_expect > 0: expecting 4 servers",
            "bootstrap_expect is even number: A cluster with an even number of servers does not achieve optimum fault tolerance. See https://www.consul.io/docs/internals/consensus.html#deployment-table",
        ])
        #expect(try loadConfig(commandLine: ["-data-dir=/d", "-server", "-bootstrap-expect=3"]).warnings == ["bootstrap_expect > 0: expecting 3 servers"])
    }

    @Test func bootstrapExpectOneIsBootstrapMode() throws {
        let result = try loadConfig(commandLine: ["-data-dir=/d", "-server", "-bootstrap-expect=1"])
        let c = try #require(result.config)
        #expect(c.bootstrap && c.bootstrapExpect == 0)
        #expect(result.warnings == [
            "BootstrapExpect is set to 1; this is the same as Bootstrap mode.",
            "bootstrap = true: do not enable unless necessary",
        ])
    }

    @Test func nodeNamesDNSCannotServeAreWarnedAbout() throws {
        let underscore = try loadConfig(commandLine: ["-data-dir=/d", "-node=my_node"])
        #expect(underscore.errors.isEmpty)
        #expect(underscore.warnings == ["Node name \"my_node\" will not be discoverable via DNS due to invalid characters. Valid characters include all alpha-numerics and dashes."])
        let long = String(repeating: "a", count: 64)
        #expect(try loadConfig(commandLine: ["-data-dir=/d", "-node=\(long)"]).warnings == [
            "Node name \"\(long)\" will not be discoverable via DNS due to it being too long. Valid lengths are between 1 and 63 bytes.",
        ])
    }

    @Test func bindAnyAddressIsLeftForStartup() throws {
        let c = try #require(try loadConfig(commandLine: ["-data-dir=/d", "-bind=0.0.0.0"]).config)
        #expect(c.bindAddressNeedsResolution)
        let pinned = try #require(try loadConfig(commandLine: ["-data-dir=/d", "-bind=10.1.2.3"]).config)
        #expect(!pinned.bindAddressNeedsResolution)
    }
}
