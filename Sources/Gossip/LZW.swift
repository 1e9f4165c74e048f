/// Why LZW input was rejected.
package enum LZWError: Error, Equatable, Sendable {
    /// The bit stream ended before the end-of-data code (Go: `io.ErrUnexpectedEOF`).
    case unexpectedEnd
    /// A code above the next free table slot (Go: "lzw: invalid code").
    case invalidCode(UInt16)
    /// Inflating would exceed the caller's bound.
    case outputTooLarge(limit: Int)
}

/// Go's `compress/lzw` with LSB bit order and 8-bit literals — the format of memberlist's
/// `compress` messages. Code width grows from 9 to 12 bits; code 256 clears the table and 257 ends
/// the data. The encoder reproduces Go's writer bit for bit (same clear-code placement when the
/// table fills, same final padding), so compressed output matches a Go sender's.
package enum LZW {
    private static let literalWidth = 8
    private static let clearCode: UInt32 = 1 << 8
    private static let endCode: UInt32 = clearCode + 1
    private static let maxWidth = 12
    private static let maxCode: UInt32 = 1 << 12 - 1

    // MARK: Encoder

    /// Compresses `input` exactly as Go's `lzw.NewWriter(w, lzw.LSB, 8)` followed by one `Write`
    /// and `Close`.
    package static func compress(_ input: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(input.count / 2 + 8)
        var bits: UInt32 = 0
        var bitCount = 0
        var width = literalWidth + 1
        var hi = endCode
        var overflow: UInt32 = 1 << (literalWidth + 1)

        func emit(_ code: UInt32) {
            bits |= code << UInt32(bitCount)
            bitCount += width
            while bitCount >= 8 {
                output.append(UInt8(truncatingIfNeeded: bits))
                bits >>= 8
                bitCount -= 8
            }
        }

        // Open-addressing table from (prefix code << 8 | literal) to code, as in Go's writer; the
        // stored word is key << 12 | code and 0 marks a free slot (no valid entry is ever 0).
        let tableSize = 4 * (1 << 12)
        let tableMask = UInt32(tableSize - 1)
        var table = [UInt32](repeating: 0, count: tableSize)

        /// Takes the next code; true when the table was full and has just been reset.
        func advanceHi() -> Bool {
            hi += 1
            if hi == overflow {
                width += 1
                overflow <<= 1
            }
            if hi == maxCode {
                emit(clearCode)
                width = literalWidth + 1
                hi = clearCode + 1
                overflow = clearCode << 1
                for index in table.indices { table[index] = 0 }
                return true
            }
            return false
        }

        guard let first = input.first else {
            // Go's writer with no data written emits clear then end.
            emit(clearCode)
            emit(endCode)
            if bitCount > 0 { output.append(UInt8(truncatingIfNeeded: bits)) }
            return output
        }
        emit(clearCode)
        var code = UInt32(first)
        var index = input.startIndex + 1
        nextByte: while index < input.endIndex {
            let literal = UInt32(input[index])
            index += 1
            let key = code << 8 | literal
            var hash = (key >> 12 ^ key) & tableMask
            var probe = hash
            while table[Int(probe)] != 0 {
                let entry = table[Int(probe)]
                if key == entry >> 12 {
                    code = entry & maxCode
                    continue nextByte
                }
                probe = (probe + 1) & tableMask
            }
            emit(code)
            code = literal
            if advanceHi() { continue }
            while table[Int(hash)] != 0 { hash = (hash + 1) & tableMask }
            table[Int(hash)] = key << 12 | hi
        }
        emit(code)
        _ = advanceHi()
        emit(endCode)
        if bitCount > 0 { output.append(UInt8(truncatingIfNeeded: bits)) }
        return output
    }

    // MARK: Decoder

    /// Inflates `input` as Go's `lzw.NewReader(r, lzw.LSB, 8)` read to EOF would, including its
    /// handling of odd streams (codes after a clear, bytes after the end code are ignored), but
    /// with the output bounded by `maxOutput`.
    package static func decompress(_ input: [UInt8], maxOutput: Int) throws(LZWError) -> [UInt8] {
        try decompress(input[...], maxOutput: maxOutput)
    }

    /// The decoder proper. Besides Go's prefix/suffix tables it keeps each code's string length, so
    /// a code's bytes are written straight into place in the output (backwards along the prefix
    /// chain) instead of through a scratch buffer. Every write is checked against the space the
    /// length promised, so a table that disagreed with it would be an `invalidCode`, not a trap.
    package static func decompress(_ input: ArraySlice<UInt8>, maxOutput: Int) throws(LZWError) -> [UInt8] {
        let clear = UInt16(clearCode)
        let end = UInt16(endCode)
        let invalid: UInt16 = 0xFFFF
        let tableSize = 1 << maxWidth
        var suffix = [UInt8](repeating: 0, count: tableSize)
        var prefix = [UInt16](repeating: 0, count: tableSize)
        var length = [UInt16](repeating: 1, count: tableSize)
        var output: [UInt8] = []
        output.reserveCapacity(min(maxOutput, input.count * 4))

        var bits: UInt32 = 0
        var bitCount = 0
        var width = literalWidth + 1
        var hi = end
        var overflow: UInt16 = 1 << (literalWidth + 1)
        var last = invalid
        var position = input.startIndex

        while true {
            while bitCount < width {
                guard position < input.endIndex else { throw .unexpectedEnd }
                bits |= UInt32(input[position]) << UInt32(bitCount)
                position += 1
                bitCount += 8
            }
            let code = UInt16(bits & (1 << UInt32(width) - 1))
            bits >>= UInt32(width)
            bitCount -= width

            if code < clear {
                guard output.count < maxOutput else { throw .outputTooLarge(limit: maxOutput) }
                output.append(UInt8(code))
                if last != invalid {
                    suffix[Int(hi)] = UInt8(code)
                    prefix[Int(hi)] = last
                    length[Int(hi)] = length[Int(last)] &+ 1
                }
            } else if code == clear {
                width = literalWidth + 1
                hi = end
                overflow = 1 << width
                last = invalid
                continue
            } else if code == end {
                return output
            } else if code <= hi {
                // `code == hi` is the KwKwK case: the string of `last` plus its own first byte.
                let repeatsLast = code == hi && last != invalid
                let walkFrom = repeatsLast ? last : code
                let walkLength = Int(length[Int(walkFrom)])
                let total = walkLength + (repeatsLast ? 1 : 0)
                guard total <= maxOutput - output.count else { throw .outputTooLarge(limit: maxOutput) }
                let start = output.count
                output.append(contentsOf: repeatElement(0, count: total))
                var cursor = walkFrom
                var index = start + walkLength - 1
                while cursor >= clear {
                    guard index > start else { throw .invalidCode(code) }
                    output[index] = suffix[Int(cursor)]
                    index -= 1
                    cursor = prefix[Int(cursor)]
                }
                guard index == start else { throw .invalidCode(code) }
                output[start] = UInt8(cursor)
                if repeatsLast { output[start + walkLength] = UInt8(cursor) }
                if last != invalid {
                    suffix[Int(hi)] = UInt8(cursor)
                    prefix[Int(hi)] = last
                    length[Int(hi)] = length[Int(last)] &+ 1
                }
            } else {
                throw .invalidCode(code)
            }
            last = code
            hi += 1
            if hi >= overflow {
                if width == maxWidth {
                    last = invalid
                    hi -= 1
                } else {
                    width += 1
                    overflow = 1 << UInt16(width)
                }
            }
        }
    }
}
