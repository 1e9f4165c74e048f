#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a command writes: standard output for results, standard error for errors and help, as
/// Consul does. Tests pass closures that capture both.
package struct CommandIO: Sendable {
    package var out: @Sendable (String) -> Void
    package var err: @Sendable (String) -> Void

    package init(out: @escaping @Sendable (String) -> Void, err: @escaping @Sendable (String) -> Void) {
        self.out = out
        self.err = err
    }

    /// The process's own file descriptors 1 and 2, written with `write(2)` (no stdio buffering to
    /// lose on exit).
    package static let standard = CommandIO(out: { writeAll($0, to: 1) }, err: { writeAll($0, to: 2) })

    func line(_ text: String) { out(text + "\n") }
    func errorLine(_ text: String) { err(text + "\n") }
}

private func writeAll(_ text: String, to descriptor: Int32) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if written > 0 {
                offset += written
            } else if written < 0 && errno == EINTR {
                continue
            } else {
                return  // a closed pipe: nothing sensible left to do with the output
            }
        }
    }
}
