#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
@testable import Raft

@Suite struct SnapshotStoreTests {
    let directory: String

    init() {
        var template = Array("/tmp/raft-snap-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        directory = String(cString: made!) + "/snapshots"
    }

    func cleanUp() {
        if let names = try? SnapshotStore.names(in: directory) {
            for name in names where name != "." && name != ".." { unlink(directory + "/" + name) }
        }
        rmdir(directory)
        rmdir(String(directory.dropLast("/snapshots".count)))
    }

    static func snapshot(_ index: LogIndex, term: Term, bytes: Int) -> Snapshot {
        let configuration = ClusterConfiguration(servers: [
            ServerEntry(id: ServerID("a"), suffrage: .voter), ServerEntry(id: ServerID("b"), suffrage: .nonvoter),
        ])
        return Snapshot(
            metadata: SnapshotMetadata(index: index, term: term, configuration: configuration),
            data: (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(index)) })
    }

    @Test func savesLoadsAndRetainsNewest() throws {
        defer { cleanUp() }
        let store = try SnapshotStore(directory: directory, retain: 2)
        #expect(try store.latest() == nil)
        for (index, term) in [(10, 1), (20, 2), (35, 2)] as [(LogIndex, Term)] {
            try store.save(Self.snapshot(index, term: term, bytes: 1000 + Int(index)))
        }
        #expect(try store.list() == [LogPosition(index: 20, term: 2), LogPosition(index: 35, term: 2)])
        #expect(try store.latest() == Self.snapshot(35, term: 2, bytes: 1035))
        // Reopening keeps them and clears leftovers of an interrupted save.
        let leftover = directory + "/.tmp-snapshot-x"
        close(open(leftover, O_WRONLY | O_CREAT, 0o644))
        let reopened = try SnapshotStore(directory: directory, retain: 2)
        #expect(try SnapshotStore.names(in: directory).contains { $0.hasPrefix(".tmp-") } == false)
        #expect(try reopened.latest()?.metadata.index == 35)
    }

    @Test func damagedSnapshotIsAnErrorNamingTheFile() throws {
        defer { cleanUp() }
        let store = try SnapshotStore(directory: directory)
        try store.save(Self.snapshot(7, term: 3, bytes: 300))
        let name = SnapshotStore.fileName(index: 7, term: 3)
        let fd = open(directory + "/" + name, O_WRONLY)
        var byte: UInt8 = 0x5A
        #expect(pwrite(fd, &byte, 1, 100) == 1)
        close(fd)
        do {
            _ = try store.latest()
            Issue.record("a damaged snapshot must not load")
        } catch {
            #expect("\(error)".contains(name))
        }
        // A truncated file too.
        try store.save(Self.snapshot(8, term: 3, bytes: 300))
        let other = SnapshotStore.fileName(index: 8, term: 3)
        #expect(truncate(directory + "/" + other, 50) == 0)
        #expect(throws: WALError.self) { _ = try store.latest() }
    }
}
