/// Where a state machine writes its snapshot: a sequence of pieces, each one record of the
/// machine's own format (a node, a key, a session...), framed by its length. The sink hands the
/// bytes on in chunks of about `chunkBytes` as they fill (`SnapshotStore` writes them straight to
/// the snapshot file), so a machine never builds its whole state as one encoding of its own, and
/// the file is written while the machine is still encoding.
///
/// Used from one thread: the one taking the snapshot.
package final class SnapshotSink {
    package static let chunkBytes = 1 << 20
    /// A piece larger than this is refused (the reader refuses it too).
    package static let maxPieceBytes = 64 * 1024 * 1024

    private var buffer = ByteWriter()
    private let deliver: ([UInt8]) throws(WALError) -> Void
    /// The first error handing bytes on, or an oversized piece; everything after it is dropped and
    /// the owner reports it once the machine is done.
    package private(set) var failure: WALError?

    /// `deliver` gets the framed bytes, in order, a chunk at a time (and the rest on `finish`).
    package init(deliver: @escaping ([UInt8]) throws(WALError) -> Void) {
        self.deliver = deliver
    }

    /// Encodes one piece.
    package func write(_ encode: (inout ByteWriter) -> Void) {
        guard failure == nil else { return }
        var piece = ByteWriter()
        encode(&piece)
        guard piece.bytes.count <= Self.maxPieceBytes else {
            failure = .recordTooLarge(piece.bytes.count)
            return
        }
        buffer.u32(UInt32(piece.bytes.count))
        buffer.raw(piece.bytes)
        if buffer.bytes.count >= Self.chunkBytes { flush() }
    }

    /// Hands on what is buffered.
    package func finish() throws(WALError) {
        flush()
        if let failure { throw failure }
    }

    private func flush() {
        guard failure == nil, !buffer.bytes.isEmpty else { return }
        do { try deliver(buffer.bytes) } catch { failure = error }
        buffer = ByteWriter()
    }
}

/// Reads a snapshot back piece by piece, as a `SnapshotSink` framed it.
package struct SnapshotSource {
    private let bytes: [UInt8]
    private var offset = 0

    package init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The next piece, or nil after the last one. A damaged frame is an error, never a trap.
    package mutating func next() throws(DecodeError) -> ByteReader? {
        guard offset < bytes.count else { return nil }
        var header = ByteReader(bytes, from: offset)
        let length = Int(try header.u32())
        guard length <= SnapshotSink.maxPieceBytes else { throw .invalid("snapshot piece of \(length) bytes", at: offset) }
        let start = offset + 4
        guard length <= bytes.count - start else { throw .truncated(at: offset) }
        offset = start + length
        return ByteReader(bytes, from: start, to: start + length)
    }

    /// The next piece, which must be there.
    package mutating func expect() throws(DecodeError) -> ByteReader {
        guard let piece = try next() else { throw .truncated(at: offset) }
        return piece
    }

    /// Whether every piece was read (a snapshot with pieces left over is damaged).
    package var isAtEnd: Bool { offset >= bytes.count }
}
