import ConsulCore
import Testing

@testable import ConsulAgent

/// The pure parts of agent-local services and checks: definitions, status rules and thresholds,
/// the local state's bookkeeping (IDs, TTLs, maintenance, reaping, reload).
struct LocalDefinitionTests {
    static func value(_ json: String) throws -> ConfigValue {
        try JSONConfigParser.parseValue(bytes: Array(json.utf8), file: "test")
    }

    @Test func seedServiceDefinitionParses() throws {
        let service = try DefinitionParser(strict: true).service(Self.value("""
            {"name": "web3", "tags": ["master"], "address": "127.0.0.1", "port": 10000,
             "checks": [{"http": "http://localhost:10000/health", "interval": "10s"}]}
            """))
        #expect(service.effectiveID == "web3")
        #expect(service.port == 10000)
        #expect(service.checks.count == 1)
        #expect(service.checks[0].interval == .seconds(10))
        #expect(service.checks[0].kind == .http(CheckDefinition.HTTPProbe(url: "http://localhost:10000/health")))
        #expect(service.checks[0].serviceID == "web3")
    }

    @Test func apiCamelCaseAndConfigSnakeCaseAreTheSame() throws {
        let api = try DefinitionParser(strict: false).check(Self.value("""
            {"Name": "mem", "TTL": "30s", "DeregisterCriticalServiceAfter": "90m", "FailuresBeforeCritical": 3}
            """))
        let config = try DefinitionParser(strict: true).check(Self.value("""
            {"name": "mem", "ttl": "30s", "deregister_critical_service_after": "90m", "failures_before_critical": 3}
            """))
        #expect(api == config)
        #expect(api.id == "mem")
        #expect(api.kind == .ttl(.seconds(30)))
    }

