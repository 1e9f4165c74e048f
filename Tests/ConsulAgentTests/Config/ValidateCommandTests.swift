import Testing
@testable import ConsulAgent

@Suite struct ValidateCommandTests {
    @Test func validDirectoryWithoutDataDirIsValid() throws {
        let dir = try TemporaryDirectory()
        try dir.write("conf/web3.json", #"{"service": {"name": "web3", "port": 10000, "checks": [{"http": "http://localhost:10000/health", "interval": "10s"}]}}"#)
        try dir.write("conf/agent.hcl", "server = true\nbootstrap_expect = 3\n")
        let run = CapturedIO.run(["validate", dir.path + "/conf"])
        #expect(run.code == 0)
        #expect(run.out == "Configuration is valid!\n")
        #expect(run.err == "bootstrap_expect > 0: expecting 3 servers\n")
    }

    @Test func quietPrintsNothingOnSuccess() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("a.json", #"{"datacenter": "dc2"}"#)
        let run = CapturedIO.run(["validate", "-quiet", file])
        #expect(run.code == 0 && run.out.isEmpty && run.err.isEmpty)
    }

    @Test func problemsAreListedAndExitIsOne() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("bad.hcl", "ports {\n  http = \"x\"\n}\nbogus = 1\n")
        let run = CapturedIO.run(["validate", file])
        #expect(run.code == 1)
        #expect(run.out.isEmpty)
        #expect(run.err == """
            Config validation failed: \(file):2:3: ports.http: expected an integer, found a string
            \(file):4:1: invalid config key bogus

            """)
    }

    @Test func semanticErrorsFailToo() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("a.json", #"{"bootstrap": true, "bootstrap_expect": 3, "server": true}"#)
        let run = CapturedIO.run(["validate", "-quiet", file])
        #expect(run.code == 1)
        #expect(run.err == "Config validation failed: 'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive\n")
    }

    @Test func configFormatFlag() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("agent.conf", "datacenter = \"dc3\"\n")
        #expect(CapturedIO.run(["validate", file]).code == 1)
        #expect(CapturedIO.run(["validate", "-config-format=hcl", file]).code == 0)
    }

    @Test func missingPathAndNoPath() throws {
        let dir = try TemporaryDirectory()
        let missing = CapturedIO.run(["validate", dir.path + "/absent"])
        #expect(missing.code == 1)
        #expect(missing.err == "Config validation failed: Error reading '\(dir.path)/absent': No such file or directory\n")
        let none = CapturedIO.run(["validate"])
        #expect(none.code == 1 && none.err == "Must specify at least one config file or directory\n")
    }

    @Test func agentRefusesABadConfigWithTheNamedError() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("a.hcl", "log_level = \"loud\"\n")
        let run = CapturedIO.run(["agent", "-data-dir", dir.path, "-config-file", file, "-encrypt", "c2hvcnQ="])
        #expect(run.code == 1)
        #expect(run.err == """
            ==> encrypt has invalid key: gossip encryption key must be 16, 24 or 32 bytes once base64-decoded (AES-128/192/256), got 5 bytes
            ==> Invalid log level: loud. Valid log levels are: [trace debug info warn err error]

            """)
    }

    @Test func agentWithAGoodConfigButACorruptDataDirNamesTheFile() throws {
        let dir = try TemporaryDirectory()
        _ = try dir.write("node-id", "not-a-uuid\n")
        let run = CapturedIO.run(["agent", "-server", "-bootstrap-expect", "2", "-bind", "127.0.0.62", "-data-dir", dir.path])
        #expect(run.code == 1)
        #expect(run.err.hasPrefix("==> WARNING: bootstrap_expect > 0: expecting 2 servers\n"))
        #expect(run.err.hasSuffix("==> Corrupt node ID in \(dir.path)/node-id: \"not-a-uuid\" is not a UUID\n"))
    }
}
