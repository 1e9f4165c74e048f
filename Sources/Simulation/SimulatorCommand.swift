import ConsulCore
import GossipRunner

/// The `consul-sim` command line. Each subcommand (`raft`, and the real-process helpers the storage
/// and cluster tests start) parses its own arguments and returns an exit code.
package enum SimulatorCommand {
    package typealias Subcommand = @Sendable (_ arguments: [String], _ out: (String) -> Void, _ err: (String) -> Void) -> Int32

    package struct Entry: Sendable {
        package var name: String
        package var summary: String
        package var run: Subcommand
    }

    package static let subcommands: [Entry] = [
        Entry(
            name: "raft", summary: "raft --seed S [--count N | --trace]: simulate Raft clusters for seeds S..S+N-1",
            run: { RaftSimulationCommand.run($0, out: $1, err: $2) }),
        Entry(
            name: "wal-writer", summary: "wal-writer --dir D [--records N] [--seed S]: append and fsync, print each durable index",
            run: { WALWriterCommand.run($0, out: $1, err: $2) }),
        Entry(
            name: "raft-node", summary: RaftNodeCommand.usage + ": one Raft server over TCP with a line-protocol KV client port",
            run: { RaftNodeCommand.run($0, out: $1, err: $2) }),
        Entry(
            name: "raft-bench", summary: RaftBenchCommand.usage + ": load generator of bench/raft.sh (raft-node or etcd)",
            run: { RaftBenchCommand.run($0, out: $1, err: $2) }),
        Entry(
            name: "fsync-rate", summary: RaftBenchCommand.fsyncUsage + ": 256-byte writes each followed by fdatasync, per second (appended, then over a preallocated file)",
            run: { RaftBenchCommand.fsyncRate($0, out: $1, err: $2) }),
        Entry(
            name: "gossip", summary: "gossip --seed S [--count N | --trace] [--members M]: simulate gossip pools for seeds S..S+N-1",
            run: { GossipSimulationCommand.run($0, out: $1, err: $2) }),
        Entry(
            name: "gossip-node", summary: "gossip-node --name N --bind IP:PORT [--join IP:PORT]... [--encrypt KEY]: one real gossip node (interop, bench)",
            run: { GossipNodeCommand.run($0, out: $1, err: $2) }),
    ]

    package static var usage: String {
        "usage: consul-sim <subcommand> [options]\n"
            + subcommands.map { "  consul-sim \($0.summary)" }.joined(separator: "\n")
    }

    /// Exit codes: 0 all seeds passed, 1 some seed failed, 2 bad usage.
    package static func main(_ arguments: [String], out: (String) -> Void, err: (String) -> Void) -> Int32 {
        guard let name = arguments.first, let subcommand = subcommands.first(where: { $0.name == name }) else {
            err(usage)
            return 2
        }
        return subcommand.run(Array(arguments.dropFirst()), out, err)
    }
}

/// `consul-sim raft --seed S --count N` and `consul-sim raft --seed S --trace`.
package enum RaftSimulationCommand {
    package typealias Arguments = SeedRunArguments

    package static func parse(_ arguments: [String]) -> Arguments? {
        SeedRunArguments.parse(arguments, acceptsMembers: false)
    }

    package static func run(_ arguments: [String], out: (String) -> Void, err: (String) -> Void) -> Int32 {
        guard let parsed = parse(arguments) else {
            err(SimulatorCommand.usage)
            return 2
        }
        var failures = 0
        for seed in parsed.seed..<(parsed.seed + parsed.count) {
            let report = RaftSimulation(seed: seed, trace: parsed.trace).run()
            if parsed.trace {
                for line in report.trace { out(line) }
                out("events=\(report.events) messages=\(report.messagesSent) term=\(report.highestTerm) committed=\(report.committed) ops=\(report.operationsCompleted) fingerprint=\(String(report.fingerprint, radix: 16))")
            }
            if let violation = report.violation {
                failures += 1
                out("FAIL seed \(seed): \(violation) — reproduce: consul-sim raft --seed \(seed) --trace")
            }
        }
        out("raft: \(parsed.count) seeds, \(failures) failures")
        return failures == 0 ? 0 : 1
    }
}

/// What every simulator subcommand takes: `--seed S [--count N | --trace]`, plus `--members M`
/// where the subcommand sizes its cluster from the command line.
package struct SeedRunArguments: Equatable {
    package var seed: UInt64
    package var count: UInt64
    package var trace: Bool
    package var members: Int?

    package init(seed: UInt64 = 1, count: UInt64 = 1, trace: Bool = false, members: Int? = nil) {
        self.seed = seed
        self.count = count
        self.trace = trace
        self.members = members
    }

    /// Nil for anything malformed: an unknown flag, a bad number, `--trace` over several seeds, a
    /// range that overflows, or `--members` where it is not accepted or outside 1...1000.
    package static func parse(_ arguments: [String], acceptsMembers: Bool) -> SeedRunArguments? {
        var parsed = SeedRunArguments()
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--seed", "-seed":
                guard let value = iterator.next(), let seed = UInt64(value) else { return nil }
                parsed.seed = seed
            case "--count", "-count":
                guard let value = iterator.next(), let count = UInt64(value), count > 0 else { return nil }
                parsed.count = count
            case "--members" where acceptsMembers, "-members" where acceptsMembers:
                guard let value = iterator.next(), let members = Int(value), (1...1000).contains(members) else { return nil }
                parsed.members = members
            case "--trace", "-trace":
                parsed.trace = true
            default:
                return nil
            }
        }
        if parsed.trace && parsed.count != 1 { return nil }
        if parsed.seed > UInt64.max - parsed.count { return nil }
        return parsed
    }
}
