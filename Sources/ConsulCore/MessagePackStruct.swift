/// A type that is a Go struct on the wire: a msgpack map keyed by Go field name.
///
/// Conformers write their fields in Go's order — go-msgpack sorts struct fields by name and leaves
/// out `omitempty` fields holding zero values — so our bytes equal a Go sender's; and they read with
/// `MessagePackReader.readStruct`, which skips unknown keys and leaves missing ones at their zero
/// value, the way Go's decoder does. Hand-written rather than `Codable`: these run for every gossip
/// packet and the field order is part of the wire contract.
package protocol MessagePackStruct {
    /// Appends this value as one msgpack map.
    func write(to writer: inout MessagePackWriter)
    /// Reads one msgpack map (or nil, giving the zero value).
    init(from reader: inout MessagePackReader) throws(MessagePackError)
}

extension MessagePackStruct {
    /// This value encoded on its own.
    package func messagePackEncoded() -> [UInt8] {
        var writer = MessagePackWriter()
        write(to: &writer)
        return writer.bytes
    }

    /// Decodes one value that fills `bytes` exactly.
    package init(messagePack bytes: [UInt8], limits: MessagePackLimits = .default) throws(MessagePackError) {
        var reader = try MessagePackReader(bytes, limits: limits)
        try self.init(from: &reader)
        try reader.expectEnd()
    }
}

extension MessagePackWriter {
    /// Writes a Go struct field name (map key).
    package mutating func writeKey(_ name: StaticString) {
        name.withUTF8Buffer { writeRaw($0) }
    }

    /// A `map[string]string` with keys sorted, so the output is deterministic (Go's own order is random).
    package mutating func writeStringMap(_ map: [String: String]) {
        writeMapHeader(map.count)
        for key in map.keys.sorted() {
            writeString(key)
            writeString(map[key]!)
        }
    }

    /// A Go `[]string`: nil when empty, as Go writes its zero value.
    package mutating func writeStringArray(_ strings: [String]) {
        if strings.isEmpty {
            writeNil()
            return
        }
        writeArrayHeader(strings.count)
        for string in strings { writeString(string) }
    }
}

extension MessagePackReader {
    /// A Go `map[string]string`; nil reads as empty, later duplicate keys win (as in Go).
    package mutating func readStringMap() throws(MessagePackError) -> [String: String] {
        let count = try readMapHeader()
        var map: [String: String] = [:]
        map.reserveCapacity(count)
        for _ in 0..<count {
            let key = try readString()
            map[key] = try readString()
        }
        return map
    }

    /// A Go `[]string`; nil reads as empty.
    package mutating func readStringArray() throws(MessagePackError) -> [String] {
        let count = try readArrayHeader()
        var strings: [String] = []
        strings.reserveCapacity(count)
        for _ in 0..<count { strings.append(try readString()) }
        return strings
    }

    /// A Go `[][]byte`; nil reads as empty.
    package mutating func readBytesArray() throws(MessagePackError) -> [[UInt8]] {
        let count = try readArrayHeader()
        var items: [[UInt8]] = []
        items.reserveCapacity(count)
        for _ in 0..<count { items.append(try readBytes()) }
        return items
    }

    /// A Go slice of structs; nil reads as empty.
    package mutating func readStructArray<T: MessagePackStruct>(_: T.Type = T.self) throws(MessagePackError) -> [T] {
        let count = try readArrayHeader()
        var items: [T] = []
        items.reserveCapacity(count)
        for _ in 0..<count { items.append(try T(from: &self)) }
        return items
    }
}
