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
