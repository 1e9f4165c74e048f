#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Simulation

/// Writes a line to standard error (fd 2) without touching the C `stderr` global.
func printError(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if written <= 0 { return }
        offset += written
    }
}

// Thin: all parsing and running lives in Simulation so it is testable.
let status = SimulatorCommand.main(Array(CommandLine.arguments.dropFirst()), out: { print($0) }, err: printError)
exit(status)
