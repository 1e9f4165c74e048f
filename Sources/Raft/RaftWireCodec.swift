/// The byte encoding of Raft messages between servers, for any stream transport (TCP, TLS):
///
///     frame:   length u32 LE (of what follows), version u8, from, to (u16-prefixed UTF-8), term u64, tag u8, body
///
/// Decoding is defensive: every length is checked against the frame and a named limit, unknown
/// tags and versions are errors, and nothing a peer sends can trap.
package enum RaftWireCodec {
    package static let version: UInt8 = 1
    /// Frames larger than this are refused (a snapshot chunk is far smaller; see RaftOptions).
    package static let maxFrameBytes = 32 * 1024 * 1024
    static let maxEntriesPerFrame = 1 << 20

    package static func encode(_ message: Message) -> [UInt8] {
        var body = ByteWriter()
        body.u8(version)
        body.string(message.from.rawValue)
        body.string(message.to.rawValue)
        body.u64(message.term)
        switch message.payload {
        case .preVote(let last):
            body.u8(1)
            position(last, into: &body)
        case .preVoteResponse(let granted):
            body.u8(2)
            body.u8(granted ? 1 : 0)
        case .requestVote(let last, let transfer):
            body.u8(3)
            position(last, into: &body)
            body.u8(transfer ? 1 : 0)
        case .voteResponse(let granted):
            body.u8(4)
            body.u8(granted ? 1 : 0)
        case .appendEntries(let append):
            body.u8(5)
            body.u64(append.prevIndex)
            body.u64(append.prevTerm)
            body.u64(append.commit)
            body.u64(append.readRound)
            body.u32(UInt32(append.entries.count))
            for entry in append.entries { WALRecord.encode(entry, into: &body) }
        case .appendResponse(let response):
            body.u8(6)
            body.u8(response.success ? 1 : 0)
            body.u64(response.matchIndex)
            body.u64(response.rejectedIndex)
            body.u8(response.conflictTerm == nil ? 0 : 1)
            body.u64(response.conflictTerm ?? 0)
            body.u64(response.conflictIndex)
            body.u64(response.readRound)
        case .heartbeat(let commit, let round):
            body.u8(7)
            body.u64(commit)
            body.u64(round)
        case .heartbeatResponse(let round):
            body.u8(8)
            body.u64(round)
        case .installSnapshot(let install):
            body.u8(9)
            WALRecord.encode(install.metadata, into: &body)
            body.u64(install.totalSize)
            body.u64(install.offset)
            body.blob(install.chunk)
        case .installSnapshotResponse(let response):
            body.u8(10)
            body.u64(response.snapshotIndex)
            body.u64(response.snapshotTerm)
            body.u64(response.nextOffset)
            body.u8(response.done ? 1 : 0)
        case .timeoutNow:
            body.u8(11)
        }
        var frame = ByteWriter()
        frame.u32(UInt32(body.bytes.count))
        return frame.bytes + body.bytes
    }

    private static func position(_ position: LogPosition, into writer: inout ByteWriter) {
        writer.u64(position.index)
        writer.u64(position.term)
    }

    /// Splits complete frames off the front of a stream buffer. Returns the decoded messages and
    /// how many bytes they used; an incomplete frame at the end waits for more bytes. A bad frame
    /// is an error: the connection should be closed, since framing is lost.
    package static func decodeFrames(_ buffer: [UInt8]) throws(DecodeError) -> (messages: [Message], consumed: Int) {
        var messages: [Message] = []
        var offset = 0
        while buffer.count - offset >= 4 {
            var header = ByteReader(buffer, from: offset)
            let length = Int(try header.u32())
            guard length <= maxFrameBytes else { throw .invalid("frame of \(length) bytes over limit", at: offset) }
            guard buffer.count - offset - 4 >= length else { break }
            var reader = ByteReader(buffer, from: offset + 4, to: offset + 4 + length)
            messages.append(try decodeMessage(&reader))
            guard reader.isAtEnd else { throw .invalid("trailing bytes in frame", at: reader.offset) }
            offset += 4 + length
        }
        return (messages, offset)
    }

    /// Decodes one frame's body (what follows its length prefix), which must hold exactly one message.
    package static func decodeBody(_ body: [UInt8]) throws(DecodeError) -> Message {
        var reader = ByteReader(body, from: 0)
        let message = try decodeMessage(&reader)
        guard reader.isAtEnd else { throw .invalid("trailing bytes in frame", at: reader.offset) }
        return message
    }

    static func decodeMessage(_ reader: inout ByteReader) throws(DecodeError) -> Message {
        let versionAt = reader.offset
        let got = try reader.u8()
        guard got == version else { throw .invalid("unsupported wire version \(got)", at: versionAt) }
        let from = ServerID(try reader.string())
        let to = ServerID(try reader.string())
        let term = try reader.u64()
        let tagAt = reader.offset
        let payload: MessagePayload
        switch try reader.u8() {
        case 1:
            payload = .preVote(lastLog: try position(&reader))
        case 2:
            payload = .preVoteResponse(granted: try flag(&reader))
        case 3:
            let last = try position(&reader)
            payload = .requestVote(lastLog: last, transfer: try flag(&reader))
        case 4:
            payload = .voteResponse(granted: try flag(&reader))
        case 5:
            let prevIndex = try reader.u64()
            let prevTerm = try reader.u64()
            let commit = try reader.u64()
            let round = try reader.u64()
            let countAt = reader.offset
            let count = Int(try reader.u32())
            guard count <= maxEntriesPerFrame, count <= reader.remaining / 17 else {
                throw .invalid("entry count \(count) exceeds frame", at: countAt)
            }
            var entries: [LogEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count { entries.append(try WALRecord.decodeEntry(&reader)) }
            payload = .appendEntries(AppendEntries(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit, readRound: round))
        case 6:
            let success = try flag(&reader)
            let match = try reader.u64()
            let rejected = try reader.u64()
            let hasConflictTerm = try flag(&reader)
            let conflictTerm = try reader.u64()
            let conflictIndex = try reader.u64()
            let round = try reader.u64()
            payload = .appendResponse(AppendResponse(
                success: success, matchIndex: match, rejectedIndex: rejected, conflictTerm: hasConflictTerm ? conflictTerm : nil,
                conflictIndex: conflictIndex, readRound: round))
        case 7:
            let commit = try reader.u64()
            payload = .heartbeat(commit: commit, readRound: try reader.u64())
        case 8:
            payload = .heartbeatResponse(readRound: try reader.u64())
        case 9:
            let metadata = try WALRecord.decodeMetadata(&reader)
            let total = try reader.u64()
            let offset = try reader.u64()
            let chunk = try reader.blob(limit: maxFrameBytes)
            payload = .installSnapshot(InstallSnapshot(metadata: metadata, totalSize: total, offset: offset, chunk: chunk))
        case 10:
            let index = try reader.u64()
            let snapshotTerm = try reader.u64()
            let next = try reader.u64()
            payload = .installSnapshotResponse(InstallSnapshotResponse(
                snapshotIndex: index, snapshotTerm: snapshotTerm, nextOffset: next, done: try flag(&reader)))
        case 11:
            payload = .timeoutNow
        case let tag:
            throw .invalid("unknown message tag \(tag)", at: tagAt)
        }
        return Message(from: from, to: to, term: term, payload: payload)
    }

    private static func position(_ reader: inout ByteReader) throws(DecodeError) -> LogPosition {
        let index = try reader.u64()
        return LogPosition(index: index, term: try reader.u64())
    }

    private static func flag(_ reader: inout ByteReader) throws(DecodeError) -> Bool {
        let at = reader.offset
        switch try reader.u8() {
        case 0: return false
        case 1: return true
        case let value: throw .invalid("boolean \(value)", at: at)
        }
    }
}
