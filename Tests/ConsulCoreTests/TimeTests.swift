import Testing
@testable import ConsulCore

@Suite struct TimeTests {
    @Test func addingAndSubtractingDurations() {
        let start = Timestamp(nanoseconds: 5_000_000_000)
        #expect((start + .milliseconds(250)).nanoseconds == 5_250_000_000)
        #expect((start - .seconds(1)).nanoseconds == 4_000_000_000)
        #expect((start + .zero) == start)
    }

    @Test func arithmeticSaturatesInsteadOfTrapping() {
        #expect((Timestamp.zero - .seconds(1)) == .zero)
        #expect((Timestamp(nanoseconds: .max) + .seconds(1)).nanoseconds == .max)
    }

    @Test func durationBetweenTimestamps() {
        let earlier = Timestamp(nanoseconds: 1_000)
        let later = Timestamp(nanoseconds: 3_500)
        #expect(later.duration(since: earlier) == .nanoseconds(2_500))
        #expect(earlier.duration(since: later) == .nanoseconds(-2_500))
        #expect(earlier < later)
    }

    @Test func durationNanosecondsClamp() {
        #expect(Duration.milliseconds(3).totalNanoseconds == 3_000_000)
        #expect(Duration.seconds(-2).totalNanoseconds == -2_000_000_000)
        #expect(Duration.seconds(Int64.max).totalNanoseconds == .max)
    }

    @Test func descriptionIsReadable() {
        #expect(Timestamp(nanoseconds: 12_034_000_000).description == "t+12.034s")
    }

    @Test func manualClockOnlyMovesForward() {
        let clock = ManualClock()
        #expect(clock.now() == .zero)
        clock.advance(by: .milliseconds(10))
        clock.advance(by: .milliseconds(-5))
        #expect(clock.now() == Timestamp(nanoseconds: 10_000_000))
    }

    @Test func systemClockIsMonotonic() {
        let clock = SystemMonotonicClock()
        var previous = clock.now()
        for _ in 0..<1000 {
            let current = clock.now()
            #expect(current >= previous)
            previous = current
        }
    }
}
