import ConsulCore
import Testing
@testable import Raft

@Suite struct WALRecordTests {
    @Test func crc32cKnownVector() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        // Incremental equals one-shot.
        let bytes = Array("hello, raft".utf8)
        #expect(CRC32C.checksum(bytes[5...], continuing: CRC32C.checksum(bytes[..<5])) == CRC32C.checksum(bytes))
    }

    /// The eight-bytes-at-a-time path equals the byte-at-a-time one (a non-contiguous sequence
    /// takes the latter) for every length and alignment around the eight-byte steps.
    @Test func crc32cSlicedPathMatchesByteAtATime() {
        var random = SeededRandom(seed: 7)
        let data = (0..<300).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        for start in 0..<9 {
            for end in stride(from: start, through: data.count, by: 7) {
                let slice = data[start..<end]
                #expect(CRC32C.checksum(slice) == CRC32C.checksum(slice.lazy.map { $0 }), "bytes \(start)..<\(end)")
            }
        }
        #expect(CRC32C.checksum(Array(repeating: 0xFF, count: 32)) == 0x62A8_AB43)
    }

    static let configuration = ClusterConfiguration(servers: [
        ServerEntry(id: ServerID("a"), suffrage: .voter, address: "127.0.0.1:8300"), ServerEntry(id: ServerID("bé"), suffrage: .nonvoter),
    ])

    static let works: [PersistWork] = [
        PersistWork(hardState: HardState(term: 1), entries: [LogEntry(index: 1, term: 1, payload: .configuration(configuration))]),
        PersistWork(hardState: HardState(term: 2, votedFor: ServerID("a"))),
        PersistWork(entries: (2...4).map { LogEntry(index: $0, term: 2, payload: .command(Array(repeating: UInt8($0), count: Int($0)))) }),
        PersistWork(entries: [LogEntry(index: 3, term: 3, payload: .noop)]),
        PersistWork(compactThrough: 2),
        PersistWork(
            snapshot: Snapshot(metadata: SnapshotMetadata(index: 9, term: 4, configuration: configuration), data: []),
            hardState: HardState(term: 4), entries: [LogEntry(index: 10, term: 4, payload: .noop)]),
    ]

    @Test func roundTrip() throws {
        var bytes: [UInt8] = []
        for work in Self.works { bytes += try WALRecord.encode(work) }
        let scan = WALRecord.scan(bytes)
        #expect(scan.tail == nil)
        #expect(scan.validBytes == bytes.count)
        // The term and vote are the stable store's: records leave them out.
        #expect(scan.records.map(\.work) == Self.records)
        #expect(scan.records.allSatisfy { !$0.isCheckpoint })
        let checkpoint = WALRecord.scan(try WALRecord.encode(Self.works[0], checkpoint: true))
        #expect(checkpoint.records == [WALRecord.Record(work: Self.withoutHardState(Self.works[0]), isCheckpoint: true)])
    }

    @Test func compactionRecordRoundTripsAndStandsAlone() throws {
        let metadata = SnapshotMetadata(index: 41, term: 3, configuration: Self.configuration)
        let record = WALRecord.encodeCompaction(metadata)
        let scan = WALRecord.scan(record + (try WALRecord.encode(Self.works[2])))
        #expect(scan.tail == nil)
        #expect(scan.records.first == WALRecord.Record(work: PersistWork(), compaction: metadata))
        #expect(scan.records.last?.compaction == nil)
        // Flag 16 with any other flag, or with entries, is damage, not a record to guess at.
        for (offset, byte, problem) in [(8, UInt8(16 | 4), "other flags"), (record.count - 4, UInt8(1), "with entries")] {
            var bad = record
            bad[offset] = byte
            let payload = Array(bad[8...])
            bad.replaceSubrange(4..<8, with: withUnsafeBytes(of: CRC32C.checksum(payload).littleEndian, Array.init))
            let damaged = WALRecord.scan(bad)
            #expect(damaged.records.isEmpty)
            #expect("\(String(describing: damaged.tail))".contains(problem))
        }
    }

    /// A record as logs before the stable store wrote it: flag 2, a term and a vote, no entries.
    static func legacyHardStateRecord(term: Term, votedFor: String) -> [UInt8] {
        var payload = ByteWriter()
        payload.u8(2)
        payload.u64(term)
        payload.u8(1)
        payload.string(votedFor)
        payload.u32(0)
        var frame = ByteWriter()
        frame.u32(UInt32(payload.bytes.count))
        frame.u32(CRC32C.checksum(payload.bytes))
        return frame.bytes + payload.bytes
    }

    /// What `works` read back as.
    static let records = works.map(withoutHardState)

    static func withoutHardState(_ work: PersistWork) -> PersistWork {
        var stripped = work
        stripped.hardState = nil
        return stripped
    }

    /// Logs written before the stable store carried the term and vote in their records (flag 2):
    /// they still read, so such a data directory keeps its vote.
    @Test func legacyHardStateInARecordStillReads() throws {
        let scan = WALRecord.scan(Self.legacyHardStateRecord(term: 7, votedFor: "n2"))
        #expect(scan.tail == nil)
        #expect(scan.records.map(\.work) == [PersistWork(hardState: HardState(term: 7, votedFor: ServerID("n2")))])
    }

    /// A torn tail (the last write cut anywhere) loses only the last record.
    @Test func tornTailIsCutBackToLastGoodRecord() throws {
        var bytes: [UInt8] = []
        var boundaries: [Int] = [0]
        for work in Self.works {
            bytes += try WALRecord.encode(work)
            boundaries.append(bytes.count)
        }
        let lastStart = boundaries[boundaries.count - 2]
        for cut in lastStart..<bytes.count {
            let scan = WALRecord.scan(Array(bytes[..<cut]))
            #expect(scan.records.map(\.work) == Array(Self.records.dropLast()))
            #expect(scan.validBytes == lastStart)
            #expect((scan.tail != nil) == (cut != lastStart))
        }
    }

    /// The unwritten rest of a preallocated segment (zeros, any length) is a clean end; zeros
    /// followed by anything else are not.
    @Test func zeroTailEndsTheLog() throws {
        var bytes: [UInt8] = []
        for work in Self.works { bytes += try WALRecord.encode(work) }
        for zeros in [1, 3, 7, 8, 9, 100, 4096] {
            let scan = WALRecord.scan(bytes + [UInt8](repeating: 0, count: zeros))
            #expect(scan.tail == nil)
            #expect(scan.validBytes == bytes.count)
            #expect(scan.records.map(\.work) == Self.records)
            for position in [0, zeros / 2, zeros - 1] {
                var stale = bytes + [UInt8](repeating: 0, count: zeros)
                stale[bytes.count + position] = 1
                let damaged = WALRecord.scan(stale)
                #expect(damaged.tail != nil)
                #expect(damaged.validBytes == bytes.count)
                #expect(damaged.records.map(\.work) == Self.records)
            }
        }
        #expect(WALRecord.scan([UInt8](repeating: 0, count: 64)).records.isEmpty)
        #expect(WALRecord.scan([UInt8](repeating: 0, count: 64)).tail == nil)
    }

    /// A torn last write in a preallocated segment (the record cut anywhere, zeros after it) loses
    /// only that record, and is reported unless nothing of it was written. (When all it misses
    /// are zeros, the zeros already there complete it: it is whole.)
    @Test func tornTailInZerosIsCutBackToLastGoodRecord() throws {
        var bytes: [UInt8] = []
        for work in Self.works.dropLast() { bytes += try WALRecord.encode(work) }
        let last = try WALRecord.encode(Self.works.last!)
        for cut in 0..<last.count {
            let scan = WALRecord.scan(bytes + last[..<cut] + [UInt8](repeating: 0, count: last.count - cut + 64))
            if last[cut...].allSatisfy({ $0 == 0 }) {
                #expect(scan.records.map(\.work) == Self.records)
                #expect(scan.tail == nil)
                continue
            }
            #expect(scan.records.map(\.work) == Array(Self.records.dropLast()))
            #expect(scan.validBytes == bytes.count)
            #expect((scan.tail != nil) == (cut != 0))
        }
    }

    /// Any flipped bit is detected: the record is not returned.
    @Test func corruptionIsDetected() throws {
        let bytes = try WALRecord.encode(Self.works[2])
        for position in 0..<bytes.count {
            var corrupt = bytes
            corrupt[position] ^= 0x10
            let scan = WALRecord.scan(corrupt)
            #expect(scan.records.isEmpty)
            #expect(scan.tail != nil)
        }
    }

    /// Random bytes never crash the decoder, and a scan never claims more than it decoded.
    @Test func garbageNeverCrashes() {
        var random = SeededRandom(seed: 99)
        for _ in 0..<3000 {
            let count = Int(random.next() % 64)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if random.chance(0.5), bytes.count >= 8 {
                // A plausible header over garbage, with a matching checksum, to reach the payload decoder.
                let payload = Array(bytes[8...])
                var header = ByteWriter()
                header.u32(UInt32(payload.count))
                header.u32(CRC32C.checksum(payload))
                bytes = header.bytes + payload
            }
            let scan = WALRecord.scan(bytes)
            #expect(scan.validBytes <= bytes.count)
        }
    }

    /// Replaying the records reproduces what the simulator's disk semantics say is stored.
    @Test func replayAppliesWriteSemantics() throws {
        var state = RecoveredState()
        for work in Self.works.dropLast() { try state.apply(work) }
        #expect(state.hardState == HardState(term: 2, votedFor: ServerID("a")))
        #expect(state.entries.map(\.index) == [3])
        #expect(state.entries.first?.term == 3)
        try state.apply(Self.works.last!)
        #expect(state.snapshot?.metadata.index == 9)
        #expect(state.entries.map(\.index) == [10])
        #expect(throws: RaftError.self) { try state.apply(PersistWork(entries: [LogEntry(index: 20, term: 4, payload: .noop)])) }
    }
}
