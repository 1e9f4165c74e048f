#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension RaftNode {
    /// Outage recovery with `raft/peers.json`, with the semantics of hashicorp/raft's
    /// RecoverCluster: every entry in this server's log is applied to the state machine (committed
    /// or not: the operator accepts that, as Consul's outage guide says), a snapshot at the last
    /// entry's index and term is stored with `configuration` as its configuration, and the log is
    /// rewritten as just that snapshot point. Terms and votes stay as they were, and no new
    /// (index, term) pair is invented, so servers recovered with the same file agree on the log.
    /// The file is deleted only once all of that is durable: a crash in between recovers again.
    static func recoverCluster(
        _ configuration: ClusterConfiguration, peersPath: String, recovered: inout RecoveredState, machine: inout Machine,
        wal: SegmentedWAL, snapshots: SnapshotStore, view: RaftCore
    ) throws(RaftNodeError) {
        let log = view.log
        guard log.lastIndex > 0 else {
            throw .peersFile(PeersFile.ParseError(path: peersPath, problem: "there is no Raft state here to recover; remove the file"))
        }
        for entry in log.entries where entry.index > log.snapshotIndex {
            if case .command(let command) = entry.payload { _ = machine.apply(command, at: entry.index) }
        }
        let metadata = SnapshotMetadata(index: log.lastIndex, term: log.lastTerm, configuration: configuration)
        let snapshot: Snapshot
        do throws(WALError) {
            let machine = machine
            snapshot = try snapshots.save(metadata) { machine.snapshot(into: $0) }
            try wal.checkpoint(RecoveredState(
                hardState: recovered.hardState, snapshot: Snapshot(metadata: snapshot.metadata, data: []), entries: []))
            if unlink(peersPath) != 0 { throw WALError.io(operation: "unlink", path: peersPath, errno: errno) }
            let directory = String(peersPath.dropLast(PeersFile.fileName.count + 1))
            let fd = systemOpen(directory, O_RDONLY)
            guard fd >= 0 else { throw WALError.io(operation: "open", path: directory, errno: errno) }
            defer { close(fd) }
            if fsync(fd) != 0 { throw WALError.io(operation: "fsync", path: directory, errno: errno) }
        } catch {
            throw .storage(error.description)
        }
        recovered = RecoveredState(hardState: recovered.hardState, snapshot: snapshot, entries: [])
    }
}
