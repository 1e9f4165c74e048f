import Synchronization
import Testing
@testable import ConsulAgent
@testable import ConsulCore

/// `ConfigReload.plan`: what a reload applies and what it keeps, from two loaded configurations.
@Suite struct ConfigReloadTests {
    private func config(_ hcl: String) throws -> AgentConfig {
        try #require(try loadConfig(commandLine: ["-data-dir", "/var/consul", "-hcl", hcl]).config)
    }

    @Test func identicalConfigurationsChangeNothing() throws {
        let running = try config(#"node_meta { rack = "r1" }"#)
        let plan = ConfigReload.plan(running: running, loaded: running)
        #expect(plan.changed.isEmpty && plan.notApplied.isEmpty)
        #expect(plan.next == running)
    }

    /// Consul reloads its Raft snapshot settings.
    @Test func raftSnapshotSettingsAreReloadable() throws {
        let running = try config("raft_snapshot_threshold = 16384")
        let loaded = try config("""
            raft_snapshot_threshold = 1000
            raft_snapshot_interval = "5s"
            raft_trailing_logs = 100
            """)
        let plan = ConfigReload.plan(running: running, loaded: loaded)
        #expect(plan.changed == [.raftSnapshotThreshold, .raftSnapshotInterval, .raftTrailingLogs])
        #expect(plan.notApplied.isEmpty)
        #expect(plan.next == loaded)
    }

    @Test func reloadableSettingsAreTakenFromTheLoadedConfiguration() throws {
        let running = try config(#"log_level = "info""#)
        let loaded = try config("""
            log_level = "DEBUG"
            node_meta {
              rack = "r2"
              zone = "z"
            }
            dns_config {
              service_ttl { "*" = "15s" }
              node_ttl = "7s"
              only_passing = true
              udp_answer_limit = 5
              allow_stale = false
            }
            acl {
              tokens {
                agent = "a-token"
                default = "d-token"
              }
            }
            service {
              name = "web"
              port = 80
            }
            check {
              id = "c1"
              ttl = "10s"
            }
            """)
        let plan = ConfigReload.plan(running: running, loaded: loaded)
        #expect(plan.changed == [.logLevel, .nodeMeta, .dnsConfig, .aclTokens, .services, .checks])
        #expect(plan.notApplied.isEmpty)
        #expect(plan.next == loaded)
        #expect(plan.next.logLevel == "debug")
        #expect(plan.next.nodeMeta == ["rack": "r2", "zone": "z"])
        #expect(plan.next.dns.serviceTTL == ["*": .seconds(15)] && plan.next.dns.nodeTTL == .seconds(7))
        #expect(plan.next.dns.onlyPassing && plan.next.dns.udpAnswerLimit == 5 && !plan.next.dns.allowStale)
        #expect(plan.next.acl.agentToken == "a-token" && plan.next.acl.defaultToken == "d-token")
    }

    @Test func removingAReloadableSettingReturnsItToItsDefault() throws {
        let running = try config(#"node_meta { rack = "r1" }"# + "\ndns_config { node_ttl = \"30s\" }")
        let loaded = try config(#"log_level = "info""#)
        let plan = ConfigReload.plan(running: running, loaded: loaded)
        #expect(plan.changed == [.nodeMeta, .dnsConfig])
        #expect(plan.next.nodeMeta.isEmpty && plan.next.dns.nodeTTL == .zero)
    }

    @Test func settingsThatNeedARestartKeepTheirRunningValueAndAreNamed() throws {
        let running = try config(#"node_name = "n1""# + "\nports { http = 8500 }\ndatacenter = \"dc1\"")
        let loaded = try config("""
            node_name = "n2"
            ports {
              http = 9500
              dns = 9600
            }
            datacenter = "dc2"
            server = true
            log_json = true
            recursors = ["127.0.0.53"]
            tls { defaults { ca_file = "/etc/consul/ca.pem" } }
            log_level = "warn"
            """)
        let plan = ConfigReload.plan(running: running, loaded: loaded)
        #expect(plan.changed == [.logLevel, .recursors])
        #expect(plan.notApplied == ["server", "node_name", "datacenter", "ports", "log_json", "tls (turning TLS on or off)"])
        // The running values stay; only the reloadable one moves.
        #expect(plan.next.nodeName == "n1" && plan.next.ports.http == 8500 && plan.next.ports.dns == 8600)
        #expect(plan.next.datacenter == "dc1" && !plan.next.server && !plan.next.logJSON)
        #expect(plan.next.recursors == ["127.0.0.53"])
        #expect(plan.next.tls == running.tls)
        #expect(plan.next.logLevel == "warn")
    }

    @Test func tlsSettingsChangeWhereTLSIsOn() throws {
        let running = try config(#"tls { defaults { ca_file = "/etc/consul/ca.pem" } }"#)
        let loaded = try config("""
            tls {
              defaults {
                ca_file = "/etc/consul/ca-2.pem"
                cert_file = "/etc/consul/agent.pem"
                key_file = "/etc/consul/agent-key.pem"
              }
            }
            """)
        let plan = ConfigReload.plan(running: running, loaded: loaded)
        #expect(plan.changed == [.tls] && plan.notApplied.isEmpty)
        #expect(plan.next.tls == loaded.tls)
        // Turning it off again is refused.
        let off = ConfigReload.plan(running: loaded, loaded: try config(#"log_level = "info""#))
        #expect(off.changed.isEmpty && off.notApplied == ["tls (turning TLS on or off)"] && off.next.tls == loaded.tls)
    }

    @Test func dataDirChangeIsRefused() throws {
        let running = try config(#"log_level = "info""#)
        let loaded = try #require(try loadConfig(commandLine: ["-data-dir", "/elsewhere"]).config)
        let plan = ConfigReload.plan(running: running, loaded: loaded)
        #expect(plan.notApplied == ["data_dir"] && plan.next.dataDir == "/var/consul")
    }

    /// Every field of `AgentConfig` is either reloadable or in the table of restart-only keys: a
    /// change the table misses still shows up as not applied, never silently.
    @Test func aChangeOutsideTheTableIsStillReported() throws {
        let running = try config(#"log_level = "info""#)
        var loaded = running
        loaded.nodeMeta = ["a": "b"]
        loaded.gossipLAN.gossipNodes = 7
        let plan = ConfigReload.plan(running: running, loaded: loaded)
        #expect(plan.changed == [.nodeMeta] && plan.notApplied == ["gossip_lan"])
        #expect(plan.next.gossipLAN == running.gossipLAN)
    }
}

/// The logger's level follows `setLevel` (what a reloaded `log_level` calls).
@Suite struct AgentLoggerLevelTests {
    @Test func reloadedLevelChangesWhatIsWritten() {
        let lines = LockedLines()
        let logger = AgentLogger(level: .info, json: false) { lines.append($0) }
        logger.debug("agent", "hidden")
        logger.setLevel(.debug)
        logger.debug("agent", "shown")
        #expect(logger.wants(.debug))
        logger.setLevel(.warn)
        logger.info("agent", "hidden again")
        logger.warn("agent", "warned")
        let written = lines.all
        #expect(written.count == 2)
        #expect(written[0].contains("[DEBUG] agent: shown") && written[1].contains("[WARN]  agent: warned"))
    }
}

private final class LockedLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}