    @Test func consulsValidationMessages() throws {
        let parser = DefinitionParser(strict: true)
        #expect(throws: DefinitionError("Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks")) {
            try parser.check(Self.value(#"{"name": "x", "tcp": "127.0.0.1:1"}"#))
        }
        #expect(throws: DefinitionError("Interval and TTL cannot both be specified")) {
            try parser.check(Self.value(#"{"name": "x", "ttl": "1s", "interval": "1s"}"#))
        }
        #expect(throws: DefinitionError("TTL must be > 0 for TTL checks")) {
            try parser.check(Self.value(#"{"name": "x"}"#))
        }
        #expect(throws: DefinitionError("Missing service name")) {
            try parser.service(Self.value(#"{"port": 80}"#))
        }
        #expect(throws: DefinitionError("invalid service key prot (line 1)")) {
            try parser.service(Self.value(#"{"name": "a", "prot": 80}"#))
        }
        // The HTTP API ignores unknown fields, as Go's decoder does.
        #expect(try DefinitionParser(strict: false).service(Self.value(#"{"Name": "a", "Prot": 80}"#)).name == "a")
    }

    @Test func tooShortIntervalIsRaisedToConsulsMinimum() throws {
        let check = try DefinitionParser(strict: true).check(Self.value(#"{"name": "x", "tcp": "a:1", "interval": "100ms"}"#))
        #expect(check.interval == .seconds(1))
    }

    @Test func badConfigDefinitionRefusesStartNamingFileAndService() throws {
        let dir = try TemporaryDirectory()
        try dir.write("conf/web.json", #"{"service": {"name": "web", "port": 80, "check": {"http": "http://x/", "interval": "bogus"}}}"#)
        let result = loadConfig { $0.dataDir = dir.path; $0.configPaths = [dir.path + "/conf"] }
        guard case .failure(let error) = result else { Issue.record("bad definition accepted"); return }
        #expect(error.description.contains("conf/web.json:1:2: service \"web\": check: interval: invalid duration \"bogus\""))
    }

    @Test func scriptChecksInConfigNeedTheFlag() throws {
        let dir = try TemporaryDirectory()
        try dir.write("conf/s.hcl", """
            service {
              name = "db"
              check {
                args = ["/bin/true"]
                interval = "5s"
              }
            }
            """)
        let refused = loadConfig { $0.dataDir = dir.path; $0.configPaths = [dir.path + "/conf"] }
        guard case .failure(let error) = refused else { Issue.record("script check accepted"); return }
        #expect(error.description == "Failed to register service \"db\": \(LocalState.scriptsDisabled)")
        let allowed = loadConfig { $0.dataDir = dir.path; $0.configPaths = [dir.path + "/conf"]; $0.enableLocalScriptChecks = true }
        guard case .success(let loaded) = allowed else { Issue.record("script check refused with the flag"); return }
        #expect(try ConfigDefinitions.typed(loaded.config).services[0].checks[0].kind == .script(["/bin/true"]))
    }
}

struct CheckStatusRulesTests {
    @Test func httpAndExitCodes() {
        #expect(CheckStatusRules.status(httpCode: 200) == .passing)
        #expect(CheckStatusRules.status(httpCode: 204) == .passing)
        #expect(CheckStatusRules.status(httpCode: 429) == .warning)
        #expect(CheckStatusRules.status(httpCode: 301) == .critical)
        #expect(CheckStatusRules.status(httpCode: 503) == .critical)
        #expect(CheckStatusRules.status(exitCode: 0) == .passing)
        #expect(CheckStatusRules.status(exitCode: 1) == .warning)
        #expect(CheckStatusRules.status(exitCode: 2) == .critical)
        #expect(CheckStatusRules.status(exitCode: 137) == .critical)
    }

    @Test func outputIsCutAtFourKiBOnACharacterBoundary() {
        let long = String(repeating: "a", count: 4095) + "é" + "tail"
        let cut = CheckStatusRules.truncated(long)
        #expect(cut.utf8.count == 4095)
        #expect(CheckStatusRules.truncated("short") == "short")
        // Probe output keeps the end instead, as Consul's ring buffer does.
        let tail = CheckStatusRules.tail(Array(("aé" + String(repeating: "b", count: 4092) + "end").utf8))
        #expect(tail.utf8.count == 4095 && tail.hasSuffix("bend") && !tail.contains("\u{FFFD}"))
        #expect(CheckStatusRules.tail(Array("short".utf8)) == "short")
    }

    @Test func thresholdsDampFlapsButTakeTheFirstResult() {
        var t = CheckThresholds(successBeforePassing: 2, failuresBeforeWarning: 1, failuresBeforeCritical: 3)
        #expect(t.observe(.passing) == .passing)  // first result counts at once
        #expect(t.observe(.critical) == .warning)  // one failure: warning
        #expect(t.observe(.critical) == .warning)
        #expect(t.observe(.critical) == .critical)  // third in a row
        #expect(t.observe(.passing) == nil)  // one success is not enough
        #expect(t.observe(.passing) == .passing)
        var plain = CheckThresholds()
        #expect(plain.observe(.critical) == .critical)
        #expect(plain.observe(.warning) == .warning)
    }
}

struct LocalStateTests {
    static let t0 = Timestamp(nanoseconds: 1_000_000_000)

    static func web(checks: [CheckDefinition]) -> ServiceDefinition {
        var service = ServiceDefinition(name: "web")
        service.port = 80
        service.checks = checks
        return service
    }

    static let http = CheckDefinition(kind: .http(.init(url: "http://127.0.0.1/")), interval: .seconds(10))
    static let ttl = CheckDefinition(kind: .ttl(.seconds(5)))

    @Test func serviceCheckIDsFollowConsul() throws {
        var state = LocalState(nodeName: "n1")
        try state.addService(Self.web(checks: [Self.http]), source: .config, now: Self.t0)
        #expect(state.checks["service:web"]?.record.name == "Service 'web' check")
        #expect(state.checks["service:web"]?.record.serviceName == "web")
        var two = ServiceDefinition(name: "db")
        two.checks = [Self.http, Self.ttl]
        try state.addService(two, source: .config, now: Self.t0)
        #expect(state.checks.keys.sorted() == ["service:db:1", "service:db:2", "service:web"])
        #expect(state.checks["service:db:2"]?.record.status == .critical)
        state.removeService("db")
        #expect(state.checks.keys.sorted() == ["service:web"])
    }

    @Test func scriptChecksFollowTheSourcePolicy() {
        var state = LocalState(nodeName: "n1", scriptPolicy: .init(enableScriptChecks: false, enableLocalScriptChecks: true))
        var script = CheckDefinition(kind: .script(["/bin/true"]), interval: .seconds(1))
        script.name = "s"
        #expect(throws: DefinitionError(LocalState.scriptsDisabled)) { try state.addCheck(script, source: .api, now: Self.t0) }
        #expect(throws: Never.self) { try state.addCheck(script, source: .config, now: Self.t0) }
    }

    @Test func ttlLapsesToCriticalAndPassResetsIt() throws {
        var state = LocalState(nodeName: "n1")
        try state.addService(Self.web(checks: [Self.ttl]), source: .api, now: Self.t0)
        try state.updateTTL("service:web", status: .passing, output: "ok", now: Self.t0)
        state.expireTTLs(now: Self.t0 + .seconds(4))
        #expect(state.checks["service:web"]?.record.status == .passing)
        state.expireTTLs(now: Self.t0 + .seconds(5))
        #expect(state.checks["service:web"]?.record.status == .critical)
        #expect(state.checks["service:web"]?.record.output == "TTL expired (last output before timeout follows): ok")
        #expect(throws: LocalState.UpdateError.unknownCheck("nope")) {
            try state.updateTTL("nope", status: .passing, output: "", now: Self.t0)
        }
        try state.addService(ServiceDefinition(name: "db", checks: [Self.http]), source: .api, now: Self.t0)
        #expect(throws: LocalState.UpdateError.notTTL("service:db")) {
            try state.updateTTL("service:db", status: .passing, output: "", now: Self.t0)
        }
    }

    @Test func criticalServicesAreReapedAfterTheirDeadline() throws {
        var state = LocalState(nodeName: "n1")
        var check = Self.ttl
        check.deregisterCriticalServiceAfter = .seconds(60)
        try state.addService(Self.web(checks: [check]), source: .api, now: Self.t0)
        #expect(state.servicesToReap(now: Self.t0 + .seconds(59)).isEmpty)
        #expect(state.servicesToReap(now: Self.t0 + .seconds(60)) == ["web"])
        try state.updateTTL("service:web", status: .passing, output: "", now: Self.t0 + .seconds(30))
        #expect(state.servicesToReap(now: Self.t0 + .seconds(90)).isEmpty)

        // Shorter values are raised to Consul's one-minute minimum.
        var quick = LocalState(nodeName: "n1")
        var hasty = Self.ttl
        hasty.deregisterCriticalServiceAfter = .seconds(5)
        try quick.addService(Self.web(checks: [hasty]), source: .api, now: Self.t0)
        #expect(quick.servicesToReap(now: Self.t0 + .seconds(30)).isEmpty)
        #expect(quick.servicesToReap(now: Self.t0 + .seconds(60)) == ["web"])
    }

    @Test func maintenanceChecks() throws {
        var state = LocalState(nodeName: "n1")
        try state.addService(Self.web(checks: []), source: .api, now: Self.t0)
        state.setNodeMaintenance(true, reason: "")
        #expect(state.checks["_node_maintenance"]?.record.status == .critical)
        #expect(state.checks["_node_maintenance"]?.record.notes.hasPrefix("Maintenance mode is enabled for this node") == true)
        try state.setServiceMaintenance("web", enable: true, reason: "deploy")
        #expect(state.checks["_service_maintenance:web"]?.record.notes == "deploy")
        #expect(state.checks["_service_maintenance:web"]?.record.serviceID == "web")
        #expect(throws: LocalState.MaintenanceError.unknownService("db")) { try state.setServiceMaintenance("db", enable: true, reason: "") }
        state.setNodeMaintenance(false, reason: "")
        try state.setServiceMaintenance("web", enable: false, reason: "")
        #expect(state.checks.isEmpty)
    }

    @Test func reloadReplacesConfigDefinitionsAndKeepsAPIOnesAndStatus() throws {
        var state = LocalState(nodeName: "n1")
        try state.replaceConfigDefinitions(services: [Self.web(checks: [Self.ttl])], checks: [], now: Self.t0)
        try state.addService(ServiceDefinition(name: "api"), source: .api, now: Self.t0)
        try state.updateTTL("service:web", status: .passing, output: "fine", now: Self.t0)
        // Same definition again: its check keeps its status.
        try state.replaceConfigDefinitions(services: [Self.web(checks: [Self.ttl])], checks: [], now: Self.t0)
        #expect(state.checks["service:web"]?.record.status == .passing)
        // The config no longer has web: it goes, the API's service stays.
        try state.replaceConfigDefinitions(services: [ServiceDefinition(name: "db")], checks: [], now: Self.t0)
        #expect(state.services.keys.sorted() == ["api", "db"])
        #expect(state.checks.isEmpty)
    }

    @Test func probeResultsGoThroughThresholds() throws {
        var state = LocalState(nodeName: "n1")
        var check = Self.http
        check.failuresBeforeCritical = 2
        check.initialStatus = .passing
        try state.addService(Self.web(checks: [check]), source: .api, now: Self.t0)
        state.recordProbe("service:web", status: .passing, output: "200", now: Self.t0)
        state.recordProbe("service:web", status: .critical, output: "refused", now: Self.t0)
        #expect(state.checks["service:web"]?.record.status == .passing)
        #expect(state.checks["service:web"]?.record.output == "refused")
        state.recordProbe("service:web", status: .critical, output: "refused", now: Self.t0)
        #expect(state.checks["service:web"]?.record.status == .critical)
    }
}

struct CheckUpdateIntervalConfigTests {
    @Test func checkUpdateIntervalIsReadFromConfig() throws {
        let dir = try TemporaryDirectory()
        try dir.write("a.hcl", "check_update_interval = \"30s\"\n")
        let result = loadConfig { $0.dataDir = dir.path; $0.configPaths = [dir.path + "/a.hcl"] }
        guard case .success(let loaded) = result else { Issue.record("\(result)"); return }
        #expect(loaded.config.checkUpdateInterval == .seconds(30))
        #expect(!loaded.config.ignoredKeys.contains("check_update_interval"))
    }
}
