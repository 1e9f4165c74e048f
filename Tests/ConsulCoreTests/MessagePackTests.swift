import Testing
@testable import ConsulCore

/// Encodings pinned to go-msgpack's `MsgpackHandle` rules (msgpack.go encodeUint/encodeInt/
/// writeContainerLen with WriteExt false): if one of these changes, Go peers see different bytes.
@Suite struct MessagePackEncodingTests {
    private func encode(_ body: (inout MessagePackWriter) -> Void) -> [UInt8] {
        var writer = MessagePackWriter()
        body(&writer)
        return writer.bytes
    }

    @Test func unsignedIntegersUseTheSmallestGoEncoding() {
        #expect(encode { $0.writeUInt(UInt64(0)) } == [0x00])
        #expect(encode { $0.writeUInt(UInt64(127)) } == [0x7f])
        #expect(encode { $0.writeUInt(UInt64(128)) } == [0xcc, 0x80])
        #expect(encode { $0.writeUInt(UInt64(255)) } == [0xcc, 0xff])
        #expect(encode { $0.writeUInt(UInt64(256)) } == [0xcd, 0x01, 0x00])
        #expect(encode { $0.writeUInt(UInt64(65_535)) } == [0xcd, 0xff, 0xff])
        #expect(encode { $0.writeUInt(UInt64(65_536)) } == [0xce, 0x00, 0x01, 0x00, 0x00])
        #expect(encode { $0.writeUInt(UInt64(UInt32.max)) } == [0xce, 0xff, 0xff, 0xff, 0xff])
        #expect(encode { $0.writeUInt(UInt64(UInt32.max) + 1) } == [0xcf, 0, 0, 0, 1, 0, 0, 0, 0])
    }

    @Test func signedIntegersFollowGo() {
        // Non-negative signed values go through the unsigned path (never int8 for positives).
        #expect(encode { $0.writeInt(Int64(100)) } == [0x64])
        #expect(encode { $0.writeInt(Int64(200)) } == [0xcc, 0xc8])
        #expect(encode { $0.writeInt(Int64(-1)) } == [0xff])
        #expect(encode { $0.writeInt(Int64(-32)) } == [0xe0])
        #expect(encode { $0.writeInt(Int64(-33)) } == [0xd0, 0xdf])
        #expect(encode { $0.writeInt(Int64(-128)) } == [0xd0, 0x80])
        #expect(encode { $0.writeInt(Int64(-129)) } == [0xd1, 0xff, 0x7f])
        #expect(encode { $0.writeInt(Int64(-32_769)) } == [0xd2, 0xff, 0xff, 0x7f, 0xff])
        #expect(encode { $0.writeInt(Int64.min) } == [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func rawUsesOldSpecFamilyWithoutStr8() {
        #expect(encode { $0.writeString("") } == [0xa0])
        #expect(encode { $0.writeString("abc") } == [0xa3, 0x61, 0x62, 0x63])
        let thirtyOne = [UInt8](repeating: 7, count: 31)
        #expect(encode { $0.writeRaw(thirtyOne) } == [0xbf] + thirtyOne)
        // 32..255 bytes: raw16, never str8 (0xd9) which old decoders reject.
        let thirtyTwo = [UInt8](repeating: 7, count: 32)
        #expect(encode { $0.writeRaw(thirtyTwo) } == [0xda, 0x00, 0x20] + thirtyTwo)
        let big = [UInt8](repeating: 1, count: 70_000)
        #expect(Array(encode { $0.writeRaw(big) }.prefix(5)) == [0xdb, 0x00, 0x01, 0x11, 0x70])
        #expect(encode { $0.writeBytesField([]) } == [0xc0])
    }

    @Test func containerHeaders() {
        #expect(encode { $0.writeArrayHeader(0) } == [0x90])
        #expect(encode { $0.writeArrayHeader(15) } == [0x9f])
        #expect(encode { $0.writeArrayHeader(16) } == [0xdc, 0x00, 0x10])
        #expect(encode { $0.writeArrayHeader(70_000) } == [0xdd, 0x00, 0x01, 0x11, 0x70])
        #expect(encode { $0.writeMapHeader(15) } == [0x8f])
        #expect(encode { $0.writeMapHeader(16) } == [0xde, 0x00, 0x10])
    }

    @Test func floats() {
        #expect(encode { $0.writeFloat64(1.5) } == [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0])
        #expect(encode { $0.writeFloat32(1.5) } == [0xca, 0x3f, 0xc0, 0, 0])
    }

    @Test func stringMapIsSortedByKey() {
        let value = MessagePackValue.stringMap(["b": .uint(2), "a": .uint(1), "c": .nil])
        #expect(value.encoded == [0x83, 0xa1, 0x61, 0x01, 0xa1, 0x62, 0x02, 0xa1, 0x63, 0xc0])
    }
}

