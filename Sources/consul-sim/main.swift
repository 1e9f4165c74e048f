#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore
import Simulation

// Thin: all parsing and running lives in Simulation so it is testable.
let status = SimulatorCommand.main(Array(CommandLine.arguments.dropFirst()), out: { print($0) }, err: { writeLine($0, to: 2) })
exit(status)
