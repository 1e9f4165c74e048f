/// The WAL's record format: one record per `PersistWork` (what one output batch asks to make
/// durable), framed as
///
///     length: u32 LE   (of the payload)
///     crc:    u32 LE   (CRC-32C of the payload)
///     payload: flags u8, [snapshot metadata], [compact-through u64], entry count u32, entries
///
/// A checkpoint record (flag 8) holds a whole state and replaces whatever replay built before it.
/// A compaction record (flag 16, nothing else in it but the metadata) marks a snapshot this server
/// took of its own applied entries: the entries it covers are dropped, the log after it is kept.
/// The term and vote are not in the log: they live in the `StableStore`. Flag 2 marks a hard state
/// inside a record, as logs written before the stable store had; it is still read, so such a data
/// directory keeps its term and vote (see `RaftNode.init`), and never written.
///
/// Zeros end a segment: no record has a zero length (its payload holds at least the flags and the
/// entry count), so a length of zero followed by nothing but zeros is the unwritten rest of a
/// preallocated segment, not damage.
///
/// Snapshot data is not in the WAL (it lives in the snapshot store); the record keeps only the
/// snapshot's metadata, so replay knows where the log was cut.
package enum WALRecord {
    /// A record larger than this is refused when written and treated as corrupt when read.
    package static let maxRecordBytes = 64 * 1024 * 1024
    /// Per-command and per-configuration limits inside a record.
    static let maxCommandBytes = 16 * 1024 * 1024
    static let maxServers = 1024
    static let headerBytes = 8

    package enum WriteError: Error, Hashable, Sendable {
        case recordTooLarge(Int)
    }

    // MARK: - Encoding

    /// One decoded record.
    package struct Record: Hashable, Sendable {
        package var work: PersistWork
        /// A checkpoint: replay starts over from this record.
        package var isCheckpoint: Bool
        /// A compaction record: the snapshot this server took (its `work` is empty).
        package var compaction: SnapshotMetadata?

        package init(work: PersistWork, isCheckpoint: Bool = false, compaction: SnapshotMetadata? = nil) {
            self.work = work
            self.isCheckpoint = isCheckpoint
            self.compaction = compaction
        }
    }

    /// Encodes `work` without its hard state (the `StableStore` holds that).
    package static func encode(_ work: PersistWork, checkpoint: Bool = false) throws(WriteError) -> [UInt8] {
        var payload = ByteWriter()
        var flags: UInt8 = checkpoint ? 8 : 0
        if work.snapshot != nil { flags |= 1 }
        if work.compactThrough != nil { flags |= 4 }
        payload.u8(flags)
        if let snapshot = work.snapshot { encode(snapshot.metadata, into: &payload) }
        if let through = work.compactThrough { payload.u64(through) }
        payload.u32(UInt32(work.entries.count))
        for entry in work.entries { encode(entry, into: &payload) }
        guard payload.bytes.count <= maxRecordBytes else { throw .recordTooLarge(payload.bytes.count) }
        return framed(payload.bytes)
    }

    /// A compaction record for a snapshot this server took (see the type's doc).
    package static func encodeCompaction(_ metadata: SnapshotMetadata) -> [UInt8] {
        var payload = ByteWriter()
        payload.u8(16)
        encode(metadata, into: &payload)
        payload.u32(0)
        return framed(payload.bytes)
    }

    private static func framed(_ payload: [UInt8]) -> [UInt8] {
        var frame = ByteWriter()
        frame.u32(UInt32(payload.count))
        frame.u32(CRC32C.checksum(payload))
        return frame.bytes + payload
    }

    static func encode(_ entry: LogEntry, into writer: inout ByteWriter) {
        writer.u64(entry.index)
        writer.u64(entry.term)
        switch entry.payload {
        case .noop:
            writer.u8(0)
        case .command(let bytes):
            writer.u8(1)
            writer.blob(bytes)
        case .configuration(let configuration):
            writer.u8(2)
            encode(configuration, into: &writer)
        }
    }

    static func encode(_ configuration: ClusterConfiguration, into writer: inout ByteWriter) {
        writer.u32(UInt32(configuration.servers.count))
        for server in configuration.servers {
            writer.string(server.id.rawValue)
            // Bit 1: an address follows (written only when known, so older records read the same).
            writer.u8((server.suffrage == .voter ? 1 : 0) | (server.address.isEmpty ? 0 : 2))
            if !server.address.isEmpty { writer.string(server.address) }
        }
    }

    static func encode(_ metadata: SnapshotMetadata, into writer: inout ByteWriter) {
        writer.u64(metadata.index)
        writer.u64(metadata.term)
        encode(metadata.configuration, into: &writer)
    }

    // MARK: - Decoding

    /// The result of scanning a WAL segment.
    package struct Scan: Sendable {
        /// The records up to the first bad one. Snapshots carry metadata only (empty data).
        package var records: [Record]
        /// Bytes covered by `records`: a torn tail or a zero tail starts here; the next record goes here.
        package var validBytes: Int
        /// Why scanning stopped before the end, if it did.
        package var tail: DecodeError?
    }

    /// Decodes frames until the end, a zero tail (the rest of the bytes all zero: the unwritten part
    /// of a preallocated segment, a clean end), or the first incomplete, mis-checksummed or
    /// undecodable frame. Whether a bad frame is a torn tail (cut it) or corruption in the middle
    /// (refuse to start) is for the caller to decide: it knows whether later segments follow.
    package static func scan(_ bytes: [UInt8]) -> Scan {
        var records: [Record] = []
        var offset = 0
        while offset < bytes.count {
            var header = ByteReader(bytes, from: offset)
            do throws(DecodeError) {
                // Checked only where a record cannot start (too few bytes left, or a zero length),
                // so a scan stays linear.
                if bytes.count - offset < headerBytes || bytes[offset..<(offset + 4)].allSatisfy({ $0 == 0 }) {
                    guard bytes[offset...].allSatisfy({ $0 == 0 }) else {
                        throw bytes.count - offset < headerBytes ? .truncated(at: offset) : .invalid("zero-length record", at: offset)
                    }
                    return Scan(records: records, validBytes: offset, tail: nil)
                }
                let length = Int(try header.u32())
                let crc = try header.u32()
                guard length <= maxRecordBytes else { throw .invalid("record length \(length) over limit", at: offset) }
                let start = offset + headerBytes
                guard length <= bytes.count - start else { throw .truncated(at: offset) }
                guard CRC32C.checksum(bytes[start..<(start + length)]) == crc else {
                    throw .invalid("checksum mismatch", at: offset)
                }
                var reader = ByteReader(bytes, from: start, to: start + length)
                records.append(try decodeWork(&reader))
                guard reader.isAtEnd else { throw .invalid("trailing bytes in record", at: offset) }
                offset = start + length
            } catch {
                return Scan(records: records, validBytes: offset, tail: error)
            }
        }
        return Scan(records: records, validBytes: offset, tail: nil)
    }

    static func decodeWork(_ reader: inout ByteReader) throws(DecodeError) -> Record {
        let flagsAt = reader.offset
        let flags = try reader.u8()
        guard flags & ~31 == 0 else { throw .invalid("unknown record flags \(flags)", at: flagsAt) }
        if flags & 16 != 0 {
            guard flags == 16 else { throw .invalid("compaction record with other flags \(flags)", at: flagsAt) }
            let metadata = try decodeMetadata(&reader)
            let countAt = reader.offset
            guard try reader.u32() == 0 else { throw .invalid("compaction record with entries", at: countAt) }
            return Record(work: PersistWork(), compaction: metadata)
        }
        var work = PersistWork()
        if flags & 1 != 0 { work.snapshot = Snapshot(metadata: try decodeMetadata(&reader), data: []) }
        if flags & 2 != 0 {  // legacy: a hard state in the log
            let term = try reader.u64()
            let hasVote = try reader.u8()
            work.hardState = HardState(term: term, votedFor: hasVote == 0 ? nil : ServerID(try reader.string()))
        }
        if flags & 4 != 0 { work.compactThrough = try reader.u64() }
        let countAt = reader.offset
        let count = Int(try reader.u32())
        // Every entry takes at least 17 bytes: a count beyond that is corrupt, not a huge allocation.
        guard count <= reader.remaining / 17 else { throw .invalid("entry count \(count) exceeds record", at: countAt) }
        work.entries.reserveCapacity(count)
        for _ in 0..<count {
            let entry = try decodeEntry(&reader)
            if let previous = work.entries.last, entry.index != previous.index + 1 {
                throw .invalid("entries not contiguous at \(entry.index)", at: reader.offset)
            }
            work.entries.append(entry)
        }
        return Record(work: work, isCheckpoint: flags & 8 != 0)
    }

    static func decodeEntry(_ reader: inout ByteReader) throws(DecodeError) -> LogEntry {
        let index = try reader.u64()
        let term = try reader.u64()
        let tagAt = reader.offset
        switch try reader.u8() {
        case 0: return LogEntry(index: index, term: term, payload: .noop)
        case 1: return LogEntry(index: index, term: term, payload: .command(try reader.blob(limit: maxCommandBytes)))
        case 2: return LogEntry(index: index, term: term, payload: .configuration(try decodeConfiguration(&reader)))
        case let tag: throw .invalid("unknown entry tag \(tag)", at: tagAt)
        }
    }

    static func decodeConfiguration(_ reader: inout ByteReader) throws(DecodeError) -> ClusterConfiguration {
        let countAt = reader.offset
        let count = Int(try reader.u32())
        guard count <= maxServers else { throw .invalid("\(count) servers over limit", at: countAt) }
        var servers: [ServerEntry] = []
        for _ in 0..<count {
            let id = ServerID(try reader.string())
            let suffrageAt = reader.offset
            let flags = try reader.u8()
            guard flags & ~3 == 0 else { throw .invalid("unknown suffrage \(flags)", at: suffrageAt) }
            let suffrage: Suffrage = flags & 1 == 1 ? .voter : .nonvoter
            let address = flags & 2 == 2 ? try reader.string() : ""
            servers.append(ServerEntry(id: id, suffrage: suffrage, address: address))
        }
        return ClusterConfiguration(servers: servers)
    }

    static func decodeMetadata(_ reader: inout ByteReader) throws(DecodeError) -> SnapshotMetadata {
        let index = try reader.u64()
        let term = try reader.u64()
        return SnapshotMetadata(index: index, term: term, configuration: try decodeConfiguration(&reader))
    }
}

