import Testing
@testable import ConsulCore

@Suite struct GoDurationTests {
    @Test(arguments: [
        ("0", Int64(0)), ("30s", 30_000_000_000), ("1m30s", 90_000_000_000), ("1.5h", 5_400_000_000_000),
        ("250ms", 250_000_000), ("10us", 10_000), ("10µs", 10_000), ("7ns", 7), ("-2s", -2_000_000_000),
        ("+5m", 300_000_000_000), ("1h2m3s4ms", 3_723_004_000_000), (".5s", 500_000_000), ("2.s", 2_000_000_000),
    ])
    func parsesGoSyntax(text: String, nanoseconds: Int64) throws {
        #expect(try GoDuration.parse(text).totalNanoseconds == nanoseconds)
    }

    @Test func rejectsBadInputWithGoMessages() {
        #expect(throws: GoDuration.ParseError.missingUnit("10")) { try GoDuration.parse("10") }
        #expect(throws: GoDuration.ParseError.unknownUnit("10d", unit: "d")) { try GoDuration.parse("10d") }
        #expect(throws: GoDuration.ParseError.invalid("")) { try GoDuration.parse("") }
        #expect(throws: GoDuration.ParseError.invalid("s")) { try GoDuration.parse("s") }
        #expect(throws: GoDuration.ParseError.invalid("1..2s")) { try GoDuration.parse("1..2s") }
        #expect(throws: GoDuration.ParseError.invalid("-")) { try GoDuration.parse("-") }
        #expect(throws: GoDuration.ParseError.overflow("9999999999h")) { try GoDuration.parse("9999999999h") }
        #expect(GoDuration.ParseError.unknownUnit("10d", unit: "d").description == "time: unknown unit \"d\" in duration \"10d\"")
    }

    @Test(arguments: [
        (Int64(0), "0s"), (7, "7ns"), (1_500, "1.5µs"), (250_000_000, "250ms"), (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"), (7_200_000_000_000, "2h0m0s"), (-30_000_000_000, "-30s"), (15_000_000_000, "15s"),
    ])
    func formatsLikeGo(nanoseconds: Int64, text: String) throws {
        #expect(GoDuration.format(.nanoseconds(nanoseconds)) == text)
        #expect(try GoDuration.parse(text).totalNanoseconds == nanoseconds)
    }
}
