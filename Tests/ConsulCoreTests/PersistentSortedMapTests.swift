import Testing
@testable import ConsulCore

@Suite struct PersistentSortedMapTests {
    @Test func matchesADictionaryUnderRandomEdits() {
        var random = SeededRandom(seed: 7)
        var map = PersistentSortedMap<Int, Int>()
        var reference: [Int: Int] = [:]
        for step in 0..<4000 {
            let key = Int(random.next() % 500)
            if random.next() % 3 == 0 {
                #expect(map.remove(key) == reference.removeValue(forKey: key))
            } else {
                #expect(map.set(key, step) == reference.updateValue(step, forKey: key))
            }
        }
        #expect(map.isValid())
        #expect(map.count == reference.count)
        #expect(map.entries.map(\.key) == reference.keys.sorted())
        for (key, value) in reference { #expect(map[key] == value) }
    }

    @Test func olderVersionsAreUntouchedByLaterEdits() {
        var map = PersistentSortedMap<String, Int>()
        for (index, key) in ["b", "a", "d", "c"].enumerated() { map.set(key, index) }
        let before = map
        map.set("a", 99)
        map.remove("d")
        map.set("e", 5)
        #expect(before.entries.map(\.key) == ["a", "b", "c", "d"])
        #expect(before["a"] == 1)
        #expect(map.entries.map(\.key) == ["a", "b", "c", "e"])
        #expect(map["a"] == 99)
    }

    @Test func iteratesFromALowerBoundAndStopsWhenAsked() {
        var map = PersistentSortedMap<String, Int>()
        for key in ["web/a", "web/b", "api/x", "web0", "zeta"] { map.set(key, 0) }
        var seen: [String] = []
        map.forEach(from: "web/") { key, _ in
            guard key.hasPrefix("web/") else { return false }
            seen.append(key)
            return true
        }
        #expect(seen == ["web/a", "web/b"])
    }

    @Test func removingAMissingKeyChangesNothing() {
        var map = PersistentSortedMap<Int, String>()
        map.set(1, "one")
        #expect(map.remove(2) == nil)
        #expect(map.count == 1)
    }
}
