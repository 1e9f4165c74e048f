/// One msgpack object as a tree, for payloads whose shape is not known in advance (serf tags,
/// diagnostics, fuzzing). Hot paths read and write fields directly with `MessagePackReader` /
/// `MessagePackWriter` and never build this tree.
///
/// Strings and byte slices share one case, `.raw`, because the old msgpack spec that memberlist and
/// serf speak (go-msgpack `MsgpackHandle` with `WriteExt` off) writes both as "raw": the bytes on the
/// wire do not say which one the sender meant, only the receiving struct does.
///
/// Integers are normalised on decode: every non-negative integer becomes `.uint`, every negative one
/// `.int`, whatever width the sender chose, so two encodings of the same number compare equal.
package enum MessagePackValue: Hashable, Sendable {
    case `nil`
    case bool(Bool)
    /// A negative integer (decoders never produce `.int` for values `>= 0`).
    case int(Int64)
    case uint(UInt64)
    case float32(Float)
    case float64(Double)
    /// Old-spec raw bytes: a Go `string` or `[]byte` (also what `str8` and `bin` decode to).
    case raw([UInt8])
    case array([MessagePackValue])
    /// Entries in wire order; keys are not required to be unique or strings.
    case map([MessagePackMapEntry])
    /// Never written by Go's `MsgpackHandle`, accepted on decode so a stray ext cannot break parsing.
    case ext(type: Int8, data: [UInt8])

    /// A raw value holding the UTF-8 bytes of `text`.
    package static func string(_ text: String) -> MessagePackValue {
        .raw(Array(text.utf8))
    }

    /// A map whose entries are sorted by key, so output never depends on `Dictionary` order.
    package static func stringMap(_ dictionary: [String: MessagePackValue]) -> MessagePackValue {
        .map(dictionary.keys.sorted().map { MessagePackMapEntry(key: .string($0), value: dictionary[$0]!) })
    }

    /// The raw bytes as a string; nil for other types and for bytes that are not valid UTF-8.
    package var stringValue: String? {
        if case .raw(let bytes) = self { return String(validating: bytes, as: UTF8.self) }
        return nil
    }

    /// The value as a signed 64-bit integer when it is an integer that fits.
    package var int64Value: Int64? {
        switch self {
        case .int(let value): return value
        case .uint(let value): return Int64(exactly: value)
        default: return nil
        }
    }

    /// The value as an unsigned 64-bit integer when it is a non-negative integer.
    package var uint64Value: UInt64? {
        switch self {
        case .uint(let value): return value
        case .int(let value): return UInt64(exactly: value)
        default: return nil
        }
    }

    /// The value of the first entry whose key is the string `key`, for maps.
    package subscript(key: String) -> MessagePackValue? {
        guard case .map(let entries) = self else { return nil }
        let wanted = Array(key.utf8)
        return entries.first { $0.key == .raw(wanted) }?.value
    }
}

/// One key/value pair of a msgpack map (a struct rather than a tuple so the enum stays `Hashable`).
package struct MessagePackMapEntry: Hashable, Sendable {
    package var key: MessagePackValue
    package var value: MessagePackValue

    package init(key: MessagePackValue, value: MessagePackValue) {
        self.key = key
        self.value = value
    }
}

/// Bounds applied while decoding bytes from a peer. Every length on the wire is checked against
/// these and against the bytes actually present before anything is allocated, so a forged length
/// cannot make us reserve memory or recurse without bound.
package struct MessagePackLimits: Sendable, Equatable {
    /// Deepest nesting of arrays/maps accepted by `readValue` and `skipValue`.
    package var maxDepth: Int
    /// Largest element count of one array or map (entries for maps).
    package var maxCollectionCount: Int
    /// Largest single raw/str/bin/ext payload.
    package var maxRawLength: Int
    /// Largest input a reader accepts at all.
    package var maxInputBytes: Int

    package init(maxDepth: Int, maxCollectionCount: Int, maxRawLength: Int, maxInputBytes: Int) {
        self.maxDepth = maxDepth
        self.maxCollectionCount = maxCollectionCount
        self.maxRawLength = maxRawLength
        self.maxInputBytes = maxInputBytes
    }

    /// Sized for memberlist: the largest legitimate input is a TCP push/pull of at most 20 MiB.
    package static let `default` = MessagePackLimits(
        maxDepth: 32,
        maxCollectionCount: 1 << 20,
        maxRawLength: 20 * 1024 * 1024,
        maxInputBytes: 20 * 1024 * 1024 + 1024
    )
}

/// Why decoding failed. Every malformed input ends in one of these, never in a trap.
package enum MessagePackError: Error, Equatable, Sendable {
    /// The input ended at `offset` while `needed` more bytes were required. On a stream this means
    /// "wait for more data"; on a datagram it means the packet is bad.
    case truncated(offset: Int, needed: Int)
    /// `0xc1` (never used) or another byte that cannot start an object here.
    case invalidTypeByte(UInt8, offset: Int)
    /// The object at `offset` has a different type (`found` is its first byte) than the field needs.
    case typeMismatch(expected: String, found: UInt8, offset: Int)
    /// An integer does not fit the field (negative into unsigned, or too wide).
    case integerOverflow(offset: Int)
    case depthLimitExceeded(limit: Int)
    case collectionTooLarge(count: Int, limit: Int)
    case rawTooLong(length: Int, limit: Int)
    case inputTooLarge(size: Int, limit: Int)
    /// Bytes left over after the single object the caller expected.
    case trailingBytes(count: Int)
    /// A string field whose bytes are not valid UTF-8 (raw starting at `offset`).
    case invalidUTF8(offset: Int)
}
