import Testing
@testable import ConsulAgent
@testable import ConsulCore

@Suite struct AgentConfigLoaderTests {
    @Test func defaultsAreConsuls() throws {
        let result = try loadConfig(commandLine: ["-data-dir", "/var/consul"])
        let c = try #require(result.config)
        #expect(!c.server && !c.bootstrap && c.bootstrapExpect == 0 && !c.dev)
        #expect(c.raftSnapshotThreshold == 16384)
        #expect(try loadConfig(commandLine: ["-data-dir", "/d", "-hcl", "raft_snapshot_threshold = 500"]).config?.raftSnapshotThreshold == 500)
        #expect(c.raftSnapshotInterval == .seconds(30) && c.raftTrailingLogs == 10240)
        let raft = try #require(try loadConfig(commandLine: ["-data-dir", "/d", "-hcl", "raft_snapshot_interval = \"5s\"\nraft_trailing_logs = 0"]).config)
        #expect(raft.raftSnapshotInterval == .seconds(5) && raft.raftTrailingLogs == 0)
        #expect(c.datacenter == "dc1")
        #expect(c.domain == "consul.")
        #expect(c.clientAddrs == ["127.0.0.1"])
        #expect(c.bindAddr == "0.0.0.0" && c.bindAddressNeedsResolution)
        #expect(c.ports == AgentConfig.Ports(http: 8500, https: -1, dns: 8600, server: 8300, serfLAN: 8301, serfWAN: 8302, grpc: -1))
        #expect(c.retryInterval == .seconds(30) && c.retryIntervalWAN == .seconds(30) && c.retryMax == 0)
        #expect(c.logLevel == "info")
        #expect(c.encryptVerifyIncoming && c.encryptVerifyOutgoing)
        #expect(!c.ui.enabled)
        #expect(c.dns.udpAnswerLimit == 3 && c.dns.allowStale && c.dns.nodeTTL == .zero)
        #expect(c.raftProtocol == 3)
        #expect(c.acl == AgentConfig.ACLConfig(enabled: false, defaultPolicy: "allow"))
        // Clients leave on SIGTERM and SIGINT; servers do not.
        #expect(c.effectiveLeaveOnTerminate && !c.effectiveSkipLeaveOnInterrupt)
        #expect(result.warnings.isEmpty)
    }

    @Test func devModeNeedsNoDataDirAndUsesDevDefaults() throws {
        let c = try #require(try loadConfig(commandLine: ["-dev"]).config)
        #expect(c.dev && c.server && c.bootstrap)
        #expect(c.dataDir == nil)
        #expect(c.bindAddr == "127.0.0.1" && !c.bindAddressNeedsResolution)
        #expect(c.clientAddrs == ["127.0.0.1"])
        #expect(c.logLevel == "debug")
        #expect(c.ui.enabled)
        #expect(c.ports.grpc == 8502)
        #expect(!c.effectiveLeaveOnTerminate && c.effectiveSkipLeaveOnInterrupt)
    }

