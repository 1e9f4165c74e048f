#if canImport(Glibc)
import Glibc
import Synchronization
import Testing
@testable import Raft

@Suite struct BackgroundThreadTests {
    /// The work runs at the lower priority, and only the work: the caller's priority is untouched.
    @Test func workRunsNicedOnAThreadOfItsOwn() async {
        let before = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let seen = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            BackgroundThread.run { continuation.resume(returning: getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)) }
        }
        #expect(seen >= BackgroundThread.niceness)
        #expect(seen > before || before >= BackgroundThread.niceness)
        #expect(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) == before)
    }
}
#endif
