import Testing
@testable import ConsulCore

/// The same config written in HCL and in JSON must give the same tree, since the agent and the
/// ACL rule parser read only the tree.
@Suite struct ConfigEquivalenceTests {
    @Test(arguments: [
        (
            // Seed 004's service definition.
            """
            service {
              id = "jetty"
              name = "jetty"
              address = "14.215.177.38"
              port = 80
              tags = ["dev"]
              checks = [
                {
                  http = "http://14.215.177.38:80/"
                  interval = "5s"
                }
              ]
            }
            """,
            """
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
            """
        ),
        (
            """
            datacenter = "dc1"
            server = true
            bootstrap_expect = 3
            encrypt = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="
            ports { http = 8500, dns = 8600 }
            tls {
              defaults {
                ca_file = "ca.pem"
                verify_incoming = true
                verify_outgoing = true
              }
              internal_rpc { verify_server_hostname = true }
            }
            acl {
              enabled = true
              default_policy = "deny"
              tokens { initial_management = "b1gs33cr3t" }
            }
            performance { raft_multiplier = 1.5 }
            """,
            """
            {
              "datacenter": "dc1", "server": true, "bootstrap_expect": 3,
              "encrypt": "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=",
              "ports": {"http": 8500, "dns": 8600},
              "tls": {
                "defaults": {"ca_file": "ca.pem", "verify_incoming": true, "verify_outgoing": true},
                "internal_rpc": {"verify_server_hostname": true}
              },
              "acl": {"enabled": true, "default_policy": "deny", "tokens": {"initial_management": "b1gs33cr3t"}},
              "performance": {"raft_multiplier": 1.5}
            }
            """
        ),
        (
            """
            key_prefix "" { policy = "read" }
            key_prefix "app/" { policy = "write" }
            service "web" { policy = "write" }
            service_prefix "" { policy = "read" }
            node_prefix "" { policy = "read" }
            operator = "read"
            """,
            """
            {
              "key_prefix": {"": {"policy": "read"}, "app/": {"policy": "write"}},
              "service": {"web": {"policy": "write"}},
              "service_prefix": {"": {"policy": "read"}},
              "node_prefix": {"": {"policy": "read"}},
              "operator": "read"
            }
            """
        ),
        (
            """
            services {
              name = "redis"
              port = 6379
              check { id = "r1", tcp = "localhost:6379", interval = "10s" }
            }
            services {
              name = "web"
              port = 0x50
              meta = { version = "1.2" }
            }
            """,
            """
            {"services": [
              {"name": "redis", "port": 6379, "check": {"id": "r1", "tcp": "localhost:6379", "interval": "10s"}},
              {"name": "web", "port": 80, "meta": {"version": "1.2"}}
            ]}
            """
        ),
    ])
    func hclAndJSONGiveTheSameTree(hcl: String, json: String) throws {
        let fromHCL = try ConfigFormat.hcl.parse(hcl, file: "a.hcl")
        let fromJSON = try ConfigFormat.json.parse(json, file: "a.json")
        #expect(fromHCL == fromJSON)
        #expect(fromHCL.objectValue?.keys == fromJSON.objectValue?.keys)
    }

    @Test func formatFollowsFileExtension() {
        #expect(ConfigFormat(fileName: "conf.d/web3.json") == .json)
        #expect(ConfigFormat(fileName: "agent.hcl") == .hcl)
        #expect(ConfigFormat(fileName: "README.md") == nil)
        #expect(ConfigFormat(fileName: "web.json.bak") == nil)
    }

    @Test func numbersCompareByValueNotSpelling() {
        #expect(ConfigNumber(text: "0x10", value: .integer(16)) == ConfigNumber(integer: 16))
        #expect(ConfigValue.integer(1) != ConfigValue.float(1))
        #expect(ConfigValue.float(1000).integerValue == 1000)
        #expect(ConfigValue.float(0.5).integerValue == nil)
    }

    @Test func objectEditingKeepsOrder() {
        var object = ConfigObject(["a": .integer(1), "b": .integer(2), "c": .integer(3)])
        object["b"] = .string("two")
        object["d"] = .null
        #expect(object.keys == ["a", "b", "c", "d"])
        object["a"] = nil
        #expect(object.keys == ["b", "c", "d"])
        #expect(object["c"] == .integer(3))
        #expect(object["a"] == nil)
    }
}