    @Test func filesCanOverrideDevDefaults() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("a.hcl", "log_level = \"warn\"\nports { grpc = 9502 }\n")
        let c = try #require(try loadConfig(commandLine: ["-dev", "-config-file", file]).config)
        #expect(c.logLevel == "warn" && c.ports.grpc == 9502 && c.server)
    }

    @Test func flagsWinOverFiles() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("agent.json", """
            {"datacenter": "east", "node_name": "from-file", "data_dir": "/file", "ports": {"http": 1111, "dns": 53},
             "log_level": "warn", "retry_join": ["10.0.0.1"], "client_addr": "10.0.0.5"}
            """)
        let c = try #require(try loadConfig(commandLine: [
            "-config-file", file, "-dc", "west", "-node=n1", "-data-dir", "/flag", "-http-port", "8501",
            "-log-level", "debug", "-retry-join", "10.0.0.2", "-client", "0.0.0.0 127.0.0.1",
        ]).config)
        #expect(c.datacenter == "west" && c.nodeName == "n1" && c.dataDir == "/flag")
        #expect(c.ports.http == 8501 && c.ports.dns == 53)  // a file key the flags do not set stays
        #expect(c.logLevel == "debug")
        // Lists accumulate, as Consul appends slices from every source.
        #expect(c.retryJoin == ["10.0.0.1", "10.0.0.2"])
        #expect(c.clientAddrs == ["0.0.0.0", "127.0.0.1"])
    }

    @Test func everyTypedFlagReachesTheConfig() throws {
        let c = try #require(try loadConfig(commandLine: [
            "-server", "-bootstrap-expect=3", "-data-dir=/d", "-node-id=adf4238a-882b-9ddc-4a9d-5b6758e4159e",
            "-node-meta=rack:r1:a", "-primary-datacenter=dc0", "-domain=example.", "-alt-domain=alt.",
            "-pid-file=/run/c.pid", "-bind=10.0.0.9", "-advertise=10.0.0.8", "-advertise-wan=1.2.3.4",
            "-https-port=8501", "-dns-port=8601", "-grpc-port=8502", "-server-port=8310", "-serf-lan-port=8311",
            "-serf-wan-port=8312", "-retry-join-wan=w1", "-retry-interval=5s", "-retry-interval-wan=1m",
            "-retry-max=4", "-retry-max-wan=5", "-join=j1", "-join-wan=jw1", "-rejoin",
            "-encrypt=pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=", "-disable-keyring-file", "-log-json",
            "-ui-dir=/ui", "-recursor=8.8.8.8", "-enable-script-checks", "-enable-local-script-checks",
            "-raft-protocol=3",
        ]).config)
        #expect(c.server && c.bootstrapExpect == 3)
        #expect(c.nodeID == "adf4238a-882b-9ddc-4a9d-5b6758e4159e")
        #expect(c.nodeMeta == ["rack": "r1:a"])
        #expect(c.primaryDatacenter == "dc0" && c.domain == "example." && c.altDomain == "alt.")
        #expect(c.pidFile == "/run/c.pid")
        #expect(c.bindAddr == "10.0.0.9" && c.advertiseAddr == "10.0.0.8" && c.advertiseAddrWAN == "1.2.3.4")
        #expect(c.ports == AgentConfig.Ports(http: 8500, https: 8501, dns: 8601, server: 8310, serfLAN: 8311, serfWAN: 8312, grpc: 8502))
        #expect(c.retryJoinWAN == ["w1"] && c.retryInterval == .seconds(5) && c.retryIntervalWAN == .seconds(60))
        #expect(c.retryMax == 4 && c.retryMaxWAN == 5)
        #expect(c.startJoin == ["j1"] && c.startJoinWAN == ["jw1"] && c.rejoinAfterLeave)
        #expect(c.encrypt == "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=" && c.disableKeyringFile)
        #expect(c.logJSON && c.ui.dir == "/ui" && !c.ui.enabled)
        #expect(c.recursors == ["8.8.8.8"] && c.enableScriptChecks && c.enableLocalScriptChecks)
    }

    @Test func configDirIsReadInLexicalOrderAndMerged() throws {
        let dir = try TemporaryDirectory()
        // Written out of order; "10-" sorts before "2-" bytewise, as Go sorts directory entries.
        try dir.write("conf/2-second.hcl", """
            node_name = "second"
            service { name = "api" }
            check { id = "mem", ttl = "30s" }
            retry_join = ["b"]
            """)
        try dir.write("conf/10-first.json", """
            {"node_name": "first", "datacenter": "first-dc", "service": {"name": "single"},
             "services": [{"name": "web"}, {"name": "db"}], "retry_join": ["a"]}
            """)
        try dir.write("conf/README.md", "not config { at all")
        try dir.write("conf/old.json.bak", "{ broken")
        try dir.write("conf/sub.json/inner.json", "{ broken")  // a directory named *.json is skipped
        let c = try #require(try loadConfig(commandLine: ["-data-dir=/d", "-config-dir", dir.path + "/conf"]).config)
        #expect(c.nodeName == "second")
        #expect(c.datacenter == "first-dc")
        #expect(c.retryJoin == ["a", "b"])
        #expect(c.services.map { $0["name"]?.stringValue } == ["web", "db", "single", "api"])
        #expect(c.checks.map { $0["id"]?.stringValue } == ["mem"])
    }

    @Test func configFilesAndDirsLoadInCommandLineOrder() throws {
        let dir = try TemporaryDirectory()
        try dir.write("conf/a.json", #"{"node_name": "from-dir", "datacenter": "dir-dc"}"#)
        let file = try dir.write("override.hcl", "node_name = \"from-file\"\n")
        let fileLast = try #require(try loadConfig(commandLine: ["-data-dir=/d", "-config-dir", dir.path + "/conf", "-config-file", file]).config)
        #expect(fileLast.nodeName == "from-file" && fileLast.datacenter == "dir-dc")
        let dirLast = try #require(try loadConfig(commandLine: ["-data-dir=/d", "-config-file", file, "-config-dir", dir.path + "/conf"]).config)
        #expect(dirLast.nodeName == "from-dir")
    }

    @Test func repeatedHCLServiceBlocksAreAllKept() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("s.hcl", "service {\n  name = \"a\"\n}\nservice {\n  name = \"b\"\n}\ncheck {\n  id = \"c1\"\n  ttl = \"10s\"\n}\n")
        let c = try #require(try loadConfig(commandLine: ["-data-dir=/d", "-config-file", file]).config)
        #expect(c.services.map { $0["name"]?.stringValue } == ["a", "b"])
        #expect(c.checks.map { $0["id"]?.stringValue } == ["c1"])

        let json = try dir.write("s.json", #"{"services": {"name": "x"}, "service": {"name": "y"}}"#)
        let mixed = try #require(try loadConfig(commandLine: ["-data-dir=/d", "-config-file", json]).config)
        #expect(mixed.services.map { $0["name"]?.stringValue } == ["x", "y"])
    }

    @Test func configFilesComeBeforeHCLFragmentsWhichComeBeforeFlags() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("a.json", #"{"node_name": "file", "datacenter": "filedc", "domain": "file."}"#)
        let c = try #require(try loadConfig(commandLine: [
            "-config-file", file, "-hcl", #"node_name = "hcl""#, "-hcl", #"datacenter = "hcldc""#, "-node", "flag", "-data-dir=/d",
        ]).config)
        #expect(c.nodeName == "flag" && c.datacenter == "hcldc" && c.domain == "file.")
    }

    @Test func configFormatOverridesTheExtension() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("agent.conf", "datacenter = \"hcl-dc\"\n")
        let withoutFormat = try loadConfig(commandLine: ["-data-dir=/d", "-config-file", file])
        #expect(withoutFormat.errors == ["Error reading '\(file)': cannot tell the config format from the file name; name it *.json or *.hcl, or pass -config-format"])
        let c = try #require(try loadConfig(commandLine: ["-data-dir=/d", "-config-format=hcl", "-config-file", file]).config)
        #expect(c.datacenter == "hcl-dc")
        let json = try dir.write("looks.hcl", #"{"datacenter": "json-dc"}"#)
        #expect(try loadConfig(commandLine: ["-data-dir=/d", "-config-format=json", "-config-file", json]).config?.datacenter == "json-dc")
        #expect(try loadConfig(commandLine: ["-data-dir=/d", "-config-format=yaml"]).errors == ["-config-format must be either 'hcl' or 'json', not 'yaml'"])
    }

    @Test func unreadableFilesAndDirsAreNamed() throws {
        let dir = try TemporaryDirectory()
        let missing = dir.path + "/nope.json"
        let missingDir = dir.path + "/nodir"
        let result = try loadConfig(commandLine: ["-data-dir=/d", "-config-file", missing, "-config-dir", missingDir])
        #expect(result.errors == [
            "Error reading '\(missing)': No such file or directory",
            "Error reading '\(missingDir)': No such file or directory",
        ])
    }

    @Test func unknownKeysAreRefusedWithFileLineAndColumn() throws {
        let dir = try TemporaryDirectory()
        let json = try dir.write("a.json", "{\n  \"datacenter\": \"dc1\",\n  \"data_dirr\": \"/x\",\n  \"ports\": {\"http\": 1, \"htps\": 2}\n}\n")
        let hcl = try dir.write("b.hcl", "acl {\n  tokens {\n    agnet = \"x\"\n  }\n}\n")
        let result = try loadConfig(commandLine: ["-data-dir=/d", "-config-file", json, "-config-file", hcl])
        #expect(result.errors == [
            "\(json):3:3: invalid config key data_dirr",
            "\(json):4:24: invalid config key ports.htps",
            "\(hcl):3:5: invalid config key acl.tokens.agnet",
        ])
    }

    @Test func typeErrorsNameFilePositionKeyAndExpectedType() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("t.hcl", """
            server = "yes"
            ports {
              http = "8500"
            }
            retry_join = "10.0.0.1"
            node_meta { rack = 3 }
            dns_config {
              service_ttl { web = "5 s" }
              max_stale = 10
            }
            bootstrap_expect = 1.5
            """)
        let result = try loadConfig(commandLine: ["-data-dir=/d", "-config-file", file])
        #expect(result.errors == [
            "\(file):1:1: server: expected a boolean, found a string",
            "\(file):3:3: ports.http: expected an integer, found a string",
            "\(file):5:1: retry_join: expected a list of strings, found a string",
            "\(file):6:13: node_meta.rack: expected a string, found an integer",
            "\(file):8:17: dns_config.service_ttl.web: invalid duration: time: unknown unit \" s\" in duration \"5 s\"",
            "\(file):9:3: dns_config.max_stale: expected a duration string such as \"30s\", found an integer",
            "\(file):11:1: bootstrap_expect: expected an integer, found a number",
        ])
    }

    @Test func syntaxErrorsFromEveryFileAreReported() throws {
        let dir = try TemporaryDirectory()
        let a = try dir.write("a.json", "{\"server\": true,}")
        let b = try dir.write("b.hcl", "server = \n")
        let result = try loadConfig(commandLine: ["-data-dir=/d", "-config-file", a, "-config-file", b])
        #expect(result.errors.count == 2)
        #expect(result.errors[0].hasPrefix("\(a):1:"))
        #expect(result.errors[1].hasPrefix("\(b):"))
    }

    @Test func jsonNullLeavesTheDefault() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("n.json", #"{"datacenter": null, "ports": {"http": null}, "retry_join": null}"#)
        let c = try #require(try loadConfig(commandLine: ["-data-dir=/d", "-config-file", file]).config)
        #expect(c.datacenter == "dc1" && c.ports.http == 8500 && c.retryJoin.isEmpty)
    }

    @Test func typedSettingsFromAFile() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("full.hcl", """
            server = true
            bootstrap_expect = 3
            data_dir = "/opt/consul"
            datacenter = "DC-East"
            client_addr = "127.0.0.1 10.0.0.1"
            log_level = "INFO"
            ui_config { enabled = true }
            leave_on_terminate = true
            skip_leave_on_interrupt = false
            encrypt_verify_incoming = false
            dns_config {
              allow_stale = false
              max_stale = "10s"
              node_ttl = "5s"
              service_ttl { "*" = "1s", web = "30s" }
              udp_answer_limit = 5
              enable_truncate = true
              only_passing = true
            }
            ca_file = "/legacy/ca.pem"
            verify_outgoing = true
            verify_server_hostname = true
            tls {
              defaults { cert_file = "/tls/cert.pem", key_file = "/tls/key.pem", tls_min_version = "TLSv1_3" }
              internal_rpc { verify_incoming = true }
              https { verify_incoming = false, ca_file = "/https/ca.pem" }
            }
            acl {
              enabled = true
              default_policy = "deny"
              tokens { initial_management = "root", agent = "agent-tok", default = "anon" }
            }
            telemetry { statsd_address = "127.0.0.1:8125" }
            """)
        let result = try loadConfig(commandLine: ["-config-file", file])
        let c = try #require(result.config)
        #expect(c.datacenter == "dc-east" && c.logLevel == "info")
        #expect(c.clientAddrs == ["127.0.0.1", "10.0.0.1"])
        #expect(c.ui.enabled && c.effectiveLeaveOnTerminate && !c.effectiveSkipLeaveOnInterrupt)
        #expect(!c.encryptVerifyIncoming && c.encryptVerifyOutgoing)
        #expect(c.dns == AgentConfig.DNSConfig(
            allowStale: false, maxStale: .seconds(10), nodeTTL: .seconds(5),
            serviceTTL: ["*": .seconds(1), "web": .seconds(30)], udpAnswerLimit: 5, enableTruncate: true, onlyPassing: true))
        let rpc = c.tls.effectiveInternalRPC
        #expect(rpc.caFile == "/legacy/ca.pem" && rpc.certFile == "/tls/cert.pem" && rpc.keyFile == "/tls/key.pem")
        #expect(rpc.verifyIncoming == true && rpc.verifyOutgoing == true && rpc.verifyServerHostname == true)
        #expect(rpc.tlsMinVersion == "TLSv1_3")
        #expect(c.tls.effectiveHTTPS.caFile == "/https/ca.pem" && c.tls.effectiveHTTPS.verifyIncoming == false)
        #expect(c.acl == AgentConfig.ACLConfig(enabled: true, defaultPolicy: "deny", initialManagementToken: "root", agentToken: "agent-tok", defaultToken: "anon"))
        #expect(c.ignoredKeys == ["telemetry"])
        #expect(result.warnings.contains("The 'ca_file' field is deprecated. Use the 'tls.defaults.ca_file' field instead."))
        #expect(result.warnings.contains("The 'verify_server_hostname' field is deprecated. Use the 'tls.internal_rpc.verify_server_hostname' field instead."))
    }

    @Test func legacyUIAndMasterTokenNamesStillWork() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("old.json", #"{"ui": true, "acl": {"tokens": {"master": "m"}}, "recursor": "1.1.1.1", "recursors": ["8.8.8.8"]}"#)
        let result = try loadConfig(commandLine: ["-data-dir=/d", "-config-file", file])
        let c = try #require(result.config)
        #expect(c.ui.enabled && c.acl.initialManagementToken == "m" && c.recursors == ["1.1.1.1", "8.8.8.8"])
        #expect(result.warnings == ["The 'ui' field is deprecated. Use the 'ui_config.enabled' field instead."])
    }

    /// The service definitions the seed tutorials drop into their config dirs (seed 002's web3.json,
    /// seed 004's jetty service), together with the command lines that load them.
    @Test func seedTutorialConfigFilesAreAccepted() throws {
        let dir = try TemporaryDirectory()
        try dir.write("conf/web3.json", """
            {
              "service": {
                "name": "web3",
                "tags": ["master"],
                "address": "127.0.0.1",
                "port": 10000,
                "checks": [
                  {
                    "http": "http://localhost:10000/health",
                    "interval": "10s"
                  }
                ]
              }
            }
            """)
        try dir.write("conf/jetty.json", """
            {
              "service":{
                "id": "jetty",
                "name": "jetty",
                "address": "14.215.177.38",
                "port": 80,
                "tags": ["dev"],
                "checks": [
                    {
                        "http": "http://14.215.177.38:80/",
                        "interval": "5s"
                    }
                ]
              }
            }
            """)
        let result = try loadConfig(commandLine: [
            "-data-dir", "/tmp/consul", "-node=n3", "-bind=10.10.126.187", "-dc=dc1", "-config-dir=\(dir.path)/conf",
        ])
        let c = try #require(result.config)
        #expect(c.services.map { $0["name"]?.stringValue } == ["jetty", "web3"])
        #expect(c.services[1].lookup(["checks", 0, "interval"]) == .string("10s"))
        #expect(c.nodeName == "n3" && c.bindAddr == "10.10.126.187")
    }

    @Test func nodeMetaFlagNeedsAColon() throws {
        #expect(try loadConfig(commandLine: ["-data-dir=/d", "-node-meta=rack"]).errors == ["-node-meta: invalid value \"rack\"; use key:value"])
    }
}
