/// Why bytes could not be decoded. Decoders never trap on input: a bad record is an error value.
package enum DecodeError: Error, Hashable, Sendable {
    /// The input ended inside a value.
    case truncated(at: Int)
    /// A value is present but impossible (unknown tag, length over its limit, bad UTF-8).
    case invalid(String, at: Int)
}

/// Appends little-endian fixed-width values.
package struct ByteWriter: Sendable {
    package private(set) var bytes: [UInt8] = []

    package init() {}

    package mutating func u8(_ value: UInt8) { bytes.append(value) }

    package mutating func u16(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
    }

    package mutating func u32(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    package mutating func u64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    /// Bytes as they are, no length.
    package mutating func raw(_ value: [UInt8]) { bytes.append(contentsOf: value) }

    /// Length-prefixed (u32) bytes.
    package mutating func blob(_ value: [UInt8]) {
        u32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    /// Length-prefixed (u16) UTF-8.
    package mutating func string(_ value: String) {
        let utf8 = Array(value.utf8)
        u16(UInt16(truncatingIfNeeded: utf8.count))
        bytes.append(contentsOf: utf8.prefix(Int(UInt16.max)))
    }
}

/// Reads what `ByteWriter` wrote, checking every length against the input and a limit.
package struct ByteReader: Sendable {
    package let bytes: [UInt8]
    package private(set) var offset: Int
    let end: Int

    package init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.offset = start
        self.end = min(end ?? bytes.count, bytes.count)
    }

    package var remaining: Int { max(end - offset, 0) }
    package var isAtEnd: Bool { offset >= end }

    mutating func take(_ count: Int) throws(DecodeError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else { throw .truncated(at: offset) }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    package mutating func u8() throws(DecodeError) -> UInt8 { try take(1).first! }

    package mutating func u16() throws(DecodeError) -> UInt16 {
        let slice = try take(2)
        return UInt16(slice[slice.startIndex]) | UInt16(slice[slice.startIndex + 1]) << 8
    }

    package mutating func u32() throws(DecodeError) -> UInt32 {
        var value: UInt32 = 0
        for (shift, byte) in zip(stride(from: 0, to: 32, by: 8), try take(4)) { value |= UInt32(byte) << UInt32(shift) }
        return value
    }

    package mutating func u64() throws(DecodeError) -> UInt64 {
        var value: UInt64 = 0
        for (shift, byte) in zip(stride(from: 0, to: 64, by: 8), try take(8)) { value |= UInt64(byte) << UInt64(shift) }
        return value
    }

    package mutating func blob(limit: Int) throws(DecodeError) -> [UInt8] {
        let start = offset
        let count = Int(try u32())
        guard count <= limit else { throw .invalid("length \(count) over limit \(limit)", at: start) }
        return Array(try take(count))
    }

    package mutating func string() throws(DecodeError) -> String {
        let start = offset
        let count = Int(try u16())
        let utf8 = try take(count)
        guard let value = String(validating: utf8, as: UTF8.self) else { throw .invalid("string is not UTF-8", at: start) }
        return value
    }
}
