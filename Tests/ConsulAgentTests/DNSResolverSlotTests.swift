import Testing
@testable import ConsulAgent
@testable import ConsulCore

/// A DNS server's resolver replaced while it runs (a reloaded `dns_config`): the next query
/// answers with the new settings even when the old answer was memoized for the same catalog.
@Suite struct DNSResolverSlotTests {
    @Test func replacedSettingsReachTheNextAnswerPastTheMemo() throws {
        var catalog = DNSResolverTests.catalog
        catalog.generation = 1
        var settings = DNSResolverSettings()
        settings.setServiceTTLs(["*": .seconds(5)])
        let slot = DNSResolverSlot(DNSResolver(settings: settings))
        var memo = DNSAnswerMemo()
        var random = SeededRandom(seed: 1)
        func ttls() throws -> Set<UInt32> {
            let resolution = slot.resolver(for: &memo).resolve(
                DNSTestQuery.packet("web.service.consul", .a), transport: .udp, catalog: catalog, serial: 1, random: &random, memo: &memo)
            guard case .respond(let bytes, _) = resolution else { return [] }
            return Set(try DNSTestResponse(bytes).answers.map(\.ttl))
        }
        #expect(try ttls() == [5])
        #expect(try ttls() == [5])  // memoized for generation 1
        settings.setServiceTTLs(["web": .seconds(42)])
        slot.replace(DNSResolver(settings: settings))
        #expect(try ttls() == [42])
        #expect(slot.resolver.settings.serviceTTL("web") == 42)
    }
}

/// A running DNS server reconfigured as a reload does it: recursors added and removed, settings
/// replaced, a bad recursor address refused before anything changes.
@Suite(.serialized) struct DNSServerReconfigurationTests {
    @Test func recursorsAndSettingsChangeWhileTheServerRuns() async throws {
        try await DNSServerTests.withGroup(threads: 2) { group in
            let upstream = try await DNSServerTests.startServer(settings: DNSResolverSettings(domain: "example"), group: group)
            let server = try await DNSServerTests.startServer(group: group)
            // No recursors yet: a foreign name is refused.
            #expect(try DNSServerTests.dig(["n1.node.example"], port: server.localPort).status == "REFUSED")

            var settings = DNSResolverSettings()
            settings.nodeTTL = 30
            let withRecursor = try server.prepare(settings: settings, recursors: ["127.0.0.1:\(upstream.localPort)"])
            // Prepared is not applied.
            #expect(try DNSServerTests.dig(["n1.node.example"], port: server.localPort).status == "REFUSED")
            server.apply(withRecursor)
            let relayed = try DNSServerTests.dig(["n1.node.example"], port: server.localPort)
            #expect(relayed.status == "NOERROR" && relayed.records("ANSWER").map { $0.last } == ["10.0.0.1"], "\(relayed.raw)")
            let own = try DNSServerTests.dig(["n1.node.consul"], port: server.localPort)
            #expect(own.flags.contains("ra") && own.records("ANSWER").first?[1] == "30", "\(own.raw)")

            // A bad address: refused, and the running configuration stays.
            #expect(throws: DNSServerError.self) { try server.prepare(settings: settings, recursors: ["not an address"]) }
            #expect(try DNSServerTests.dig(["n1.node.example"], port: server.localPort).status == "NOERROR")

            // Recursors removed again.
            server.apply(try server.prepare(settings: DNSResolverSettings(), recursors: []))
            #expect(try DNSServerTests.dig(["n1.node.example"], port: server.localPort).status == "REFUSED")
            #expect(!server.settings.recursorsConfigured && server.settings.nodeTTL == 0)
            await server.stop()
            await upstream.stop()
        }
    }
}