@Suite struct MessagePackDecodingTests {
    @Test func acceptsNewSpecStringAndBinaryFamilies() throws {
        #expect(try MessagePackValue.decode([0xd9, 0x02, 0x68, 0x69]) == .string("hi"))
        #expect(try MessagePackValue.decode([0xc4, 0x01, 0xff]) == .raw([0xff]))
        #expect(try MessagePackValue.decode([0xc5, 0x00, 0x01, 0xfe]) == .raw([0xfe]))
        #expect(try MessagePackValue.decode([0xc6, 0x00, 0x00, 0x00, 0x01, 0xfd]) == .raw([0xfd]))
    }

    @Test func integersNormaliseAcrossWidths() throws {
        #expect(try MessagePackValue.decode([0xd0, 0x05]) == .uint(5))
        #expect(try MessagePackValue.decode([0xcf, 0, 0, 0, 0, 0, 0, 0, 5]) == .uint(5))
        #expect(try MessagePackValue.decode([0xd1, 0xff, 0x7f]) == .int(-129))
    }

    @Test func integerFieldsRejectWhatDoesNotFit() throws {
        var negative = try MessagePackReader([0xff])
        #expect(throws: MessagePackError.integerOverflow(offset: 0)) { try negative.readInteger(UInt32.self) }
        var wide = try MessagePackReader([0xce, 0x00, 0x01, 0x00, 0x00])
        #expect(throws: MessagePackError.integerOverflow(offset: 0)) { try wide.readInteger(UInt16.self) }
        var fits = try MessagePackReader([0xd2, 0x00, 0x00, 0x01, 0x00])
        #expect(try fits.readInteger(UInt16.self) == 256)
        var nilIsZero = try MessagePackReader([0xc0])
        #expect(try nilIsZero.readInteger(UInt32.self) == 0)
        var text = try MessagePackReader([0xa1, 0x31])
        #expect(throws: MessagePackError.typeMismatch(expected: "integer", found: 0xa1, offset: 0)) {
            try text.readInteger(Int.self)
        }
    }

    @Test func structReadingSkipsUnknownFieldsAndDefaultsMissingOnes() throws {
        var writer = MessagePackWriter()
        writer.writeMapHeader(3)
        writer.writeString("Extra")
        writer.write(.array([.uint(1), .stringMap(["x": .nil])]))
        writer.writeString("Node")
        writer.writeString("n1")
        writer.writeString("Unused")
        writer.writeFloat64(2)
        var reader = try MessagePackReader(writer.bytes)
        var node = ""
        var seq: UInt32 = 9
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "Node": node = try reader.readString()
            case "SeqNo": seq = try reader.readInteger()
            default: try reader.skipValue()
            }
        }
        try reader.expectEnd()
        #expect(node == "n1")
        #expect(seq == 9)
    }

    @Test func stringsMustBeUTF8ButKeysAreOnlyMatched() throws {
        var bad = try MessagePackReader([0xA2, 0xC3, 0x28])
        #expect(throws: MessagePackError.invalidUTF8(offset: 1)) { try bad.readString() }
        var bytesAreFine = try MessagePackReader([0xA2, 0xC3, 0x28])
        #expect(try bytesAreFine.readBytes() == [0xC3, 0x28])
        // A struct with a non-UTF-8 key: the entry is skipped as unknown, the rest still read.
        var reader = try MessagePackReader([0x82, 0xA2, 0xFF, 0xFE, 0x01, 0xA1, 0x41, 0x02])
        var seen: [String] = []
        var value = 0
        try reader.readStruct { key, reader throws(MessagePackError) in
            seen.append(key)
            if key == "A" { value = try reader.readInteger() } else { try reader.skipValue() }
        }
        #expect(seen == ["", "A"])
        #expect(value == 2)
        #expect(MessagePackValue.raw([0xFF]).stringValue == nil)
        #expect(MessagePackValue.string("héllo").stringValue == "héllo")
    }

    @Test func unusedTypeByteIsATypedError() {
        #expect(throws: MessagePackError.invalidTypeByte(0xc1, offset: 0)) { try MessagePackValue.decode([0xc1]) }
    }

    @Test func trailingBytesAreReported() {
        #expect(throws: MessagePackError.trailingBytes(count: 1)) { try MessagePackValue.decode([0x01, 0x02]) }
    }

    @Test func forgedLengthsFailBeforeAllocating() {
        // A 4-billion-element array in five bytes must not reserve memory.
        #expect(throws: MessagePackError.self) { try MessagePackValue.decode([0xdd, 0xff, 0xff, 0xff, 0xff]) }
        #expect(throws: MessagePackError.rawTooLong(length: 0xffff_ffff, limit: MessagePackLimits.default.maxRawLength)) {
            try MessagePackValue.decode([0xdb, 0xff, 0xff, 0xff, 0xff])
        }
        #expect(throws: MessagePackError.truncated(offset: 5, needed: 999)) {
            try MessagePackValue.decode([0xdb, 0x00, 0x00, 0x03, 0xe8, 0x41])
        }
    }

    @Test func limitsAreEnforced() throws {
        let tight = MessagePackLimits(maxDepth: 3, maxCollectionCount: 4, maxRawLength: 8, maxInputBytes: 64)
        let deep: [UInt8] = [0x91, 0x91, 0x91, 0x91, 0x01]
        #expect(throws: MessagePackError.depthLimitExceeded(limit: 3)) { try MessagePackValue.decode(deep, limits: tight) }
        #expect(try MessagePackValue.decode(Array(deep.dropFirst()), limits: tight) == .array([.array([.array([.uint(1)])])]))
        #expect(throws: MessagePackError.collectionTooLarge(count: 5, limit: 4)) {
            try MessagePackValue.decode([0x95, 1, 2, 3, 4, 5], limits: tight)
        }
        #expect(throws: MessagePackError.rawTooLong(length: 9, limit: 8)) {
            try MessagePackValue.decode([0xa9] + [UInt8](repeating: 0x41, count: 9), limits: tight)
        }
        #expect(throws: MessagePackError.inputTooLarge(size: 65, limit: 64)) {
            try MessagePackValue.decode([UInt8](repeating: 0, count: 65), limits: tight)
        }
    }

    @Test func everyPrefixOfAValidObjectIsTruncated() throws {
        let value = MessagePackValue.stringMap([
            "Name": .string("node-1"), "Port": .uint(7946), "Vec": .array([.float64(0.25), .float32(-1)]),
            "Neg": .int(-70_000), "Ext": .ext(type: 5, data: [1, 2, 3]), "Flag": .bool(true),
        ])
        let bytes = value.encoded
        #expect(try MessagePackValue.decode(bytes) == value)
        for cut in 0..<bytes.count {
            #expect(throws: MessagePackError.self) { try MessagePackValue.decode(Array(bytes.prefix(cut))) }
            var reader = try MessagePackReader(Array(bytes.prefix(cut)))
            #expect(throws: MessagePackError.self) { try reader.skipValue() }
        }
    }
}

