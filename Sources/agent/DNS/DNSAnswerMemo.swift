import ConsulCore

/// Answers compiled once per catalog generation, so the hot queries (service A/SRV, node A) cost
/// a dictionary lookup, a shuffle and a few byte copies instead of a catalog walk and a full
/// encoding. It never changes an answer: a compiled answer is the encoded records of the plan the
/// lookup would build, and encoding it gives the same bytes `DNSResolver.encode` gives for that
/// plan (the differential test checks this). A catalog that reports no generation is never memoized.
///
/// Health filtering stays live: every catalog change (a check turning critical included) moves the
/// generation on, and the first query after that empties the memo.
///
/// Value type owned by one shell handler (one per event loop): no locks, no sharing.
struct DNSAnswerMemo {
    private struct Key: Hashable {
        var name: String
        var type: UInt16
    }

    private var generation: UInt64?
    /// The server's resolver these answers were compiled with, and its version in the server's
    /// `DNSResolverSlot`: compiled answers carry its settings (TTLs), so a new one empties the table.
    private var resolver: DNSResolver?
    private var resolverVersion: UInt64 = 0
    /// nil values remember names that cannot be compiled (so they are not tried again).
    private var table: [Key: DNSCompiledAnswer?] = [:]

    init() {}

    func resolver(version: UInt64) -> DNSResolver? {
        version == resolverVersion ? resolver : nil
    }

    mutating func adopt(_ resolver: DNSResolver, version: UInt64) {
        self.resolver = resolver
        resolverVersion = version
        table.removeAll(keepingCapacity: true)
        generation = nil
    }

    /// The compiled answer for `query` under `generation`: nil if unknown, `.some(nil)` if known
    /// not to be compilable.
    mutating func answer(for query: DNSQuery, generation: UInt64) -> DNSCompiledAnswer?? {
        if generation != self.generation {
            table.removeAll(keepingCapacity: true)
            self.generation = generation
            return nil
        }
        // Keyed by the name as asked: answers carry the question's datacenter label as written.
        return table[Key(name: query.originalName, type: query.type)]
    }

    mutating func store(_ compiled: DNSCompiledAnswer?, for query: DNSQuery, generation: UInt64) {
        if generation != self.generation {
            table.removeAll(keepingCapacity: true)
            self.generation = generation
        }
        if table.count >= DNSLimits.maxMemoEntries { table.removeAll(keepingCapacity: true) }
        table[Key(name: query.originalName, type: query.type)] = .some(compiled)
    }
}

/// A NOERROR plan of A/AAAA/SRV answers, each record already encoded. Answers are named like the
/// question (a pointer to offset 12); an SRV's address record is kept without its name, which
/// points at the SRV target wherever that lands in the message.
struct DNSCompiledAnswer {
    struct Entry {
        var answer: Range<Int>
        /// The SRV target's offset inside the answer record; nil when there is no glue record.
        var targetOffset: Int?
        /// The glue record after its name.
        var glueTail: Range<Int>
        /// The first entry with the same target: the glue is written once per target.
        var group: Int
    }

    var bytes: [UInt8] = []
    var entries: [Entry] = []
    var shuffle: Bool

