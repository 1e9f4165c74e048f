import Testing
@testable import ConsulAgent
@testable import ConsulCrypto

@Suite struct ConsulCLITests {
    @Test func versionPrintsConsulsLines() {
        let result = CapturedIO.run(["version"])
        #expect(result.code == 0)
        let lines = result.out.split(separator: "\n")
        #expect(lines.first == "Consul v\(ConsulVersion.version)")
        #expect(lines.contains { $0.hasPrefix("Protocol 2 spoken by default, understands 2 to 3") })
        #expect(CapturedIO.run(["-v"]).out == result.out)
        #expect(CapturedIO.run(["--version"]).out == result.out)
    }

    @Test func versionJSONCarriesThePlainVersion() {
        let result = CapturedIO.run(["version", "-format=json"])
        #expect(result.code == 0)
        #expect(result.out.contains("\"Version\": \"\(ConsulVersion.version)\""))
        #expect(CapturedIO.run(["version", "-format=xml"]).code == 1)
    }

    /// PEP 440 public versions: N(.N)*, with optional pre/post/dev parts. Clients parse this.
    @Test func versionIsPEP440Parseable() {
        let parts = ConsulVersion.version.split(separator: ".")
        #expect(parts.count == 3)
        #expect(parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) })
    }

    @Test func keygenPrintsAFresh32ByteKey() throws {
        let first = CapturedIO.run(["keygen"])
        let second = CapturedIO.run(["keygen"])
        #expect(first.code == 0 && second.code == 0)
        let a = first.out.trimmingCharacters(in: "\n")
        let b = second.out.trimmingCharacters(in: "\n")
        #expect(a.count == 44 && b.count == 44)
        #expect(a != b)
        #expect(try GossipKey(base64: a).bytes.count == 32)
        #expect(CapturedIO.run(["keygen", "extra"]).code == 1)
    }

    @Test func unknownFlagOrCommandIsAUsageErrorWithExit1() {
        let flag = CapturedIO.run(["-bogus"])
        #expect(flag.code == 1)
        #expect(flag.err.contains("flag provided but not defined: -bogus"))
        #expect(flag.err.contains("Usage: consul [--version] [--help] <command> [<args>]"))
        #expect(flag.out.isEmpty)

        let command = CapturedIO.run(["bogus"])
        #expect(command.code == 1)
        #expect(command.err.contains("Unknown command: \"bogus\""))

        let none = CapturedIO.run([])
        #expect(none.code == 1)
        #expect(none.err.contains("Available commands are:"))
    }

    @Test func helpListsEveryCommandAndExits0() {
        for spelling in ["-h", "--help", "help"] {
            let result = CapturedIO.run([spelling])
            #expect(result.code == 0)
            for name in ["agent", "keygen", "keyring", "members", "join", "kv", "operator", "tls", "version"] {
                #expect(result.err.contains("\n    \(name) "), "\(name) missing from help")
            }
        }
    }

    @Test func commandFlagErrorsExit1AndHelpExits0() {
        let bad = CapturedIO.run(["agent", "-bootstrap-expect=three"])
        #expect(bad.code == 1)
        #expect(bad.err.contains("invalid value \"three\" for flag -bootstrap-expect"))
        let help = CapturedIO.run(["agent", "-h"])
        #expect(help.code == 0)
        #expect(help.err.contains("-bootstrap-expect=<int>"))
    }

    /// Commands that do not exist yet say so and fail; they never pretend to succeed.
    @Test func missingCommandsFailHonestly() {
        for name in ["rtt", "exec", "debug"] {
            let result = CapturedIO.run([name])
            #expect(result.code == 1)
            #expect(result.err.contains("not implemented in this build yet"))
        }
        // Refused before any agent is asked, with Consul's messages.
        let watch = CapturedIO.run(["watch"])
        #expect(watch.code == 1 && watch.err.hasPrefix("Watch type must be specified\n\nUsage: consul watch [options] [child...]"))
        #expect(CapturedIO.run(["watch", "-type=key"]) == (1, "", "Must specify a single key to watch\n"))
        #expect(CapturedIO.run(["watch", "-type", "key", "-key", "a", "-passingonly=true"]).err == "Invalid parameters: [passingonly]\n")
        #expect(CapturedIO.run(["watch", "-h"]).code == 0)
        #expect(CapturedIO.run(["lock", "prefix"]) == (1, "", "Key prefix and child command must be specified\n"))
        #expect(CapturedIO.run(["lock", "-n", "0", "prefix", "true"]) == (1, "", "Lock holder limit must be positive\n"))
        // Built, but refuse to run without an action or a name, as Consul's do.
        let keyring = CapturedIO.run(["keyring"])
        #expect(keyring.code == 1 && keyring.err.hasPrefix("Usage: consul keyring [options]"))
        #expect(CapturedIO.run(["keyring", "-list", "-install", "x"]).err == "Only a single action is allowed\n")
        let event = CapturedIO.run(["event"])
        #expect(event.code == 1 && event.err.hasPrefix("Event name must be specified\n"))
        #expect(CapturedIO.run(["event", "-name", "x", "-tag", "a"]).err == "Cannot provide tag filter without service filter.\n")
        let autopilot = CapturedIO.run(["operator", "area", "list"])
        #expect(autopilot.code == 1)
        #expect(autopilot.err.contains("not implemented in this build yet"))
        let join = CapturedIO.run(["join"])
        #expect(join.code == 1)
        #expect(join.err.contains("At least one address to join must be specified."))
        let mesh = CapturedIO.run(["connect", "ca"])
        #expect(mesh.code == 1)
        #expect(mesh.err.contains("service mesh"))
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
