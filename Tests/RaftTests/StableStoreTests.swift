#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore
import Testing
@testable import Raft

@Suite struct StableStoreTests {
    let directory: String

    init() {
        var template = Array("/tmp/stable-store-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        directory = String(cString: made!)
    }

    func removeAll() {
        for name in (try? fileNames(in: directory)) ?? [] where name != "." && name != ".." {
            unlink(directory + "/" + name)
        }
        rmdir(directory)
    }

    func write(_ bytes: [UInt8], to name: String) {
        let fd = open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    @Test func savesAndLoadsTermAndVote() throws {
        defer { removeAll() }
        let store = StableStore(directory: directory)
        #expect(try store.load() == nil)
        try store.save(HardState(term: 3, votedFor: ServerID("nödé-1")))
        #expect(try store.load() == HardState(term: 3, votedFor: ServerID("nödé-1")))
        try store.save(HardState(term: 4))
        #expect(try store.load() == HardState(term: 4))
        // Only the file itself is left: the temporary one was renamed over it.
        #expect(try fileNames(in: directory).filter { $0 != "." && $0 != ".." } == [StableStore.fileName])
    }

    /// A save cut short by a crash leaves its temporary file beside the old state, which still
    /// reads as it was; the next save replaces both.
    @Test func anInterruptedSaveLeavesTheOldState() throws {
        defer { removeAll() }
        let store = StableStore(directory: directory)
        try store.save(HardState(term: 5, votedFor: ServerID("a")))
        let newer = StableStore.encode(HardState(term: 6, votedFor: ServerID("b")))
        write(Array(newer.prefix(newer.count / 2)), to: ".tmp-" + StableStore.fileName)
        #expect(try store.load() == HardState(term: 5, votedFor: ServerID("a")))
        try store.save(HardState(term: 7))
        #expect(try store.load() == HardState(term: 7))
    }

    /// Any damage is an error naming the file, never a silent start from term 0 (which could let
    /// the server vote twice in a term).
    @Test func damageIsReportedWithTheFileName() throws {
        defer { removeAll() }
        let store = StableStore(directory: directory)
        let good = StableStore.encode(HardState(term: 9, votedFor: ServerID("n1")))
        var damaged: [[UInt8]] = [[], Array(good.prefix(good.count - 1)), good + [0], Array("not a stable file at all".utf8)]
        for position in [0, 4, 5, 12, good.count - 1] {
            var flipped = good
            flipped[position] ^= 0x40
            damaged.append(flipped)
        }
        for bytes in damaged {
            write(bytes, to: StableStore.fileName)
            #expect {
                try store.load()
            } throws: { error in
                guard case WALError.corrupt(let path, _, _) = error else { return false }
                return path == store.path
            }
        }
    }
}
