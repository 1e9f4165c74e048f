import Testing
@testable import ConsulCore

@Suite struct SeededRandomTests {
    private func draw(_ count: Int, from generator: inout SeededRandom) -> [UInt64] {
        (0..<count).map { _ in generator.next() }
    }

    @Test func sameSeedGivesSameSequence() {
        var a = SeededRandom(seed: 42)
        var b = SeededRandom(seed: 42)
        #expect(draw(1000, from: &a) == draw(1000, from: &b))
    }

    @Test func differentSeedsGiveDifferentSequences() {
        var a = SeededRandom(seed: 1)
        var b = SeededRandom(seed: 2)
        let first = draw(64, from: &a)
        let second = draw(64, from: &b)
        #expect(first != second)
        // Not just shifted copies of each other.
        #expect(Set(first).intersection(second).isEmpty)
    }

    @Test func seedZeroIsUsable() {
        var generator = SeededRandom(seed: 0)
        let values = draw(16, from: &generator)
        #expect(Set(values).count == 16)
    }

    /// Pinned output: if the generator ever changes, every recorded simulation seed stops replaying,
    /// so a change here must be deliberate.
    @Test func sequenceIsStableAcrossBuilds() {
        var generator = SeededRandom(seed: 7)
        let first = draw(3, from: &generator)
        var again = SeededRandom(seed: 7)
        #expect(draw(3, from: &again) == first)
        #expect(first == SeededRandomTests.pinnedSeed7)
    }

    // Computed independently with a Python SplitMix64 + xoshiro256** reference.
    static let pinnedSeed7: [UInt64] = [12_923_355_070_828_475_994, 5_142_052_590_334_782_674, 15_488_392_906_492_639_638]

    @Test func splitIsDeterministic() {
        var a = SeededRandom(seed: 99)
        var b = SeededRandom(seed: 99)
        var childA = a.split()
        var childB = b.split()
        #expect(draw(100, from: &childA) == draw(100, from: &childB))
        #expect(draw(100, from: &a) == draw(100, from: &b))
    }

    @Test func splitStreamsAreIndependent() {
        var parent = SeededRandom(seed: 2024)
        var children = (0..<8).map { _ in parent.split() }
        var sequences: [[UInt64]] = []
        for index in children.indices {
            sequences.append(draw(256, from: &children[index]))
        }
        sequences.append(draw(256, from: &parent))
        // No value repeats across any two of the nine streams (2304 draws of 64 bits: a collision by
        // chance has probability ~1e-13, so a hit means the streams are related).
        var seen = Set<UInt64>()
        for sequence in sequences {
            for value in sequence { #expect(seen.insert(value).inserted) }
        }
        // Bits are balanced in each stream: a child that were a copy or shift of another would
        // have passed the set test only by luck, a degenerate one fails here.
        for sequence in sequences {
            let ones = sequence.reduce(0) { $0 + $1.nonzeroBitCount }
            let total = sequence.count * 64
            #expect(abs(Double(ones) / Double(total) - 0.5) < 0.02)
        }
    }

    @Test func namedStreamDoesNotAdvanceParent() {
        let parent = SeededRandom(seed: 5)
        var copy = parent
        var network = parent.stream("network")
        var disk = parent.stream("disk")
        var networkAgain = parent.stream("network")
        #expect(parent == copy)
        let networkValues = draw(50, from: &network)
        #expect(networkValues == draw(50, from: &networkAgain))
        #expect(Set(networkValues).intersection(draw(50, from: &disk)).isEmpty)
        #expect(Set(networkValues).intersection(draw(50, from: &copy)).isEmpty)
    }

    @Test func worksWithStandardLibraryAlgorithms() {
        var a = SeededRandom(seed: 11)
        var b = SeededRandom(seed: 11)
        let deck = Array(0..<52)
        #expect(deck.shuffled(using: &a) == deck.shuffled(using: &b))
        let rolls = (0..<1000).map { _ in Int.random(in: 1...6, using: &a) }
        #expect(Set(rolls) == Set(1...6))
    }

    @Test func chanceAndUnitIntervalStayInRange() {
        var generator = SeededRandom(seed: 3)
        var hits = 0
        for _ in 0..<10_000 {
            let value = generator.unitInterval()
            #expect(value >= 0 && value < 1)
            let hit = generator.chance(0.2)
            if hit { hits += 1 }
        }
        #expect(hits > 1_700 && hits < 2_300)
        let never = generator.chance(0)
        let always = generator.chance(1)
        #expect(!never)
        #expect(always)
    }
}
