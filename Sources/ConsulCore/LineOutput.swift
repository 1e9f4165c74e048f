#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `line` and a newline straight to a file descriptor: unbuffered, so a process reading
/// the other end (a test, a bench script) sees it at once, and without the C `stdout`/`stderr`
/// globals, which Swift 6 does not let concurrent code touch. A closed descriptor ends the write
/// quietly: these are progress and error lines of tools.
public func writeLine(_ line: String, to fd: Int32) {
    let bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 && errno == EINTR { continue }
        if written <= 0 { return }
        offset += written
    }
}
