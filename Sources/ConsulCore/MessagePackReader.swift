/// Reads msgpack from bytes a peer sent, field by field, with every length checked before use.
///
/// Accepts everything the old go-msgpack decoder accepts and the newer spec families too (`str8`,
/// `bin8/16/32`), because a raw field may come from a newer encoder. Like Go's decoder, `nil` reads
/// as the zero value of any scalar, string or byte field, and integer fields accept any integer
/// encoding that fits (a negative value into an unsigned field is an error, as in Go).
///
/// A failed read leaves the reader in an unspecified position; callers drop the whole message.
package struct MessagePackReader: Sendable {
    package let bytes: [UInt8]
    package private(set) var position: Int
    package let end: Int
    package let limits: MessagePackLimits

    /// Reads `bytes[range]` (whole array by default). Throws `inputTooLarge` above the limit.
    package init(_ bytes: [UInt8], range: Range<Int>? = nil, limits: MessagePackLimits = .default) throws(MessagePackError) {
        let span = range ?? bytes.startIndex..<bytes.endIndex
        guard span.lowerBound >= bytes.startIndex, span.upperBound <= bytes.endIndex else {
            throw MessagePackError.truncated(offset: bytes.count, needed: span.upperBound - bytes.endIndex)
        }
        guard span.count <= limits.maxInputBytes else {
            throw MessagePackError.inputTooLarge(size: span.count, limit: limits.maxInputBytes)
        }
        self.bytes = bytes
        self.position = span.lowerBound
        self.end = span.upperBound
        self.limits = limits
    }

    package var remaining: Int { end - position }
    package var isAtEnd: Bool { position >= end }

    /// Throws `trailingBytes` unless everything was consumed; for inputs that hold exactly one object.
    package func expectEnd() throws(MessagePackError) {
        if position < end { throw MessagePackError.trailingBytes(count: end - position) }
    }

    /// The next type byte without consuming it.
    package func peekByte() throws(MessagePackError) -> UInt8 {
        guard position < end else { throw MessagePackError.truncated(offset: position, needed: 1) }
        return bytes[position]
    }

    /// True (and consumed) when the next object is nil.
    package mutating func readNilIfPresent() throws(MessagePackError) -> Bool {
        if try peekByte() == 0xc0 {
            position += 1
            return true
        }
        return false
    }

    /// Takes `count` raw bytes that follow the current object (memberlist appends opaque user state
    /// after msgpack objects on TCP).
    package mutating func readTrailingBytes(_ count: Int) throws(MessagePackError) -> [UInt8] {
        guard count >= 0 else { throw MessagePackError.integerOverflow(offset: position) }
        try need(count)
        defer { position += count }
        return Array(bytes[position..<position + count])
    }

    // MARK: - Scalars

    package mutating func readBool() throws(MessagePackError) -> Bool {
        let start = position
        switch try readByte() {
        case 0xc2: return false
        case 0xc3: return true
        case 0xc0: return false
        case let other:
            throw MessagePackError.typeMismatch(expected: "bool", found: other, offset: start)
        }
    }

    /// Any msgpack integer converted to `T`, or `integerOverflow` when it does not fit.
    package mutating func readInteger<T: FixedWidthInteger>(_: T.Type = T.self) throws(MessagePackError) -> T {
        let start = position
        let marker = try readByte()
        let converted: T?
        switch marker {
        case 0x00...0x7f: converted = T(exactly: marker)
        case 0xe0...0xff: converted = T(exactly: Int8(bitPattern: marker))
        case 0xc0: converted = 0
        case 0xcc: converted = T(exactly: try readByte())
        case 0xcd: converted = T(exactly: try readBigEndian(UInt16.self))
        case 0xce: converted = T(exactly: try readBigEndian(UInt32.self))
        case 0xcf: converted = T(exactly: try readBigEndian(UInt64.self))
        case 0xd0: converted = T(exactly: Int8(bitPattern: try readByte()))
        case 0xd1: converted = T(exactly: Int16(bitPattern: try readBigEndian(UInt16.self)))
        case 0xd2: converted = T(exactly: Int32(bitPattern: try readBigEndian(UInt32.self)))
        case 0xd3: converted = T(exactly: Int64(bitPattern: try readBigEndian(UInt64.self)))
        default:
            throw MessagePackError.typeMismatch(expected: "integer", found: marker, offset: start)
        }
        guard let value = converted else { throw MessagePackError.integerOverflow(offset: start) }
        return value
    }

    /// A float64 field; float32 and integer encodings are widened (Go's decoder is as lenient).
    package mutating func readDouble() throws(MessagePackError) -> Double {
        let start = position
        switch try peekByte() {
        case 0xcb:
            position += 1
            return Double(bitPattern: try readBigEndian(UInt64.self))
        case 0xca:
            position += 1
            return Double(Float(bitPattern: try readBigEndian(UInt32.self)))
        case 0x00...0x7f, 0xe0...0xff, 0xc0, 0xcc...0xd3:
            return Double(try readInteger(Int64.self))
        case let other:
            throw MessagePackError.typeMismatch(expected: "float", found: other, offset: start)
        }
    }

    // MARK: - Raw (strings and byte slices)

    /// A Go `[]byte` or `string` body: raw/str (fix, 8, 16, 32) or bin (8, 16, 32); nil reads as empty.
    package mutating func readBytes() throws(MessagePackError) -> [UInt8] {
        let range = try readRawRange()
        return Array(bytes[range])
    }

    /// A Go `string` field. Go strings may hold any bytes; ours are validated UTF-8 instead of
    /// repaired, because repairing would silently rename a node (and break the name we gossip on).
    package mutating func readString() throws(MessagePackError) -> String {
        let range = try readRawRange()
        guard let text = String(validating: bytes[range], as: UTF8.self) else {
            throw MessagePackError.invalidUTF8(offset: range.lowerBound)
        }
        return text
    }

    /// Where the next raw/str/bin body lies in `bytes`, consumed; lets hot paths compare keys without copying.
    package mutating func readRawRange() throws(MessagePackError) -> Range<Int> {
        let start = position
        let marker = try readByte()
        let length: Int
        switch marker {
        case 0xa0...0xbf: length = Int(marker & 0x1f)
        case 0xc0: length = 0
        case 0xd9, 0xc4: length = Int(try readByte())
        case 0xda, 0xc5: length = Int(try readBigEndian(UInt16.self))
        case 0xdb, 0xc6: length = Int(try readBigEndian(UInt32.self))
        default:
            throw MessagePackError.typeMismatch(expected: "raw", found: marker, offset: start)
        }
        guard length <= limits.maxRawLength else {
            throw MessagePackError.rawTooLong(length: length, limit: limits.maxRawLength)
        }
        try need(length)
        defer { position += length }
        return position..<position + length
    }

    // MARK: - Containers

    /// Element count of an array (nil reads as 0), checked against the limit and the bytes left.
    package mutating func readArrayHeader() throws(MessagePackError) -> Int {
        try readContainerHeader(fixBase: 0x90, marker16: 0xdc, marker32: 0xdd, bytesPerElement: 1, name: "array")
    }

    /// Entry count of a map (nil reads as 0), checked against the limit and the bytes left.
    package mutating func readMapHeader() throws(MessagePackError) -> Int {
        try readContainerHeader(fixBase: 0x80, marker16: 0xde, marker32: 0xdf, bytesPerElement: 2, name: "map")
    }

    /// Reads a map encoding a Go struct: for each entry the key is read as a string and `field` is
    /// called to consume the value. `field` must read or `skipValue()` exactly one object; unknown
    /// keys are skipped, as Go ignores fields it does not know. nil reads as an empty struct.
    package mutating func readStruct(_ field: (String, inout MessagePackReader) throws(MessagePackError) -> Void) throws(MessagePackError) {
        let count = try readMapHeader()
        for _ in 0..<count {
            // A key that is not UTF-8 cannot name one of our fields: pass "" so it is skipped as
            // unknown, as Go would, rather than failing the whole struct.
            let keyRange = try readRawRange()
            let key = String(validating: bytes[keyRange], as: UTF8.self) ?? ""
            try field(key, &self)
        }
    }

    /// Skips one object of any type, bounded by `limits.maxDepth`.
    package mutating func skipValue() throws(MessagePackError) {
        try skipValue(depth: 0)
    }

    /// Reads one object of any type into a tree, bounded by the limits.
    package mutating func readValue() throws(MessagePackError) -> MessagePackValue {
        try readValue(depth: 0)
    }

    /// `depth` counts the containers around the current object; only containers are limited.
    private mutating func skipValue(depth: Int) throws(MessagePackError) {
        let start = position
        let marker = try peekByte()
        switch marker {
        case 0x00...0x7f, 0xe0...0xff, 0xc0, 0xc2, 0xc3:
            position += 1
        case 0xcc, 0xd0: try skip(2)
        case 0xcd, 0xd1: try skip(3)
        case 0xca, 0xce, 0xd2: try skip(5)
        case 0xcb, 0xcf, 0xd3: try skip(9)
        case 0xa0...0xbf, 0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6:
            _ = try readRawRange()
        case 0xd4...0xd8, 0xc7, 0xc8, 0xc9:
            _ = try readExt()
        case 0x90...0x9f, 0xdc, 0xdd:
            try checkDepth(depth)
            let count = try readArrayHeader()
            for _ in 0..<count { try skipValue(depth: depth + 1) }
        case 0x80...0x8f, 0xde, 0xdf:
            try checkDepth(depth)
            let count = try readMapHeader()
            for _ in 0..<count {
                try skipValue(depth: depth + 1)
                try skipValue(depth: depth + 1)
            }
        default:
            throw MessagePackError.invalidTypeByte(marker, offset: start)
        }
    }

    private mutating func readValue(depth: Int) throws(MessagePackError) -> MessagePackValue {
        let start = position
        let marker = try peekByte()
        switch marker {
        case 0xc0:
            position += 1
            return .nil
        case 0xc2, 0xc3:
            position += 1
            return .bool(marker == 0xc3)
        case 0x00...0x7f, 0xcc...0xcf:
            return .uint(try readInteger(UInt64.self))
        case 0xe0...0xff, 0xd0...0xd3:
            let value = try readInteger(Int64.self)
            return value >= 0 ? .uint(UInt64(value)) : .int(value)
        case 0xca:
            position += 1
            return .float32(Float(bitPattern: try readBigEndian(UInt32.self)))
        case 0xcb:
            position += 1
            return .float64(Double(bitPattern: try readBigEndian(UInt64.self)))
        case 0xa0...0xbf, 0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6:
            return .raw(try readBytes())
        case 0xd4...0xd8, 0xc7, 0xc8, 0xc9:
            let (type, data) = try readExt()
            return .ext(type: type, data: data)
        case 0x90...0x9f, 0xdc, 0xdd:
            try checkDepth(depth)
            let count = try readArrayHeader()
            var elements: [MessagePackValue] = []
            elements.reserveCapacity(count)
            for _ in 0..<count { elements.append(try readValue(depth: depth + 1)) }
            return .array(elements)
        case 0x80...0x8f, 0xde, 0xdf:
            try checkDepth(depth)
            let count = try readMapHeader()
            var entries: [MessagePackMapEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let key = try readValue(depth: depth + 1)
                let value = try readValue(depth: depth + 1)
                entries.append(MessagePackMapEntry(key: key, value: value))
            }
            return .map(entries)
        default:
            throw MessagePackError.invalidTypeByte(marker, offset: start)
        }
    }

    private func checkDepth(_ depth: Int) throws(MessagePackError) {
        if depth >= limits.maxDepth { throw MessagePackError.depthLimitExceeded(limit: limits.maxDepth) }
    }

    private mutating func readExt() throws(MessagePackError) -> (Int8, [UInt8]) {
        let marker = try readByte()
        let length: Int
        switch marker {
        case 0xd4: length = 1
        case 0xd5: length = 2
        case 0xd6: length = 4
        case 0xd7: length = 8
        case 0xd8: length = 16
        case 0xc7: length = Int(try readByte())
        case 0xc8: length = Int(try readBigEndian(UInt16.self))
        default: length = Int(try readBigEndian(UInt32.self))  // 0xc9, the only caller-admitted rest
        }
        guard length <= limits.maxRawLength else {
            throw MessagePackError.rawTooLong(length: length, limit: limits.maxRawLength)
        }
        let type = Int8(bitPattern: try readByte())
        try need(length)
        defer { position += length }
        return (type, Array(bytes[position..<position + length]))
    }

    private mutating func readContainerHeader(
        fixBase: UInt8, marker16: UInt8, marker32: UInt8, bytesPerElement: Int, name: String
    ) throws(MessagePackError) -> Int {
        let start = position
        let marker = try readByte()
        let count: Int
        switch marker {
        case fixBase...(fixBase | 0x0f): count = Int(marker & 0x0f)
        case 0xc0: count = 0
        case marker16: count = Int(try readBigEndian(UInt16.self))
        case marker32: count = Int(try readBigEndian(UInt32.self))
        default:
            throw MessagePackError.typeMismatch(expected: name, found: marker, offset: start)
        }
        guard count <= limits.maxCollectionCount else {
            throw MessagePackError.collectionTooLarge(count: count, limit: limits.maxCollectionCount)
        }
        // Every element takes at least one byte: a count the input cannot hold is rejected before
        // anyone reserves capacity for it.
        let minimum = count * bytesPerElement
        if minimum > remaining {
            throw MessagePackError.truncated(offset: position, needed: minimum - remaining)
        }
        return count
    }

    // MARK: - Bytes

    private mutating func need(_ count: Int) throws(MessagePackError) {
        if count > end - position {
            throw MessagePackError.truncated(offset: position, needed: count - (end - position))
        }
    }

    private mutating func skip(_ count: Int) throws(MessagePackError) {
        try need(count)
        position += count
    }

    private mutating func readByte() throws(MessagePackError) -> UInt8 {
        try need(1)
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func readBigEndian<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) throws(MessagePackError) -> T {
        let size = MemoryLayout<T>.size
        try need(size)
        var value: T = 0
        for index in position..<position + size {
            value = value << 8 | T(bytes[index])
        }
        position += size
        return value
    }
}

extension MessagePackValue {
    /// Decodes exactly one object from `bytes` (trailing bytes are an error).
    package static func decode(_ bytes: [UInt8], limits: MessagePackLimits = .default) throws(MessagePackError) -> MessagePackValue {
        var reader = try MessagePackReader(bytes, limits: limits)
        let value = try reader.readValue()
        try reader.expectEnd()
        return value
    }

    /// The Go-compatible encoding of this value.
    package var encoded: [UInt8] {
        var writer = MessagePackWriter()
        writer.write(self)
        return writer.bytes
    }
}
