import ConsulCore

/// serf's snapshot (`serf/local.snapshot` in Consul's data dir), as a value: an append-only text
/// log of member changes and Lamport clocks that lets a restarted node find the pool again and
/// not replay events it already delivered. One record per line, in serf's words:
///
///     alive: NAME ADDR        a member joined (ADDR as Go prints a TCP address: 1.2.3.4:8301, [::1]:8301)
///     not-alive: NAME         it failed or left
///     clock: N                membership clock last seen (its time − 1)
///     event-clock: N          latest user event delivered
///     query-clock: N          latest query delivered
///     leave                   we left gracefully: forget everything above (unless rejoining after leave)
///     coordinate: ...         (old serf versions; ignored)   # ...  (comment)
///
/// The shell (`GossipSnapshotFile`) appends lines and compacts the file into `compacted` when it
/// grows; this type only parses, formats and replays, so it is tested without files.
package struct SerfSnapshot: Sendable, Equatable {
    /// Alive members by name, with the address text as written.
    package var alive: [String: String] = [:]
    package var clock: LamportTime = 0
    package var eventClock: LamportTime = 0
    package var queryClock: LamportTime = 0

    package init() {}

    /// A line longer than this is not one serf writes (names are short); it is skipped as corrupt.
    package static let maxLineBytes = 4096
    /// serf compacts once the file passes max(this, 2 × 128 bytes per alive member).
    package static let minCompactBytes = 128 * 1024
    static let bytesPerMember = 128

    package enum Record: Equatable, Sendable {
        case alive(name: String, address: String)
        case notAlive(name: String)
        case clock(LamportTime)
        case eventClock(LamportTime)
        case queryClock(LamportTime)
        case leave
        /// Comments and old `coordinate:` lines: valid, and ignored.
        case ignored
    }

    /// Why one line was skipped (1-based line number, for the log line that names the file).
    package struct Problem: Equatable, Sendable, CustomStringConvertible {
        package var line: Int
        package var reason: String
        package var description: String { "line \(line): \(reason)" }
    }

    // MARK: - Lines

    /// The line for `record`, newline included.
    package static func format(_ record: Record) -> String {
        switch record {
        case .alive(let name, let address): "alive: \(name) \(address)\n"
        case .notAlive(let name): "not-alive: \(name)\n"
        case .clock(let time): "clock: \(time)\n"
        case .eventClock(let time): "event-clock: \(time)\n"
        case .queryClock(let time): "query-clock: \(time)\n"
        case .leave: "leave\n"
        case .ignored: "#\n"
        }
    }

    /// Whether a member name can be written as a line and read back as the same name. A name is
    /// chosen by a peer: one with a line break (or other control character) could otherwise add
    /// lines of its choosing, such as `leave`, to our snapshot.
    package static func canRecord(name: String) -> Bool {
        !name.isEmpty && name.utf8.count < maxLineBytes / 2 && !name.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }

    /// Parses one line (without its newline).
    package static func parse(_ line: Substring) -> Result<Record, ParseError> {
        if line.utf8.count > maxLineBytes { return .failure(ParseError("line longer than \(maxLineBytes) bytes")) }
        if line == "leave" { return .success(.leave) }
        if line.hasPrefix("#") || line.hasPrefix("coordinate: ") { return .success(.ignored) }
        if let info = line.dropPrefix("alive: ") {
            guard let space = info.lastIndex(of: " ") else { return .failure(ParseError("Failed to parse address: \(line)")) }
            let name = String(info[..<space])
            let address = String(info[info.index(after: space)...])
            guard canRecord(name: name) else { return .failure(ParseError("bad member name in: \(line)")) }
            guard GossipAddress(hostPort: address) != nil else { return .failure(ParseError("Failed to parse address: \(line)")) }
            return .success(.alive(name: name, address: address))
        }
        if let name = line.dropPrefix("not-alive: ") {
            guard canRecord(name: String(name)) else { return .failure(ParseError("bad member name in: \(line)")) }
            return .success(.notAlive(name: String(name)))
        }
        for (prefix, make, what) in [
            ("clock: ", Record.clock, "clock time"), ("event-clock: ", Record.eventClock, "event clock time"),
            ("query-clock: ", Record.queryClock, "query clock time"),
        ] as [(String, (LamportTime) -> Record, String)] {
            guard let text = line.dropPrefix(prefix) else { continue }
            guard let time = LamportTime(text) else { return .failure(ParseError("Failed to convert \(what): \(line)")) }
            return .success(make(time))
        }
        return .failure(ParseError("Unrecognized snapshot line: \(line)"))
    }

    package struct ParseError: Error, Equatable, Sendable {
        package var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    // MARK: - State

    /// Applies one record, as serf's replay and its live recording both do. A `leave` forgets the
    /// members and clocks unless the node is to rejoin after a leave; returns false when a leave
    /// was kept for that reason.
    @discardableResult
    package mutating func apply(_ record: Record, rejoinAfterLeave: Bool) -> Bool {
        switch record {
        case .alive(let name, let address): alive[name] = address
        case .notAlive(let name): alive[name] = nil
        case .clock(let time): clock = time
        case .eventClock(let time): eventClock = time
        case .queryClock(let time): queryClock = time
        case .leave:
            guard !rejoinAfterLeave else { return false }
            self = SerfSnapshot()
        case .ignored: break
        }
        return true
    }

    /// The whole state as a fresh log: members sorted by name, then the three clocks.
    package var compacted: String {
        var text = ""
        for name in alive.keys.sorted() { text += Self.format(.alive(name: name, address: alive[name]!)) }
        text += Self.format(.clock(clock)) + Self.format(.eventClock(eventClock)) + Self.format(.queryClock(queryClock))
        return text
    }

    /// How large the file may grow before it is compacted (serf `snapshotMaxSize`).
    package var compactionThreshold: Int { max(Self.minCompactBytes, alive.count * Self.bytesPerMember * 2) }

    /// Alive members (minus `localName`) with their parsed addresses, sorted by name.
    package func previousMembers(excluding localName: String) -> [(name: String, address: GossipAddress)] {
        alive.keys.sorted().compactMap { name in
            guard name != localName, let address = GossipAddress(hostPort: alive[name]!) else { return nil }
            return (name, address)
        }
    }

    // MARK: - Replay

    /// Replays a log fed in chunks of any size. Bad lines are skipped and reported; bytes after
    /// the last newline (a write torn by a crash) are not a line and are reported too.
    package struct Replay: Sendable {
        package private(set) var snapshot = SerfSnapshot()
        package private(set) var problems: [Problem] = []
        /// Problems beyond `maxProblems` are only counted.
        package private(set) var moreProblems = 0
        /// Leave records skipped because the node rejoins after a leave.
        package private(set) var leavesKept = 0
        package private(set) var lines = 0
        package static let maxProblems = 16
        let rejoinAfterLeave: Bool
        private var partial: [UInt8] = []
        private var partialTooLong = false

        package init(rejoinAfterLeave: Bool) { self.rejoinAfterLeave = rejoinAfterLeave }

        package mutating func feed(_ bytes: some Collection<UInt8>) {
            var start = bytes.startIndex
            while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let piece = bytes[start..<newline]
                if partial.isEmpty && !partialTooLong {
                    line(Array(piece), tooLong: false)
                } else {
                    if !partialTooLong { partial += piece }
                    line(partial, tooLong: partialTooLong || partial.count > SerfSnapshot.maxLineBytes)
                    partial.removeAll()
                    partialTooLong = false
                }
                start = bytes.index(after: newline)
            }
            let rest = bytes[start...]
            guard !rest.isEmpty, !partialTooLong else { return }
            partial += rest
            if partial.count > SerfSnapshot.maxLineBytes {
                partial.removeAll()
                partialTooLong = true
            }
        }

        /// Bytes after the last newline, if any (a torn tail).
        package var tornTailBytes: Int { partialTooLong ? SerfSnapshot.maxLineBytes + 1 : partial.count }

        private mutating func line(_ bytes: [UInt8], tooLong: Bool) {
            lines += 1
            guard !tooLong else { return report("line longer than \(SerfSnapshot.maxLineBytes) bytes") }
            guard let text = String(validating: bytes, as: UTF8.self) else { return report("not UTF-8") }
            switch SerfSnapshot.parse(Substring(text)) {
            case .success(let record):
                if !snapshot.apply(record, rejoinAfterLeave: rejoinAfterLeave) { leavesKept += 1 }
            case .failure(let error):
                report(error.reason)
            }
        }

        private mutating func report(_ reason: String) {
            if problems.count < Self.maxProblems {
                problems.append(Problem(line: lines, reason: reason))
            } else {
                moreProblems += 1
            }
        }
    }
}

