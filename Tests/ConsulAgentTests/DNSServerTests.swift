import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import ConsulAgent
@testable import ConsulCore

/// The DNS server end to end on 127.0.0.1 with an ephemeral port, queried by the real `dig`
/// (Debian's bind9-dnsutils, installed on first use) and by a raw UDP socket for bad packets.
@Suite(.serialized) struct DNSServerTests {
    static func startServer(
        settings: DNSResolverSettings = DNSResolverSettings(), recursors: [String] = [], recursorTimeout: Duration = .seconds(2),
        catalog: DNSTestCatalog = DNSResolverTests.catalog, hosts: [String] = ["127.0.0.1"], group: any EventLoopGroup
    ) async throws -> DNSServer {
        var configuration = DNSServerConfiguration(settings: settings)
        configuration.hosts = hosts
        configuration.port = 0
        configuration.recursors = recursors
        configuration.recursorTimeout = recursorTimeout
        // Port 0 picks a free UDP port; the TCP listener then needs the same number, which another
        // test's TCP socket may hold at that moment. A few attempts get a port free on both.
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await DNSServer.start(configuration: configuration, group: group, catalog: { catalog }, serial: { 7 }, seed: 42)
            } catch DNSServerError.bindFailed where attempt < 5 {
                continue
            }
        }
    }

    /// Runs `body` with a fresh event loop group, shut down afterwards whatever happens (which
    /// also closes every server channel on it).
    static func withGroup(threads: Int, _ body: (any EventLoopGroup) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            try await body(group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    /// What dig printed, split into the status and the records of each section.
    struct DigResult {
        var status = ""
        var flags = ""
        var sections: [String: [[String]]] = [:]
        var raw = ""

        func records(_ section: String) -> [[String]] { sections[section] ?? [] }
    }

    static func dig(_ arguments: [String], port: Int, server: String = "127.0.0.1") throws -> DigResult {
        try ensureDig()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // One try, two seconds: a lost answer fails the test instead of hanging it.
        process.arguments = ["dig", "@" + server, "-p", String(port), "+tries=1", "+time=2", "+nocookie"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var result = DigResult(raw: output)
        var section = ""
        for line in output.split(separator: "\n").map(String.init) {
            if line.contains("->>HEADER<<-"), let range = line.range(of: "status: ") {
                result.status = String(line[range.upperBound...].prefix { $0 != "," })
            } else if line.hasPrefix(";; flags:") {
                result.flags = String(line.dropFirst(";; flags:".count).prefix { $0 != ";" })
            } else if line.hasPrefix(";; "), line.hasSuffix(" SECTION:") {
                section = String(line.dropFirst(3).dropLast(" SECTION:".count))
            } else if !line.hasPrefix(";"), !line.isEmpty, !section.isEmpty {
                result.sections[section, default: []].append(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init))
            } else if line.isEmpty {
                section = ""
            }
        }
        return result
    }

    private static let digReady = Mutex(false)

    /// Installs dig from Debian's bind9-dnsutils when it is missing (once per test run).
    static func ensureDig() throws {
        try digReady.withLock { ready in
            if ready { return }
            if !FileManager.default.isExecutableFile(atPath: "/usr/bin/dig") {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = ["sh", "-c", "apt-get install -y -qq bind9-dnsutils >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq bind9-dnsutils) >/dev/null 2>&1"]
                process.environment = ["DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
                try process.run()
                process.waitUntilExit()
            }
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/dig") else { throw DNSServerError.badRecursor("dig missing") }
            ready = true
        }
    }

    @Test func digGetsAandSRVWithAddressesInAdditional() async throws {
        try await Self.withGroup(threads: 1) { group in
            // With a generation, so the answers come from the compiled memo after the first query.
            var catalog = DNSResolverTests.catalog
            catalog.generation = 1
            let server = try await Self.startServer(catalog: catalog, group: group)

            let a = try Self.dig(["web.service.consul", "A"], port: server.localPort)
            #expect(a.status == "NOERROR", "\(a.raw)")
            #expect(a.flags.contains("aa"))
            #expect(Set(a.records("ANSWER").map { $0.last ?? "" }) == ["10.0.0.1", "10.0.0.2"])

            let srv = try Self.dig(["web.service.consul", "SRV"], port: server.localPort)
            #expect(srv.status == "NOERROR", "\(srv.raw)")
            // name TTL IN SRV priority weight port target
            #expect(Set(srv.records("ANSWER").map { Array($0.suffix(4)) }) == [["1", "1", "10000", "n1.node.dc1.consul."], ["1", "3", "10000", "n2.node.dc1.consul."]])
            let additional = srv.records("ADDITIONAL").filter { $0.count > 3 && $0[3] == "A" }
            #expect(Set(additional.map { [$0[0], $0[4]] }) == [["n1.node.dc1.consul.", "10.0.0.1"], ["n2.node.dc1.consul.", "10.0.0.2"]])

            let again = try Self.dig(["web.service.consul", "SRV"], port: server.localPort)
            #expect(Set(again.records("ANSWER").map { $0.last ?? "" }) == ["n1.node.dc1.consul.", "n2.node.dc1.consul."])
            let node = try Self.dig(["n1.node.consul"], port: server.localPort)
            #expect(node.records("ANSWER").map { $0.last } == ["10.0.0.1"])
            #expect(server.counters.snapshot.queries >= 4)
        }
    }

    /// Consul answers DNS on every `client_addr` address, UDP and TCP, on one port.
    @Test func answersOnEveryClientAddress() async throws {
        try await Self.withGroup(threads: 2) { group in
            let hosts = ["127.0.0.147", "127.0.0.148"]
            let server = try await Self.startServer(hosts: hosts, group: group)
            for host in hosts {
                for transport in ["+notcp", "+tcp"] {
                    let answer = try Self.dig(["n1.node.consul", "A", transport], port: server.localPort, server: host)
                    #expect(answer.status == "NOERROR" && answer.records("ANSWER").map { $0.last } == ["10.0.0.1"], "\(host) \(transport): \(answer.raw)")
                }
            }
            let config = try #require(try loadConfig(commandLine: ["-dev", "-client", "127.0.0.147 127.0.0.148"]).get().config)
            #expect(DNSServerConfiguration(config: config).hosts == hosts)
        }
    }

    @Test func digSeesNXDOMAINWithTheSOA() async throws {
        try await Self.withGroup(threads: 1) { group in
            let server = try await Self.startServer(group: group)

            let missing = try Self.dig(["nope.node.consul"], port: server.localPort)
            #expect(missing.status == "NXDOMAIN", "\(missing.raw)")
            #expect(missing.records("AUTHORITY").map { Array($0.suffix(8)) } == [["SOA", "ns.consul.", "hostmaster.consul.", "7", "3600", "600", "86400", "0"]])
            let refused = try Self.dig(["example.com"], port: server.localPort)
            #expect(refused.status == "REFUSED")
            #expect(server.counters.snapshot.answers[.nameError] == 1 && server.counters.snapshot.answers[.refused] == 1)
        }
    }

    @Test func digOverTCPWithSeveralQueriesOnOneConnection() async throws {
        try await Self.withGroup(threads: 2) { group in
            let server = try await Self.startServer(catalog: DNSResolverTests.bigCatalog(300), group: group)

            // 300 SRV answers do not fit UDP; over TCP they all come back.
            let big = try Self.dig(["+tcp", "big.service.consul", "SRV"], port: server.localPort)
            #expect(big.status == "NOERROR", "\(big.raw.prefix(400))")
            #expect(big.records("ANSWER").count == 300)
            #expect(big.records("ADDITIONAL").filter { $0.count > 3 && $0[3] == "A" }.count == 300)

            let several = try Self.dig(["+tcp", "+keepopen", "big.service.consul", "nope.node.consul", "node-with-a-long-name-7.node.consul"], port: server.localPort)
            #expect(several.raw.components(separatedBy: "->>HEADER<<-").count == 4, "\(several.raw.prefix(600))")
            #expect(several.raw.contains("status: NXDOMAIN"))
            #expect(several.raw.contains("10.2.0.7"))
        }
    }

    @Test func foreignNamesGoToRecursorsInOrder() async throws {
        try await Self.withGroup(threads: 2) { group in
            // A recursor that refuses (a Consul agent for another domain), one that never answers,
            // then one that knows `example`.
            let refuser = try await Self.startServer(group: group)
            let upstream = try await Self.startServer(settings: DNSResolverSettings(domain: "example"), group: group)
            let blackHole = try await DatagramBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
            let recursors = ["127.0.0.1:\(refuser.localPort)", "127.0.0.1:\(blackHole.localAddress!.port!)", "127.0.0.1:\(upstream.localPort)"]
            let server = try await Self.startServer(recursors: recursors, recursorTimeout: .milliseconds(300), group: group)
            let failing = try await Self.startServer(recursors: ["127.0.0.1:\(refuser.localPort)"], group: group)

            let relayed = try Self.dig(["n1.node.example"], port: server.localPort)
            #expect(relayed.status == "NOERROR", "\(relayed.raw)")
            #expect(relayed.records("ANSWER").map { $0.last } == ["10.0.0.1"])
            let overTCP = try Self.dig(["+tcp", "n2.node.example"], port: server.localPort)
            #expect(overTCP.records("ANSWER").map { $0.last } == ["10.0.0.2"])
            let nxdomain = try Self.dig(["nope.node.example"], port: server.localPort)
            #expect(nxdomain.status == "NXDOMAIN")
            #expect(server.counters.snapshot.forwarded == 3)

            let failed = try Self.dig(["n1.node.example"], port: failing.localPort)
            #expect(failed.status == "SERVFAIL", "\(failed.raw)")
            // Our own names are still answered by us, now with recursion available.
            let own = try Self.dig(["n1.node.consul"], port: server.localPort)
            #expect(own.records("ANSWER").map { $0.last } == ["10.0.0.1"])
            #expect(own.flags.contains("ra"))
        }
    }

    @Test func malformedDatagramsAreDroppedOrAnsweredFORMERR() async throws {
        try await Self.withGroup(threads: 1) { group in
            let server = try await Self.startServer(group: group)

            #expect(try await Self.exchange([1, 2, 3], port: server.localPort, group: group) == nil)
            let header: [UInt8] = [0xAB, 0xCD, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]  // no question
            let formerr = try #require(try await Self.exchange(header, port: server.localPort, group: group))
            #expect(formerr.count == 12 && formerr[0] == 0xAB && formerr[1] == 0xCD && formerr[3] & 0x0F == 1)
            // The server still answers after all that.
            let good = try #require(try await Self.exchange(DNSTestQuery.packet("n1.node.consul", .a), port: server.localPort, group: group))
            #expect(try DNSTestResponse(good).answers.map(\.data) == [.a("10.0.0.1")])
            let counts = server.counters.snapshot
            #expect(counts.malformedDropped == 1 && counts.answers[.formatError] == 1 && counts.queries == 3)
        }
    }

    /// Sends one datagram and waits (at most 500 ms) for one answer.
    static func exchange(_ bytes: [UInt8], port: Int, group: any EventLoopGroup) async throws -> [UInt8]? {
        let received = group.next().makePromise(of: [UInt8]?.self)
        let channel = try await DatagramBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(OneAnswer(promise: received)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let timeout = channel.eventLoop.scheduleTask(in: .milliseconds(500)) { received.succeed(nil) }
        let remote = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: channel.allocator.buffer(bytes: bytes)))
        let answer = try await received.futureResult.get()
        timeout.cancel()
        try await channel.close()
        return answer
    }

    final class OneAnswer: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let promise: EventLoopPromise<[UInt8]?>
        init(promise: EventLoopPromise<[UInt8]?>) { self.promise = promise }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            promise.succeed(Array(unwrapInboundIn(data).data.readableBytesView))
        }
    }

    @Test func recursorAddressesAreParsed() throws {
        #expect(try DNSRecursorClient.address("8.8.8.8") == SocketAddress(ipAddress: "8.8.8.8", port: 53))
        #expect(try DNSRecursorClient.address("127.0.0.1:5353") == SocketAddress(ipAddress: "127.0.0.1", port: 5353))
        #expect(try DNSRecursorClient.address("::1") == SocketAddress(ipAddress: "::1", port: 53))
        #expect(try DNSRecursorClient.address("[::1]:5300") == SocketAddress(ipAddress: "::1", port: 5300))
        #expect(throws: DNSServerError.badRecursor("dns.google")) { try DNSRecursorClient.address("dns.google") }
        #expect(throws: DNSServerError.badRecursor("1.2.3.4:0")) { try DNSRecursorClient.address("1.2.3.4:0") }
    }
}

