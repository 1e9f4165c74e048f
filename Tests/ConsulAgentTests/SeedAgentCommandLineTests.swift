import Testing
@testable import ConsulAgent

/// Every `consul agent` command line in the seed tutorials (shared/seeds), as the operators typed
/// them (line continuations joined). Each must be read without a flag error, with the values the
/// tutorial meant. Two fragments in the seeds are not command lines and are left out: an unfinished
/// "consul agent -server -bind=" inside a sentence, and two commands run together on one line in
/// seed 004 (each of which appears on its own below).
@Suite struct SeedAgentCommandLineTests {
    static let seedLines: [String] = [
        // seed 000
        "consul agent -server -bootstrap-expect 1 -data-dir /tmp/consul/ -node=web -bind=192.168.240.129 -config-dir /etc/consul.d/",
        "consul agent -data-dir /tmp/consul/ -node=web1 -bind=192.168.240.130 -config-dir /etc/consul.d/",
        "consul agent -data-dir /tmp/consul/ -node=web2 -bind=192.168.240.131 -config-dir /etc/consul.d/",
        "consul agent -server -data-dir /tmp/consul -node=web",
        "consul agent -server -bootstrap -data-dir /tmp/consul -node=web",
        "consul agent -server -data-dir /tmp/consul -node=web1",
        "consul agent -server -data-dir /tmp/consul -node=web2",
        // seed 001
        "consul agent -server -bootstrap-expect 1 -data-dir /etc/consul/data -node=s1 -bind=10.200.204.104 -ui -rejoin -config-dir=/etc/consul/conf -client 0.0.0.0",
        "consul agent -server -bootstrap-expect 1 -data-dir /etc/consul/data -node=s2 -bind=10.200.204.48 -ui -rejoin -config-dir=/etc/consul/conf -client 0.0.0.0 -retry-join=10.200.204.104",
        "consul agent -node=c1 -bind=10.200.204.133 -data-dir /etc/consul/data -ui -rejoin -config-dir=/etc/consul/conf -client 0.0.0.0 -retry-join=10.200.204.48",
        "consul agent -retry-join=172.17.0.2",
        "consul agent -server -retry-join=172.17.0.2 -bootstrap-expect=3",
        // seed 002
        "consul agent -server -bootstrap-expect 2 -data-dir /tmp/consul -node=n1 -bind=10.10.105.71 -dc=dc1",
        "consul agent -server -bootstrap-expect 2 -data-dir /tmp/consul -node=n2 -bind=10.10.126.101 -ui-dir ./dist  -dc=dc1",
        "consul agent  -data-dir /tmp/consul -node=n3 -bind=10.10.126.187  -dc=dc1",
        "consul agent -server -bootstrap-expect 2 -data-dir /tmp/consul -node=n2 -bind=10.10.126.101 -ui-dir ./dist  -dc=dc1 -rejoin",
        "consul agent -data-dir /tmp/consul -node=n3 -bind=10.10.126.187 -dc=dc1 -config-dir=./conf",
        // seed 003
        "consul agent -server -bootstrap-expect 1 -data-dir /tmp/consul -node=agent-one -bind=172.20.20.10",
        "consul agent -data-dir /tmp/consul -node=agent-two -bind=172.20.20.11",
        "consul agent -server -bootstrap-expect 1 -data-dir /tmp/consul -node=agent-one -bind=172.20.20.10 -config-dir /etc/consul.d",
        "consul agent -data-dir /tmp/consul -node=agent-two -bind=172.20.20.11 -config-dir /etc/consul.d",
        "consul agent -atlas-join -atlas=ATLAS_USERNAME/infrastructure -atlas-token=\"YOUR_ATLAS_TOKEN\"",
        // seed 004
        "consul agent",
    ]

    /// Splits like a POSIX shell for these lines: whitespace separates words, double quotes group.
    static func words(_ line: String) -> [String] {
        var words: [String] = []
        var current = ""
        var quoted = false
        var inWord = false
        for character in line {
            if character == "\"" {
                quoted.toggle()
                inWord = true
            } else if character == " " && !quoted {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }

    static func parse(_ line: String) throws(FlagError) -> AgentFlags {
        let arguments = words(line)
        precondition(Array(arguments.prefix(2)) == ["consul", "agent"], "not an agent line: \(line)")
        var flags = AgentFlags()
        let rest = try AgentFlags.flagSet.parse(Array(arguments.dropFirst(2)), into: &flags)
        precondition(rest.isEmpty, "positional leftovers in \(line): \(rest)")
        return flags
    }

    @Test(arguments: seedLines)
    func seedLineParses(line: String) throws {
        _ = try Self.parse(line)
    }

    @Test func valuesAreWhatTheTutorialsMean() throws {
        let s1 = try Self.parse(Self.seedLines[7])
        #expect(s1.server && s1.ui && s1.rejoin)
        #expect(s1.bootstrapExpect == 1)
        #expect(s1.dataDir == "/etc/consul/data")
        #expect(s1.nodeName == "s1")
        #expect(s1.bind == "10.200.204.104")
        #expect(s1.configDirs == ["/etc/consul/conf"])
        #expect(s1.client == "0.0.0.0")

        let n2 = try Self.parse(Self.seedLines[15])
        #expect(n2.datacenter == "dc1")
        #expect(n2.uiDir == "./dist")
        #expect(n2.bootstrapExpect == 2)
        #expect(n2.rejoin)

        let retry = try Self.parse(Self.seedLines[11])
        #expect(retry.retryJoin == ["172.17.0.2"])
        #expect(retry.bootstrapExpect == 3)

        let client = try Self.parse(Self.seedLines[14])
        #expect(!client.server)
        #expect(client.nodeName == "n3")

        let bootstrap = try Self.parse(Self.seedLines[4])
        #expect(bootstrap.bootstrap && bootstrap.bootstrapExpect == nil)
    }

    @Test func atlasFlagsAreReadAndExplained() throws {
        let flags = try Self.parse(Self.seedLines[21])
        #expect(flags.retiredFlagWarnings.count == 3)
        #expect(flags.retiredFlagWarnings.allSatisfy { $0.contains("HashiCorp Atlas no longer exists") })
    }

    @Test func everyFlagInTheReferenceTableIsKnown() throws {
        // shared/reference/consul-behaviour.md §1.1
        let names = [
            "server", "bootstrap", "bootstrap-expect", "data-dir", "node", "node-id", "bind", "advertise", "advertise-wan",
            "client", "config-file", "config-dir", "dc", "datacenter", "domain", "alt-domain", "encrypt", "join", "join-wan",
            "retry-join", "retry-join-wan", "retry-interval", "retry-max", "rejoin", "ui", "dev", "log-level", "log-json",
            "log-file", "pid-file", "http-port", "https-port", "dns-port", "server-port", "serf-lan-port", "serf-wan-port",
            "grpc-port", "recursor", "enable-script-checks", "enable-local-script-checks",
        ]
        let known = Set(AgentFlags.flagSet.flags.map(\.name))
        for name in names { #expect(known.contains(name), "-\(name) is missing") }
    }
}