extension RecoveredState {
    /// Applies one durable write, with the semantics `PersistWork` documents: the snapshot first
    /// (keeping the log after it only if the log agrees at the snapshot point), then the hard state,
    /// then the entries (replacing any stored entry from the first one's index on), then compaction.
    /// Shared by the simulator's disk and WAL replay so both mean the same thing.
    package mutating func apply(_ work: PersistWork) throws(RaftError) {
        if let snapshot = work.snapshot {
            let meta = snapshot.metadata
            let matching = entries.first { $0.index == meta.index }?.term == meta.term
            if matching {
                entries.removeAll { $0.index <= meta.index }
            } else {
                entries.removeAll()
            }
            self.snapshot = snapshot
        }
        if let hardState = work.hardState { self.hardState = hardState }
        if let first = work.entries.first {
            // Entries are contiguous: only a write that goes back (a conflicting suffix) cuts.
            if let last = entries.last, last.index >= first.index { entries.removeAll { $0.index >= first.index } }
            let expected = entries.last.map { $0.index + 1 } ?? (snapshot?.metadata.index ?? 0) + 1
            if first.index > expected {
                throw .corruptRecoveredState("write at \(first.index) leaves a gap after \(expected - 1)")
            }
            entries.append(contentsOf: work.entries)
        }
        if let through = work.compactThrough {
            entries.removeAll { $0.index <= through }
        }
    }

    /// Applies a compaction record: this server's own snapshot covers a prefix of its log, so the
    /// entries up to it go and the rest stays (unlike a snapshot from the leader, which replaces a
    /// log that disagrees with it). An older snapshot than the one held changes nothing.
    package mutating func compact(to metadata: SnapshotMetadata) {
        guard metadata.index >= snapshot?.metadata.index ?? 0 else { return }
        snapshot = Snapshot(metadata: metadata, data: [])
        entries.removeAll { $0.index <= metadata.index }
    }
}