    /// Encodes the plan's records; nil when the plan is not of the compilable kind (errors,
    /// AUTHORITY or loose ADDITIONAL records, CNAMEs, TXT, more than `maxCompiledAnswers`).
    init?(_ plan: DNSAnswerPlan, query: DNSQuery, settings: DNSResolverSettings) {
        guard plan.code == .noError, plan.authority.isEmpty, plan.additional.isEmpty, !plan.answers.isEmpty,
              plan.answers.count <= DNSLimits.maxCompiledAnswers
        else { return nil }
        shuffle = plan.shuffle
        // Encode through a real writer so the bytes are exactly the writer's.
        var writer = DNSResponseWriter(
            query: query, code: .noError, authoritative: true, recursionAvailable: settings.recursorsConfigured,
            sizeLimit: DNSLimits.maxMessageSize)
        var answers: [Range<Int>] = []
        var targets: [Int?] = []
        var groups: [Int] = []
        var firstWithKey: [String: Int] = [:]
        for (index, entry) in plan.answers.enumerated() {
            guard entry.record.name == query.originalName, entry.additional.isEmpty else { return nil }
            let start = writer.byteCount
            switch entry.record.data {
            case .address:
                guard entry.glue == nil else { return nil }
                targets.append(nil)
            case .srv(_, _, _, let target):
                guard let glue = entry.glue else {
                    targets.append(nil)
                    break
                }
                guard glue.name == target, case .address = glue.data else { return nil }
                targets.append(2 + 10 + 6)  // name pointer, type/class/TTL/length, priority/weight/port
            default:
                return nil
            }
            guard writer.add(entry.record, to: .answer) else { return nil }
            answers.append(start..<writer.byteCount)
            if let key = entry.key {
                groups.append(firstWithKey[key] ?? index)
                if firstWithKey[key] == nil { firstWithKey[key] = index }
            } else {
                groups.append(index)
            }
        }
        var glueTails: [Range<Int>] = Array(repeating: 0..<0, count: plan.answers.count)
        for (index, entry) in plan.answers.enumerated() {
            guard let glue = entry.glue, groups[index] == index, let targetOffset = targets[index] else { continue }
            let start = writer.byteCount
            guard writer.add(glue, to: .additional, nameAt: answers[index].lowerBound + targetOffset) else { return nil }
            // The writer must have named it by a pointer to this very target.
            let pointer = Int(writer.byte(at: start)) << 8 | Int(writer.byte(at: start + 1))
            guard pointer == 0xC000 | (answers[index].lowerBound + targetOffset) else { return nil }
            glueTails[index] = (start + 2)..<writer.byteCount
        }
        let message = writer.finish()
        let base = answers[0].lowerBound
        bytes = Array(message[base...])
        for index in plan.answers.indices {
            let tail = glueTails[groups[index]]
            entries.append(
                Entry(
                    answer: (answers[index].lowerBound - base)..<(answers[index].upperBound - base), targetOffset: targets[index],
                    glueTail: tail.isEmpty ? 0..<0 : (tail.lowerBound - base)..<(tail.upperBound - base), group: groups[index]))
        }
    }
}

extension DNSResolver {
    /// Writes a compiled answer exactly as `encode(_:query:transport:random:)` writes its plan:
    /// the same shuffle, the same answer cap, the same trimming to the size limit, the same TC.
    func encode(_ compiled: DNSCompiledAnswer, query: DNSQuery, transport: DNSTransport, random: inout SeededRandom) -> [UInt8] {
        var order = Array(compiled.entries.indices)
        if compiled.shuffle { order.shuffle(using: &random) }
        let cap = answerCap(query, transport)
        let planned = min(order.count, cap)
        let limit = limit(query, transport)
        var writer = DNSResponseWriter(
            query: query, code: .noError, authoritative: true, recursionAvailable: settings.recursorsConfigured, sizeLimit: limit)
        // How many answers fit with the glue of each first-seen target and the OPT record.
        var size = writer.byteCount + (query.ednsUDPSize == nil ? 0 : 11)
        var count = 0
        while count < planned {
            let entry = compiled.entries[order[count]]
            var needed = entry.answer.count
            if entry.targetOffset != nil, !order[..<count].contains(where: { compiled.entries[$0].group == entry.group }) {
                needed += 2 + entry.glueTail.count
            }
            if size + needed > limit { break }
            size += needed
            count += 1
        }
        var positions: [Int] = []
        positions.reserveCapacity(count)
        compiled.bytes.withUnsafeBufferPointer { bytes in
            for position in 0..<count {
                positions.append(writer.byteCount)
                writer.appendRaw(UnsafeBufferPointer(rebasing: bytes[compiled.entries[order[position]].answer]), to: .answer)
            }
            for position in 0..<count {
                let entry = compiled.entries[order[position]]
                guard let targetOffset = entry.targetOffset,
                      !order[..<position].contains(where: { compiled.entries[$0].group == entry.group })
                else { continue }
                writer.appendRecord(
                    namedByPointerTo: positions[position] + targetOffset, tail: UnsafeBufferPointer(rebasing: bytes[entry.glueTail]),
                    to: .additional)
            }
        }
        if query.ednsUDPSize != nil { writer.add(optRecord(for: query), to: .additional) }
        return writer.finish(truncated: count < order.count && settings.enableTruncate)
    }
}
