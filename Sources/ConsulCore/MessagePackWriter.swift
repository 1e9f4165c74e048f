/// Appends msgpack to a byte array exactly as the old go-msgpack `MsgpackHandle` (the codec memberlist
/// and serf use, `WriteExt` false) does, so a Go peer sees byte-for-byte what a Go sender would send:
///
/// - unsigned and non-negative integers: the smallest of positive fixnum, `uint8..uint64`;
///   negative integers: the smallest of negative fixnum, `int8..int64` (Go never writes `int8` for a
///   positive value);
/// - strings and byte slices: old-spec raw — fixraw below 32 bytes, then raw16 (`0xda`), raw32
///   (`0xdb`); never `str8` (`0xd9`) or `bin`, which old decoders reject;
/// - arrays/maps: fix form below 16 entries, then 16/32-bit lengths;
/// - Go `float64` as `0xcb`, `float32` as `0xca`.
///
/// Structs are written as maps keyed by field name; callers write fields in Go's order (sorted by
/// name) so our output matches a Go sender's.
package struct MessagePackWriter: Sendable {
    package private(set) var bytes: [UInt8]

    package init(reservingCapacity capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Starts after `prefix` (for example a message type byte).
    package init(prefix: [UInt8]) {
        bytes = prefix
        bytes.reserveCapacity(prefix.count + 64)
    }

    package mutating func writeNil() {
        bytes.append(0xc0)
    }

    package mutating func writeBool(_ value: Bool) {
        bytes.append(value ? 0xc3 : 0xc2)
    }

    package mutating func writeUInt(_ value: UInt64) {
        switch value {
        case 0...0x7f:
            bytes.append(UInt8(value))
        case 0x80...0xff:
            bytes.append(0xcc)
            bytes.append(UInt8(value))
        case 0x100...0xffff:
            bytes.append(0xcd)
            appendBigEndian(UInt16(value))
        case 0x1_0000...0xffff_ffff:
            bytes.append(0xce)
            appendBigEndian(UInt32(value))
        default:
            bytes.append(0xcf)
            appendBigEndian(value)
        }
    }

    package mutating func writeUInt<T: UnsignedInteger & FixedWidthInteger>(_ value: T) {
        writeUInt(UInt64(value))
    }

    package mutating func writeInt(_ value: Int64) {
        switch value {
        case 0...:
            writeUInt(UInt64(value))
        case -32 ..< 0:
            bytes.append(UInt8(bitPattern: Int8(value)))
        case Int64(Int8.min)...:
            bytes.append(0xd0)
            bytes.append(UInt8(bitPattern: Int8(value)))
        case Int64(Int16.min)...:
            bytes.append(0xd1)
            appendBigEndian(UInt16(bitPattern: Int16(value)))
        case Int64(Int32.min)...:
            bytes.append(0xd2)
            appendBigEndian(UInt32(bitPattern: Int32(value)))
        default:
            bytes.append(0xd3)
            appendBigEndian(UInt64(bitPattern: value))
        }
    }

    package mutating func writeInt<T: SignedInteger & FixedWidthInteger>(_ value: T) {
        writeInt(Int64(value))
    }

    package mutating func writeFloat64(_ value: Double) {
        bytes.append(0xcb)
        appendBigEndian(value.bitPattern)
    }

    package mutating func writeFloat32(_ value: Float) {
        bytes.append(0xca)
        appendBigEndian(value.bitPattern)
    }

    /// Old-spec raw: what Go writes for both `string` and `[]byte`.
    package mutating func writeRaw<C: Collection>(_ raw: C) where C.Element == UInt8 {
        writeRawHeader(raw.count)
        bytes.append(contentsOf: raw)
    }

    package mutating func writeString(_ text: String) {
        var text = text
        text.withUTF8 { writeRaw($0) }
    }

    /// A Go `[]byte` field: empty is written as nil, as Go writes a nil slice (the zero value) and
    /// every Go decoder reads nil and empty raw identically.
    package mutating func writeBytesField(_ raw: [UInt8]) {
        if raw.isEmpty { writeNil() } else { writeRaw(raw) }
    }

    package mutating func writeRawHeader(_ length: Int) {
        switch length {
        case 0..<32:
            bytes.append(0xa0 | UInt8(length))
        case 32..<0x1_0000:
            bytes.append(0xda)
            appendBigEndian(UInt16(length))
        default:
            bytes.append(0xdb)
            appendBigEndian(checkedLength(length))
        }
    }

    package mutating func writeArrayHeader(_ count: Int) {
        writeContainerHeader(count, fixBase: 0x90, marker16: 0xdc, marker32: 0xdd)
    }

    package mutating func writeMapHeader(_ count: Int) {
        writeContainerHeader(count, fixBase: 0x80, marker16: 0xde, marker32: 0xdf)
    }

    /// Appends already-encoded msgpack (or any bytes) verbatim.
    package mutating func writeEncoded<C: Collection>(_ encoded: C) where C.Element == UInt8 {
        bytes.append(contentsOf: encoded)
    }

    /// A whole value tree. Maps keep their entry order; build them with `stringMap` for sorted keys.
    package mutating func write(_ value: MessagePackValue) {
        switch value {
        case .nil: writeNil()
        case .bool(let flag): writeBool(flag)
        case .int(let number): writeInt(number)
        case .uint(let number): writeUInt(number)
        case .float32(let number): writeFloat32(number)
        case .float64(let number): writeFloat64(number)
        case .raw(let raw): writeRaw(raw)
        case .array(let elements):
            writeArrayHeader(elements.count)
            for element in elements { write(element) }
        case .map(let entries):
            writeMapHeader(entries.count)
            for entry in entries {
                write(entry.key)
                write(entry.value)
            }
        case .ext(let type, let data):
            writeExt(type: type, data: data)
        }
    }

    /// Go's extension preamble (fixext for 1/2/4/8/16 bytes, else ext8/16/32). Only reachable from a
    /// decoded `.ext` value, so re-encoding what we read round-trips.
    private mutating func writeExt(type: Int8, data: [UInt8]) {
        let tag = UInt8(bitPattern: type)
        switch data.count {
        case 1: bytes.append(contentsOf: [0xd4, tag])
        case 2: bytes.append(contentsOf: [0xd5, tag])
        case 4: bytes.append(contentsOf: [0xd6, tag])
        case 8: bytes.append(contentsOf: [0xd7, tag])
        case 16: bytes.append(contentsOf: [0xd8, tag])
        case 0..<0x100: bytes.append(contentsOf: [0xc7, UInt8(data.count), tag])
        case 0x100..<0x1_0000:
            bytes.append(0xc8)
            appendBigEndian(UInt16(data.count))
            bytes.append(tag)
        default:
            bytes.append(0xc9)
            appendBigEndian(checkedLength(data.count))
            bytes.append(tag)
        }
        bytes.append(contentsOf: data)
    }

    private mutating func writeContainerHeader(_ count: Int, fixBase: UInt8, marker16: UInt8, marker32: UInt8) {
        switch count {
        case 0..<16:
            bytes.append(fixBase | UInt8(count))
        case 16..<0x1_0000:
            bytes.append(marker16)
            appendBigEndian(UInt16(count))
        default:
            bytes.append(marker32)
            appendBigEndian(checkedLength(count))
        }
    }

    /// Lengths come from our own in-memory values, which cannot reach 4 GiB here (every gossip
    /// payload is capped far below); exceeding it would be a programming error, not peer input.
    private func checkedLength(_ length: Int) -> UInt32 {
        guard let value = UInt32(exactly: length) else {
            preconditionFailure("msgpack length \(length) exceeds the 32-bit format")
        }
        return value
    }

    private mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        var big = value.bigEndian
        withUnsafeBytes(of: &big) { bytes.append(contentsOf: $0) }
    }
}
