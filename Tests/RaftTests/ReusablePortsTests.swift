import Testing
@testable import TestSupport

@Suite struct ReusablePortsTests {
    /// Handed-out ports lie below the ephemeral range, differ from each other and can be bound.
    @Test func portsAreBelowTheEphemeralRangeAndDistinct() throws {
        let low = ReusablePorts.ephemeralLow
        var seen = Set<Int>()
        for _ in 0..<20 {
            let port = try #require(ReusablePorts.next(udp: true))
            #expect(port >= ReusablePorts.lowest && port < low)
            #expect(seen.insert(port).inserted)
        }
    }
}
