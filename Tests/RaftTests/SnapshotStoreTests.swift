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
        if let names = try? fileNames(in: directory) {
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
        #expect(try fileNames(in: directory).contains { $0.hasPrefix(".tmp-") } == false)
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

    /// A machine's pieces go into the file as they are written, crossing many chunk boundaries;
    /// the file loads back to the same data, which reads back piece by piece.
    @Test func streamedSnapshotReadsBackPieceByPiece() throws {
        defer { cleanUp() }
        let store = try SnapshotStore(directory: directory)
        let pieces: [[UInt8]] = (0..<3000).map { index in (0..<(index * 7 % 2000)).map { UInt8(truncatingIfNeeded: $0 &+ index) } }
        let metadata = Self.snapshot(42, term: 5, bytes: 0).metadata
        var chunks = 0
        let saved = try store.save(metadata) { sink in
            for piece in pieces { sink.write { $0.raw(piece) } }
            chunks += 1
        }
        #expect(chunks == 1)
        #expect(saved.data.count > 2 * SnapshotSink.chunkBytes)
        let loaded = try #require(try store.latest())
        #expect(loaded == saved)
        var source = SnapshotSource(loaded.data)
        var read: [[UInt8]] = []
        while let piece = try source.next() { read.append(Array(piece.bytes[piece.offset..<(piece.offset + piece.remaining)])) }
        #expect(read == pieces)
        #expect(source.isAtEnd)
        // Cut anywhere, the data is an error or fewer pieces, never a trap.
        for cut in stride(from: 0, to: min(loaded.data.count, 20_000), by: 997) {
            var damaged = SnapshotSource(Array(loaded.data.prefix(cut)))
            var count = 0
            while count <= pieces.count, let _ = try? damaged.next() { count += 1 }
            #expect(count <= pieces.count)
        }
    }

    /// Files of the first format (data length before the data) still load.
    @Test func versionOneFilesStillLoad() throws {
        defer { cleanUp() }
        let store = try SnapshotStore(directory: directory)
        let snapshot = Self.snapshot(9, term: 2, bytes: 500)
        var writer = ByteWriter()
        writer.raw(Array("RSNP".utf8))
        writer.u8(1)
        WALRecord.encode(snapshot.metadata, into: &writer)
        writer.u64(UInt64(snapshot.data.count))
        writer.raw(snapshot.data)
        writer.u32(CRC32C.checksum(writer.bytes))
        let path = directory + "/" + SnapshotStore.fileName(index: 9, term: 2)
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        #expect(writer.bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == writer.bytes.count)
        close(fd)
        #expect(try store.latest() == snapshot)
        #expect(try store.readData(of: snapshot.metadata, offset: 100, length: 50) == Array(snapshot.data[100..<150]))
        // A version byte it does not know: refused, not read with a guessed layout.
        let fd2 = open(path, O_WRONLY)
        var unknown: UInt8 = 9
        #expect(pwrite(fd2, &unknown, 1, 4) == 1)
        close(fd2)
        #expect(throws: WALError.corrupt(path: path, offset: 4, reason: "unknown snapshot version 9")) {
            _ = try store.readData(of: snapshot.metadata, offset: 0, length: 10)
        }
    }

    /// A snapshot kept only in its file: `store` gives its data's size, and `readData` reads any
    /// part of the data back (short at the end, empty past it), as a leader sends it in chunks.
    @Test func storedSnapshotIsReadBackInChunks() throws {
        defer { cleanUp() }
        let store = try SnapshotStore(directory: directory)
        let pieces: [[UInt8]] = (0..<500).map { index in (0..<(index * 13 % 700)).map { UInt8(truncatingIfNeeded: $0 &+ index) } }
        let metadata = Self.snapshot(77, term: 3, bytes: 0).metadata
        let size = try store.store(metadata) { sink in
            for piece in pieces { sink.write { $0.raw(piece) } }
        }
        let data = try #require(try store.latest()).data
        #expect(size == UInt64(data.count))
        var reassembled: [UInt8] = []
        var offset: UInt64 = 0
        while offset < size {
            let chunk = try store.readData(of: metadata, offset: offset, length: 4096)
            #expect(!chunk.isEmpty)
            reassembled += chunk
            offset += UInt64(chunk.count)
        }
        #expect(reassembled.count == data.count)
        let same = reassembled == data
        #expect(same, "the chunks read back differ from the data")
        #expect(try store.readData(of: metadata, offset: size, length: 10) == [])
        #expect(throws: WALError.self) { _ = try store.readData(of: Self.snapshot(78, term: 3, bytes: 0).metadata, offset: 0, length: 1) }
    }
}
