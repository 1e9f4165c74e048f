/// A caller's handle on one queued broadcast, reported back once the broadcast is done (sent as
/// often as the retransmit limit asks, replaced by a newer one, or pruned).
package struct BroadcastToken: Hashable, Sendable {
    package var raw: UInt64
    package init(_ raw: UInt64) { self.raw = raw }
}

/// memberlist's `TransmitLimitedQueue`: messages waiting to be piggy-backed on gossip, each sent
/// at most `retransmitLimit(mult, N)` times, the least-sent first.
///
/// Selection order for one datagram: fewest transmissions first, then the longest message that
/// still fits, then the newest — the order of memberlist's btree, so a mixed pool spreads news the
/// same way. A named broadcast (memberlist's per-node messages) replaces the queued one of the same
/// name; unnamed ones (serf's) never replace anything.
package struct BroadcastQueue: Sendable {
    private struct Item: Sendable {
        var transmits: Int
        var message: [UInt8]
        var id: UInt64
        var name: String?
        var token: BroadcastToken?

        /// True when `self` is sent before `other`.
        func precedes(_ other: Item) -> Bool {
            if transmits != other.transmits { return transmits < other.transmits }
            if message.count != other.message.count { return message.count > other.message.count }
            return id > other.id
        }
    }

    package var retransmitMult: Int
    /// Most items held; above it the most-transmitted are dropped (serf's `MaxQueueDepth` prune).
    package var maxDepth: Int
    private var items: [Item] = []
    private var nextID: UInt64 = 0

    package init(retransmitMult: Int, maxDepth: Int) {
        self.retransmitMult = retransmitMult
        self.maxDepth = maxDepth
    }

    package var count: Int { items.count }
    package var isEmpty: Bool { items.isEmpty }

    /// Queues `message`. Tokens of broadcasts that are thereby finished (replaced, or pruned to stay
    /// within `maxDepth`) are appended to `finished`.
    package mutating func queue(_ message: [UInt8], name: String? = nil, token: BroadcastToken? = nil, finished: inout [BroadcastToken]) {
        nextID += 1
        if let name, let index = items.firstIndex(where: { $0.name == name }) {
            if let old = items[index].token { finished.append(old) }
            items.remove(at: index)
        }
        items.append(Item(transmits: 0, message: message, id: nextID, name: name, token: token))
        prune(maxRetain: maxDepth, finished: &finished)
    }

    /// Drops the most-transmitted (and, among equals, oldest and shortest) items beyond `maxRetain`.
    package mutating func prune(maxRetain: Int, finished: inout [BroadcastToken]) {
        while items.count > max(0, maxRetain) {
            var last = 0
            for index in items.indices.dropFirst() where items[last].precedes(items[index]) { last = index }
            if let token = items[last].token { finished.append(token) }
            items.remove(at: last)
        }
    }

    /// Messages for one datagram: each costs `overhead` plus its length against `limit`. Taken
    /// messages count one transmission; those reaching the limit for `nodes` members leave the queue.
    package mutating func take(overhead: Int, limit: Int, nodes: Int, finished: inout [BroadcastToken]) -> [[UInt8]] {
        guard !items.isEmpty else { return [] }
        let transmitLimit = SWIMMath.retransmitLimit(mult: retransmitMult, nodes: nodes)
        var used = 0
        var taken: [Int] = []
        var isTaken = [Bool](repeating: false, count: items.count)
        while true {
            let free = limit - used - overhead
            guard free > 0 else { break }
            var best: Int?
            for index in items.indices where !isTaken[index] && items[index].message.count <= free {
                if let current = best, !items[index].precedes(items[current]) { continue }
                best = index
            }
            guard let chosen = best else { break }
            isTaken[chosen] = true
            taken.append(chosen)
            used += overhead + items[chosen].message.count
        }
        let output = taken.map { items[$0].message }
        var remove: [Int] = []
        for index in taken {
            if items[index].transmits + 1 >= transmitLimit {
                if let token = items[index].token { finished.append(token) }
                remove.append(index)
            } else {
                items[index].transmits += 1
            }
        }
        for index in remove.sorted(by: >) { items.remove(at: index) }
        return output
    }
}
