import CZlib

/// gzip (RFC 1952) through the system's zlib, for snapshot archives.
enum Gzip {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func compress(_ input: [UInt8]) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        // windowBits 15 + 16: a gzip header and trailer rather than zlib's.
        guard deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Failure(description: "zlib: deflateInit failed")
        }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 64)
        var input = input
        let status = input.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                stream.next_in = inBuffer.baseAddress
                stream.avail_in = uInt(inBuffer.count)
                stream.next_out = outBuffer.baseAddress
                stream.avail_out = uInt(outBuffer.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw Failure(description: "zlib: deflate failed (\(status))") }
        return Array(output.prefix(Int(stream.total_out)))
    }

    /// What a stream without a gzip header (magic bytes, room for header and trailer) is told.
    static let invalidHeader = "not a gzip stream (gzip: invalid header)"

    /// The cheap first look: gzip's magic bytes and room for its header and trailer, without inflating.
    static func hasHeader(_ input: [UInt8]) -> Bool {
        input.count >= 18 && input[0] == 0x1f && input[1] == 0x8b
    }

    /// Inflates a whole gzip stream; more than `limit` bytes out is an error (a small archive
    /// must not be able to expand without bound).
    static func decompress(_ input: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
        guard hasHeader(input) else { throw Failure(description: invalidHeader) }
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Failure(description: "zlib: inflateInit failed")
        }
        defer { inflateEnd(&stream) }
        var input = input
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var status: Int32 = Z_OK
        input.withUnsafeMutableBufferPointer { inBuffer in
            stream.next_in = inBuffer.baseAddress
            stream.avail_in = uInt(inBuffer.count)
            while status == Z_OK {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { outBuffer in
                    stream.next_out = outBuffer.baseAddress
                    stream.avail_out = uInt(outBuffer.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return outBuffer.count - Int(stream.avail_out)
                }
                output.append(contentsOf: chunk.prefix(produced))
                if output.count > limit { status = Z_MEM_ERROR; break }
                if status == Z_BUF_ERROR, stream.avail_in == 0 { break }
            }
        }
        if output.count > limit { throw Failure(description: "archive expands to more than \(limit) bytes") }
        guard status == Z_STREAM_END else {
            throw Failure(description: status == Z_BUF_ERROR || status == Z_OK ? "gzip stream is truncated (unexpected EOF)" : "gzip stream is corrupt (zlib error \(status))")
        }
        return output
    }
}
