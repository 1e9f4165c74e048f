/// A server's current term and vote (`HardState`), in one small file of its own beside the log
/// (`stable-state` in the Raft directory):
///
///     magic "RSTB", version u8, term u64, has-vote u8, [vote: string], CRC-32C u32 (of all before it)
///
/// Every update replaces the whole file atomically (temporary file, fsync, rename, fsync of the
/// directory), so a crash leaves the old term and vote or the new ones, never a torn mix: a server
/// must never forget a vote it gave, nor vote twice in one term.
///
/// Not thread-safe: owned by one `DiskWriter`, which uses it from its own queue only (and by the
/// node's initializer before that).
package struct StableStore: Sendable {
    package static let fileName = "stable-state"
    static let magic: [UInt8] = Array("RSTB".utf8)
    static let version: UInt8 = 1
    /// The file holds a term and one server ID: anything this large is not ours.
    static let maxBytes: UInt64 = 64 * 1024

    package let path: String

    package init(directory: String) {
        self.path = directory + "/" + Self.fileName
    }

    /// The stored state, or nil when none was ever saved. A damaged file is an error naming it:
    /// starting over at term 0 could let this server vote twice in a term.
    package func load() throws(WALError) -> HardState? {
        guard let bytes = try readFileIfPresent(path, limit: Self.maxBytes) else { return nil }
        return try Self.decode(bytes, path: path)
    }

    package func save(_ state: HardState) throws(WALError) {
        try replaceFileAtomically(path, with: Self.encode(state))
    }

    package static func encode(_ state: HardState) -> [UInt8] {
        var writer = ByteWriter()
        for byte in magic { writer.u8(byte) }
        writer.u8(version)
        writer.u64(state.term)
        writer.u8(state.votedFor == nil ? 0 : 1)
        if let vote = state.votedFor { writer.string(vote.rawValue) }
        writer.u32(CRC32C.checksum(writer.bytes))
        return writer.bytes
    }

    package static func decode(_ bytes: [UInt8], path: String) throws(WALError) -> HardState {
        guard bytes.count >= magic.count + 1 + 8 + 1 + 4, Array(bytes.prefix(magic.count)) == magic else {
            throw .corrupt(path: path, offset: 0, reason: "not a stable-state file")
        }
        var crcReader = ByteReader(bytes, from: bytes.count - 4)
        do throws(DecodeError) {
            guard CRC32C.checksum(bytes.dropLast(4)) == (try crcReader.u32()) else {
                throw .invalid("checksum mismatch", at: 0)
            }
            var reader = ByteReader(bytes, from: magic.count, to: bytes.count - 4)
            let version = try reader.u8()
            guard version == Self.version else { throw .invalid("unknown version \(version)", at: magic.count) }
            let term = try reader.u64()
            let hasVote = try reader.u8()
            let vote = hasVote == 0 ? nil : ServerID(try reader.string())
            guard reader.isAtEnd else { throw .invalid("trailing bytes", at: reader.offset) }
            return HardState(term: term, votedFor: vote)
        } catch {
            throw .corrupt(path: path, offset: 0, reason: "\(error)")
        }
    }
}
