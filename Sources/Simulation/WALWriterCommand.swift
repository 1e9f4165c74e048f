#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore
import Raft

/// `consul-sim wal-writer --dir D [--records N] [--seed S]`: the child process of the SIGKILL
/// storage test. Opens (recovering) the WAL in D and appends command entries after the last one,
/// in groups of 1 to 8 records per fsync (seeded), now and then compacting the log as a snapshot
/// does (a compaction record, the covered segments deleted; one time in four a checkpoint record
/// instead, as an installed snapshot makes), in preallocated segments (the spare for the next one made in the
/// background), and prints `ack <index>` on stdout, unbuffered, only once that index is durable.
/// Now and then it moves to a new term in the stable store first (`term <n>` once saved), and
/// writes the entries that follow in that term. Whatever it acknowledged must survive a SIGKILL
/// at any moment.
package enum WALWriterCommand {
    /// Small segments, so a run crosses many segment boundaries.
    package static let segmentBytes = 16 * 1024
    /// Entries written after the snapshot point before the log is compacted to it.
    static let trailingEntries: UInt64 = 32
    static let compactEvery: UInt64 = 300

    /// The command stored at `index`: its length and bytes follow from the index alone, so a
    /// reader can tell a damaged or misplaced record from a good one.
    package static func command(at index: LogIndex) -> [UInt8] {
        let length = 1 + Int((index &* 7919) % 300)
        return (0..<length).map { UInt8(truncatingIfNeeded: index &+ UInt64($0)) }
    }

    package static func run(_ arguments: [String], out: (String) -> Void, err: (String) -> Void) -> Int32 {
        var directory: String?
        var records: UInt64 = 100_000
        var seed: UInt64 = 1
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch (argument, iterator.next()) {
            case ("--dir", let value?): directory = value
            case ("--records", let value?): guard let count = UInt64(value) else { return usage(err) }; records = count
            case ("--seed", let value?): guard let number = UInt64(value) else { return usage(err) }; seed = number
            default: return usage(err)
            }
        }
        guard let directory else { return usage(err) }
        do throws(WALError) {
            let (wal, recovered) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: segmentBytes, preallocate: true)
            let stable = StableStore(directory: directory)
            var hardState = try stable.load() ?? HardState()
            var state = recovered
            var random = SeededRandom(seed: seed)
            var next = (state.entries.last?.index ?? state.snapshot?.metadata.index ?? 0) + 1
            let end = next + records
            while next < end {
                // Now and then a new term and vote, as an election makes: saved before any entry
                // of that term is written, acknowledged once saved.
                if hardState.term == 0 || random.next() % 16 == 0 {
                    hardState = HardState(term: hardState.term + 1, votedFor: ServerID("writer"))
                    try stable.save(hardState)
                    writeLine("term \(hardState.term)")
                }
                let first = next
                for _ in 0..<(1 + random.next() % 8) {
                    let entry = LogEntry(index: next, term: hardState.term, payload: .command(command(at: next)))
                    try wal.append(PersistWork(entries: [entry]))
                    state.entries.append(entry)
                    next += 1
                }
                try wal.sync()
                if (next - 1) / compactEvery != (first - 1) / compactEvery, next - 1 > trailingEntries {
                    let through = next - 1 - trailingEntries
                    let term = state.entries.first { $0.index == through }?.term ?? hardState.term
                    let metadata = SnapshotMetadata(index: through, term: term, configuration: ClusterConfiguration())
                    state.compact(to: metadata)
                    if random.next() % 4 == 0 {
                        try wal.checkpoint(state)
                    } else {
                        try wal.compact(to: metadata)
                    }
                }
                writeLine("ack \(next - 1)")
            }
        } catch {
            err("wal-writer: \(error)")
            return 1
        }
        return 0
    }

    private static func usage(_ err: (String) -> Void) -> Int32 {
        err("usage: consul-sim wal-writer --dir D [--records N] [--seed S]")
        return 2
    }

    /// Straight to fd 1: a line printed is a promise, so it must not wait in a buffer.
    private static func writeLine(_ line: String) {
        ConsulCore.writeLine(line, to: 1)
    }
}
