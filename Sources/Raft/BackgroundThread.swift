#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// Runs long background work (a whole state's snapshot) on a thread of its own at a lower CPU
/// priority: on a busy machine the threads that serve requests and sync the log come first, and
/// the snapshot takes what they leave. A new thread each time, because a thread cannot get its
/// priority back without privileges: a pooled thread lowered once would stay low for whatever it
/// runs next.
enum BackgroundThread {
    /// The niceness the thread runs at (0 is normal, 19 the lowest). At 10 the scheduler gives it
    /// about a tenth of what a normal thread gets when they compete for a core.
    static let niceness: Int32 = 10

    static func run(_ body: @escaping @Sendable () -> Void) {
        #if canImport(Glibc)
        let box = Unmanaged.passRetained(Job(body)).toOpaque()
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { argument in
            let job = Unmanaged<Job>.fromOpaque(argument!).takeRetainedValue()
            // Linux keeps a nice value per thread, and `who` 0 names the calling one. Lowering one's
            // own priority needs no privilege; failing to is harmless.
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, BackgroundThread.niceness)
            job.body()
            return nil
        }, box)
        if started == 0 {
            pthread_detach(thread)
            return
        }
        // No thread to be had (resource limits): the work still has to be done.
        Unmanaged<Job>.fromOpaque(box).release()
        #endif
        DispatchQueue.global(qos: .utility).async(execute: body)
    }

    private final class Job {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}
