import ConsulCore
import Testing
@testable import Gossip

@Suite struct WakeScheduleTests {
    let t0 = Timestamp.zero + .seconds(10)

    @Test func anEarlierWakeReplacesALaterOneAndALaterOneIsNotNeeded() {
        var wakes = WakeSchedule()
        #expect(wakes.request(t0 + .seconds(1)) == 1)
        #expect(wakes.request(t0 + .seconds(2)) == nil)
        #expect(wakes.request(t0 + .seconds(1)) == nil)
        #expect(wakes.request(t0) == 2)
        #expect(wakes.pending == t0)
    }

    /// The interleaving that left a node without a timer: the timer of generation 1 fires and
    /// its tick asks for the next wake (generation 2); the replaced task of generation 1 firing
    /// again (cancelled too late) must not clear the record of generation 2.
    @Test func aReplacedTimerFiringDoesNotClearItsSuccessor() {
        var wakes = WakeSchedule()
        let first = wakes.request(t0)!
        wakes.fired(first)
        #expect(wakes.pending == nil)
        let second = wakes.request(t0 + .milliseconds(200))!
        wakes.fired(first)
        #expect(wakes.pending == t0 + .milliseconds(200))
        #expect(wakes.request(t0 + .seconds(1)) == nil)
        wakes.fired(second)
        #expect(wakes.pending == nil)
        #expect(wakes.request(t0 + .seconds(1)) == 3)
    }
}
