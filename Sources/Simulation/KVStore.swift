import Raft

/// The simulated state machine: a few integer registers (key → value, 0 meaning absent) with put
/// and compare-and-set, small enough that every history per key can be checked for linearizability.
struct KVStore: Equatable {
    private(set) var values: [UInt64]

    init(keys: Int) {
        values = Array(repeating: 0, count: keys)
    }

    enum Command: Equatable {
        case put(key: Int, value: UInt64)
        case cas(key: Int, expected: UInt64, new: UInt64)

        var key: Int {
            switch self {
            case .put(let key, _), .cas(let key, _, _): key
            }
        }
    }

    enum ApplyResult: Equatable {
        case ok
        case cas(succeeded: Bool)
        /// The command bytes were not a command this store knows (never produced by the workload).
        case invalid
    }

    mutating func apply(_ bytes: [UInt8]) -> ApplyResult {
        guard let command = KVStore.decode(bytes), values.indices.contains(command.key) else { return .invalid }
        switch command {
        case .put(let key, let value):
            values[key] = value
            return .ok
        case .cas(let key, let expected, let new):
            guard values[key] == expected else { return .cas(succeeded: false) }
            values[key] = new
            return .cas(succeeded: true)
        }
    }

    /// FNV-1a over the values: equal stores give equal digests on every run.
    var digest: UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for value in values {
            for shift in stride(from: 0, to: 64, by: 8) {
                hash ^= (value >> UInt64(shift)) & 0xFF
                hash &*= 0x0000_0100_0000_01B3
            }
        }
        return hash
    }

    // MARK: - Encoding (commands and snapshots)

    static func encode(_ command: Command) -> [UInt8] {
        switch command {
        case .put(let key, let value):
            return [1, UInt8(key)] + bytes(value)
        case .cas(let key, let expected, let new):
            return [2, UInt8(key)] + bytes(expected) + bytes(new)
        }
    }

    static func decode(_ bytes: [UInt8]) -> Command? {
        guard bytes.count >= 10 else { return nil }
        let key = Int(bytes[1])
        switch bytes[0] {
        case 1 where bytes.count == 10:
            return .put(key: key, value: word(bytes, at: 2))
        case 2 where bytes.count == 18:
            return .cas(key: key, expected: word(bytes, at: 2), new: word(bytes, at: 10))
        default:
            return nil
        }
    }

    func snapshot() -> [UInt8] {
        values.flatMap { KVStore.bytes($0) }
    }

    static func restore(_ data: [UInt8], keys: Int) -> KVStore? {
        guard data.count == keys * 8 else { return nil }
        var store = KVStore(keys: keys)
        for index in 0..<keys { store.values[index] = word(data, at: index * 8) }
        return store
    }

    private static func bytes(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (UInt64($0) * 8)) }
    }

    private static func word(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[offset + index]) << (UInt64(index) * 8) }
        return value
    }
}
