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
    package static func decompress<C: Collection>(_ input: C, maxOutput: Int) throws(LZWError) -> [UInt8]
    where C.Element == UInt8, C.Index == Int {
        let clear = UInt16(clearCode)
        let end = UInt16(endCode)
        let invalid: UInt16 = 0xFFFF
        var suffix = [UInt8](repeating: 0, count: 1 << maxWidth)
        var prefix = [UInt16](repeating: 0, count: 1 << maxWidth)
        var scratch = [UInt8](repeating: 0, count: 1 << maxWidth)
        var output: [UInt8] = []
        output.reserveCapacity(min(maxOutput, input.count * 3))

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
                // Walk the chain backwards into `scratch`; every prefix points to a lower code, so
                // the walk ends within 4096 steps.
                var cursor = code
                var index = scratch.count - 1
                if code == hi && last != invalid {
                    var first = last
                    while first >= clear { first = prefix[Int(first)] }
                    scratch[index] = UInt8(first)
                    index -= 1
                    cursor = last
                }
                while cursor >= clear {
                    scratch[index] = suffix[Int(cursor)]
                    index -= 1
                    cursor = prefix[Int(cursor)]
                }
                scratch[index] = UInt8(cursor)
                let produced = scratch.count - index
                guard produced <= maxOutput - output.count else { throw .outputTooLarge(limit: maxOutput) }
                output.append(contentsOf: scratch[index...])
                if last != invalid {
                    suffix[Int(hi)] = UInt8(cursor)
                    prefix[Int(hi)] = last
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