@Suite struct MessagePackRoundTripTests {
    /// A random value tree of bounded size and depth.
    private func randomValue(_ random: inout SeededRandom, depth: Int) -> MessagePackValue {
        let choice = random.next() % (depth > 3 ? 8 : 10)
        switch choice {
        case 0: return .nil
        case 1: return .bool(random.next() & 1 == 0)
        case 2: return .uint(random.next() >> (random.next() % 64))
        case 3: return .int(-1 - Int64(random.next() >> (1 + random.next() % 63)))
        case 4: return .float64(Double(bitPattern: random.next() & 0x7fef_ffff_ffff_ffff))
        case 5: return .float32(Float(bitPattern: UInt32(truncatingIfNeeded: random.next()) & 0x7f7f_ffff))
        case 6:
            let length = [0, 1, 31, 32, 255, 256, 3000][Int(random.next() % 7)]
            return .raw((0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        case 7: return .ext(type: Int8(truncatingIfNeeded: random.next()), data: [UInt8](repeating: 3, count: Int(random.next() % 20)))
        case 8:
            let count = [0, 3, 15, 16, 40][Int(random.next() % 5)]
            return .array((0..<count).map { _ in randomValue(&random, depth: depth + 1) })
        default:
            let count = [0, 2, 15, 16][Int(random.next() % 4)]
            return .map((0..<count).map { _ in
                MessagePackMapEntry(key: randomValue(&random, depth: depth + 1), value: randomValue(&random, depth: depth + 1))
            })
        }
    }

    @Test func randomTreesRoundTrip() throws {
        var random = SeededRandom(seed: 0x6d73_6770)
        for _ in 0..<300 {
            let value = randomValue(&random, depth: 0)
            let bytes = value.encoded
            let decoded = try MessagePackValue.decode(bytes)
            #expect(decoded == value)
            #expect(decoded.encoded == bytes)
        }
    }

    @Test func raw32AndLargeContainersRoundTrip() throws {
        let value = MessagePackValue.array([
            .raw([UInt8](repeating: 0x5a, count: 70_000)),
            .array([MessagePackValue](repeating: .uint(1), count: 70_000)),
            .map((0..<70).map { MessagePackMapEntry(key: .uint(UInt64($0)), value: .nil) }),
        ])
        #expect(try MessagePackValue.decode(value.encoded) == value)
    }

    /// Seeded fuzz: random and mutated inputs must end in a value or a `MessagePackError`, nothing else.
    @Test func randomAndMutatedInputsNeverCrash() throws {
        var random = SeededRandom(seed: 0xf022)
        var seeds: [[UInt8]] = []
        for _ in 0..<40 { seeds.append(randomValue(&random, depth: 2).encoded) }
        var decoded = 0
        for round in 0..<6000 {
            var input: [UInt8]
            if round % 3 == 0 {
                input = (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                input = seeds[Int(random.next() % UInt64(seeds.count))]
                if input.count > 2000 { input = Array(input.prefix(2000)) }
                for _ in 0...(random.next() % 4) where !input.isEmpty {
                    let index = Int(random.next() % UInt64(input.count))
                    switch random.next() % 3 {
                    case 0: input[index] = UInt8(truncatingIfNeeded: random.next())
                    case 1: input.remove(at: index)
                    default: input.insert(UInt8(truncatingIfNeeded: random.next()), at: index)
                    }
                }
            }
            let value: MessagePackValue
            do {
                value = try MessagePackValue.decode(input)
            } catch {
                _ = error as MessagePackError  // typed: nothing else can come out
                continue
            }
            decoded += 1
            // Whatever decodes re-encodes to something that decodes to the same tree.
            #expect(try MessagePackValue.decode(value.encoded) == value || value.containsNaN)
        }
        #expect(decoded > 0)
    }
}

extension MessagePackValue {
    /// NaN never equals itself, so trees holding one cannot be compared for equality.
    fileprivate var containsNaN: Bool {
        switch self {
        case .float32(let value): return value.isNaN
        case .float64(let value): return value.isNaN
        case .array(let elements): return elements.contains { $0.containsNaN }
        case .map(let entries): return entries.contains { $0.key.containsNaN || $0.value.containsNaN }
        default: return false
        }
    }
}

/// A small Go-like struct exercising the `MessagePackStruct` helpers.
private struct Sample: MessagePackStruct, Equatable {
    var name = ""
    var tags: [String: String] = [:]
    var list: [String] = []
    var blobs: [[UInt8]] = []
    var children: [Child] = []

    struct Child: MessagePackStruct, Equatable {
        var id: UInt16 = 0
        func write(to writer: inout MessagePackWriter) {
            writer.writeMapHeader(1)
            writer.writeKey("ID"); writer.writeUInt(id)
        }
        init(id: UInt16) { self.id = id }
        init(from reader: inout MessagePackReader) throws(MessagePackError) {
            try reader.readStruct { key, reader throws(MessagePackError) in
                if key == "ID" { id = try reader.readInteger() } else { try reader.skipValue() }
            }
        }
    }

    init() {}

    func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(5)
        writer.writeKey("Blobs")
        writer.writeArrayHeader(blobs.count)
        for blob in blobs { writer.writeRaw(blob) }
        writer.writeKey("Children")
        writer.writeArrayHeader(children.count)
        for child in children { child.write(to: &writer) }
        writer.writeKey("List"); writer.writeStringArray(list)
        writer.writeKey("Name"); writer.writeString(name)
        writer.writeKey("Tags"); writer.writeStringMap(tags)
    }

    init(from reader: inout MessagePackReader) throws(MessagePackError) {
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "Blobs": blobs = try reader.readBytesArray()
            case "Children": children = try reader.readStructArray()
            case "List": list = try reader.readStringArray()
            case "Name": name = try reader.readString()
            case "Tags": tags = try reader.readStringMap()
            default: try reader.skipValue()
            }
        }
    }
}

@Suite struct MessagePackStructTests {
    @Test func helpersRoundTripAndAreDeterministic() throws {
        var sample = Sample()
        sample.name = "x"
        sample.tags = ["z": "1", "a": "2", "m": "3"]
        sample.list = ["p", "q"]
        sample.blobs = [[1, 2], []]
        sample.children = [.init(id: 1), .init(id: 300)]
        let bytes = sample.messagePackEncoded()
        #expect(try Sample(messagePack: bytes) == sample)
        // Tags are written sorted, whatever order the dictionary iterates in.
        let tagsValue = try MessagePackValue.decode(bytes)["Tags"]
        #expect(tagsValue == .stringMap(["a": .string("2"), "m": .string("3"), "z": .string("1")]))
        // An empty []string is written as nil, Go's zero value, and read back as empty.
        #expect(try MessagePackValue.decode(Sample().messagePackEncoded())["List"] == .nil)
        #expect(try Sample(messagePack: Sample().messagePackEncoded()) == Sample())
        #expect(throws: MessagePackError.trailingBytes(count: 1)) { try Sample(messagePack: bytes + [0]) }
        #expect(try Sample(messagePack: [0xC0]) == Sample())
    }
}