@Suite struct DNSAddressTests {
    @Test func parsesAndPrintsAddresses() {
        #expect(DNSAddress.parse("10.0.0.1")?.bytes == [10, 0, 0, 1])
        #expect(DNSAddress.parse("::ffff:10.0.0.1")?.bytes == [10, 0, 0, 1])
        #expect(DNSAddress.parse("2001:db8::1")?.bytes == [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1])
        #expect(DNSAddress.parse("1:2:3:4:5:6:7:8") == .v6(0x0001_0002_0003_0004, 0x0005_0006_0007_0008))
        #expect(DNSAddress.parse("1:2::7:8") == .v6(0x0001_0002_0000_0000, 0x0000_0000_0007_0008))
        #expect(DNSAddress.parse("::1.2.3.4")?.bytes == [UInt8](repeating: 0, count: 12) + [1, 2, 3, 4])
        #expect(DNSAddress.parse("::") == .v6(0, 0))
        #expect(DNSAddress.parse("fe80::1%eth0") == .v6(0xfe80_0000_0000_0000, 1))
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1::2::3", ":::", "1:2:3:4:5:6:7:8:9", "host.example", "1:2:3:4:5:6:7:"] {
            #expect(DNSAddress.parse(bad) == nil, "\(bad)")
        }
        #expect(DNSAddress.text(.v4(0x0A00_0001)) == "10.0.0.1")
        #expect(DNSAddress.text(DNSAddress.parse("2001:0db8:0:0:1:0:0:1")!) == "2001:db8::1:0:0:1")
        #expect(DNSAddress.text(DNSAddress.parse("::1")!) == "::1")
        #expect(DNSAddress.text(DNSAddress.parse("1::")!) == "1::")
        #expect(DNSAddress.hex(.v4(0x7F00_0001)) == "7f000001")
        #expect(DNSAddress.fromReverseName("1.0.0.127.in-addr.arpa") == .v4(0x7F00_0001))
        #expect(DNSAddress.fromReverseName("0.0.127.in-addr.arpa") == nil)
    }
}
