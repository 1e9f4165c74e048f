#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulAgent

exit(ConsulCLI.run(Array(CommandLine.arguments.dropFirst()), io: .standard))
