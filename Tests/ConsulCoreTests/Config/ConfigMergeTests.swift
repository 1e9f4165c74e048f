import Testing
@testable import ConsulCore

@Suite struct ConfigMergeTests {
    private func hcl(_ text: String) throws -> ConfigValue { try HCLParser.parse(text, file: "x.hcl") }
    private func json(_ text: String) throws -> ConfigValue { try JSONConfigParser.parse(text, file: "x.json") }

    @Test func laterFilesOverrideScalarsAndMergeObjects() throws {
        let base = try hcl("""
            datacenter = "dc1"
            log_level = "INFO"
            ports { http = 8500, dns = 8600 }
            tls { defaults { verify_incoming = false, ca_file = "ca.pem" } }
            """)
        let override = try json(#"{"log_level": "DEBUG", "ports": {"dns": -1}, "tls": {"defaults": {"verify_incoming": true}}, "server": true}"#)
        let merged = ConfigValue.merge([base, override])
        #expect(merged.objectValue?.keys == ["datacenter", "log_level", "ports", "tls", "server"])
        #expect(merged["log_level"] == .string("DEBUG"))
        #expect(merged["datacenter"] == .string("dc1"))
        #expect(merged.lookup(["ports", "http"]) == .integer(8500))
        #expect(merged.lookup(["ports", "dns"]) == .integer(-1))
        #expect(merged.lookup(["tls", "defaults", "verify_incoming"]) == .bool(true))
        #expect(merged.lookup(["tls", "defaults", "ca_file"]) == .string("ca.pem"))
        #expect(merged["server"] == .bool(true))
    }

    @Test func listsAreAppendedAndNullChangesNothing() throws {
        let merged = ConfigValue.merge([
            try json(#"{"retry_join": ["a"], "node_name": "n1"}"#),
            try json(#"{"retry_join": ["b", "c"], "node_name": null}"#),
        ])
        #expect(merged["retry_join"] == .array([.string("a"), .string("b"), .string("c")]))
        #expect(merged["node_name"] == .string("n1"))
    }

    @Test func serviceAndCheckDefinitionsAreCollectedFromEveryFile() throws {
        let merged = ConfigValue.merge([
            try hcl(#"service { name = "web" }"#),
            try json(#"{"service": {"name": "db"}, "checks": [{"id": "c1"}]}"#),
            try hcl(#"services { name = "cache" }  checks { id = "c2" }  check { id = "c3" }"#),
            try hcl(#"service { name = "api" }"#),
        ])
        #expect(merged["service"] == .array([
            .object(ConfigObject(["name": .string("web")])), .object(ConfigObject(["name": .string("db")])),
            .object(ConfigObject(["name": .string("api")])),
        ]))
        #expect(merged["checks"] == .array([.object(ConfigObject(["id": .string("c1")])), .object(ConfigObject(["id": .string("c2")]))]))
        #expect(merged["services"] == .object(ConfigObject(["name": .string("cache")])))
        #expect(merged["check"] == .object(ConfigObject(["id": .string("c3")])))
    }

    @Test func goMapsAreReplacedWholeNotMerged() throws {
        let merged = ConfigValue.merge([
            try hcl(#"node_meta { rack = "r1", zone = "z1" }"#),
            try hcl(#"node_meta { rack = "r2" }"#),
            try hcl(#"node_meta {}"#),
        ])
        #expect(merged["node_meta"] == .object(ConfigObject(["rack": .string("r2")])))
        // With the plain policy the same inputs merge key by key.
        let plain = ConfigValue.merge([
            try hcl(#"node_meta { rack = "r1", zone = "z1" }"#), try hcl(#"node_meta { rack = "r2" }"#),
        ], policy: .plain)
        #expect(plain["node_meta"] == .object(ConfigObject(["rack": .string("r2"), "zone": .string("z1")])))
    }

    @Test func differentKindsLaterWins() throws {
        let merged = try hcl(#"a { b = 1 }  c = "x""#).merged(with: try json(#"{"a": "flat", "c": {"d": 1}}"#))
        #expect(merged["a"] == .string("flat"))
        #expect(merged["c"] == .object(ConfigObject(["d": .integer(1)])))
        #expect(ConfigValue.merge([]) == .object(ConfigObject()))
    }
}
