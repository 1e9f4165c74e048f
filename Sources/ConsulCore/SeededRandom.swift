/// A deterministic, splittable pseudo-random generator (xoshiro256** seeded through SplitMix64).
///
/// Every pure core (Raft, SWIM, the DNS shuffle) takes one of these instead of the system generator,
/// so a simulation run is replayed exactly from its seed. It is not cryptographic: keys and nonces
/// come from OpenSSL (`ConsulCrypto.SecureRandom`).
///
/// Two ways to get independent streams:
/// - `split()` advances this generator once and returns a child whose sequence is unrelated to the
///   parent's remaining sequence (for handing a generator to each simulated node).
/// - `stream(_:)` derives a named stream without advancing this one, so adding a consumer of a new
///   stream never changes the numbers an existing one sees.
public struct SeededRandom: RandomNumberGenerator, Sendable, Equatable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    /// Creates a generator whose whole sequence is determined by `seed`.
    public init(seed: UInt64) {
        var expander = SplitMix64(state: seed)
        state = (expander.next(), expander.next(), expander.next(), expander.next())
        // xoshiro must not start from all zeros; SplitMix64 never yields four zeros in a row,
        // but keep the invariant explicit.
        if state == (0, 0, 0, 0) { state.0 = 0x9E37_79B9_7F4A_7C15 }
    }

    public static func == (lhs: SeededRandom, rhs: SeededRandom) -> Bool {
        lhs.state == rhs.state
    }

    /// The next 64 random bits (xoshiro256**).
    public mutating func next() -> UInt64 {
        let result = rotateLeft(state.1 &* 5, by: 7) &* 9
        let shifted = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= shifted
        state.3 = rotateLeft(state.3, by: 45)
        return result
    }

    /// Returns a child generator and advances this one. The child's seed passes through a
    /// different mixer than the parent's output, so the two sequences do not overlap in practice.
    public mutating func split() -> SeededRandom {
        let a = next()
        let b = next()
        return SeededRandom(seed: SplitMix64.mix(a ^ SplitMix64.mix(b ^ 0xD1B5_4A32_D192_ED03)))
    }

    /// A stream derived from this generator's current state and `label`, leaving this one untouched.
    public func stream(_ label: String) -> SeededRandom {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a, stable across runs and platforms
        for byte in label.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        let mixed = SplitMix64.mix(state.0 ^ hash) ^ SplitMix64.mix(state.1 &+ state.2 ^ state.3)
        return SeededRandom(seed: mixed)
    }

    /// True with probability `probability` (clamped to 0...1).
    public mutating func chance(_ probability: Double) -> Bool {
        if probability <= 0 { return false }
        if probability >= 1 { return true }
        return unitInterval() < probability
    }

    /// A uniformly distributed `Double` in `0..<1` built from the top 53 bits.
    public mutating func unitInterval() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    private func rotateLeft(_ value: UInt64, by amount: UInt64) -> UInt64 {
        (value << amount) | (value >> (64 - amount))
    }
}

/// SplitMix64: expands one 64-bit seed into well-mixed words (Steele, Lea, Flood 2014).
struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }

    static func mix(_ input: UInt64) -> UInt64 {
        var z = input
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