extension GossipAddress {
    /// Parses a TCP address as Go prints it: `1.2.3.4:8301` or `[v6]:8301` (IPv6 in any of the
    /// usual spellings, `::` included). Nil for anything else, including port 0.
    package init?(hostPort text: String) {
        if text.hasPrefix("[") {
            guard let close = text.lastIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":"),
                  let port = UInt16(text[text.index(close, offsetBy: 2)...]), port != 0,
                  let ip = Self.parseIPv6(text[text.index(after: text.startIndex)..<close])
            else { return nil }
            self.init(ip: ip, port: port)
            return
        }
        guard let address = GossipAddress(text), address.port != 0 else { return nil }
        self = address
    }

    /// Go's `net.TCPAddr.String()` form (compressed IPv6 in brackets).
    package var hostPort: String {
        guard ip.count == 16, !host.contains(".") else { return "\(host):\(port)" }
        // The longest run (two or more) of zero groups becomes "::".
        let groups = stride(from: 0, to: 16, by: 2).map { UInt16(ip[$0]) << 8 | UInt16(ip[$0 + 1]) }
        var best = (start: -1, length: 0)
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index > best.length && end - index >= 2 { best = (index, end - index) }
            index = end
        }
        let hex = groups.map { String($0, radix: 16) }
        let text = best.start < 0
            ? hex.joined(separator: ":")
            : hex[..<best.start].joined(separator: ":") + "::" + hex[(best.start + best.length)...].joined(separator: ":")
        return "[\(text)]:\(port)"
    }

    private static func parseIPv6(_ text: Substring) -> [UInt8]? {
        var halves = [String(text)]
        if let gap = text.firstRange(of: "::") {
            halves = [String(text[..<gap.lowerBound]), String(text[gap.upperBound...])]
            guard halves[1].firstRange(of: "::") == nil else { return nil }
        }
        func groups(_ part: String) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            var result: [UInt16] = []
            for piece in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}

extension Substring {
    fileprivate func dropPrefix(_ prefix: String) -> Substring? {
        hasPrefix(prefix) ? dropFirst(prefix.count) : nil
    }
}
