import Foundation
import Synchronization
import Testing

/// Issue 5's chaos test: three servers, concurrent clients incrementing one counter with CAS over
/// HTTP (through whichever server they pick, so most requests are forwarded), while servers are
/// killed with SIGKILL and restarted at random. Afterwards:
/// - no two acknowledged increments started from the same value (no lost update),
/// - the counter is at least the number of acknowledged increments, and exceeds it by no more than
///   the increments whose outcome was unknown (a connection cut after the commit),
/// - reads and writes are linearizable for a counter that only grows: whatever completed before
///   an operation started is visible to it.
@Suite(.serialized) struct ChaosEndToEndTests {
    struct Operation: Sendable {
        enum Kind: Sendable {
            case read(UInt64)
            /// An acknowledged CAS from `from` to `from + 1`.
            case increment(from: UInt64)
        }
        var kind: Kind
        var started: UInt64
        var finished: UInt64
    }

    final class History: Sendable {
        let operations = Mutex<[Operation]>([])
        let unknown = Atomic<Int>(0)
        let refused = Atomic<Int>(0)
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// `GET ?consistent` → (value, ModifyIndex), nil on any failure.
    static func read(_ host: String) -> (value: UInt64, index: UInt64)? {
        guard let answer = try? AgentProcessHarness.http("GET", host: host, port: 8500, path: "/v1/kv/chaos/counter?consistent"),
              answer.status == 200,
              let object = (try? JSONSerialization.jsonObject(with: Data(answer.body.utf8))) as? [[String: Any]],
              let entry = object.first, let index = entry["ModifyIndex"] as? Int, let encoded = entry["Value"] as? String,
              let data = Data(base64Encoded: encoded), let value = UInt64(String(decoding: data, as: UTF8.self))
        else { return nil }
        return (value, UInt64(index))
    }

    @Test func casIncrementsSurviveServersKilledAtRandom() throws {
        let cluster = try LocalCluster()
        let servers = ["x1": "127.0.0.101", "x2": "127.0.0.102", "x3": "127.0.0.103"]
        let flags = ["-bootstrap-expect", "3", "-retry-join", "127.0.0.101", "-retry-interval", "200ms"]
        for (name, host) in servers.sorted(by: { $0.key < $1.key }) { try cluster.start(name, host: host, server: true, extra: flags) }
        let elected = AgentProcessHarness.eventually(30) { servers.keys.allSatisfy { cluster.leader(asking: $0) != nil } }
        #expect(elected, "no leader:\n\(cluster.logs)")
        guard elected else { return }
        let seeded = AgentProcessHarness.eventually(10) {
            (try? AgentProcessHarness.http("PUT", host: servers["x1"]!, port: 8500, path: "/v1/kv/chaos/counter", body: Array("0".utf8)).body) == "true"
        }
        #expect(seeded)

        let history = History()
        let running = Atomic<Bool>(true)
        let hosts = servers.values.sorted()
        let clients = DispatchGroup()
        for worker in 0..<3 {
            DispatchQueue.global().async(group: clients) {
                var turn = worker
                while running.load(ordering: .relaxed) {
                    turn += 1
                    let host = hosts[turn % hosts.count]
                    let started = Self.now()
                    guard let current = Self.read(host) else {
                        usleep(20_000)
                        continue
                    }
                    history.operations.withLock { $0.append(Operation(kind: .read(current.value), started: started, finished: Self.now())) }
                    let writeStarted = Self.now()
                    let answer = try? AgentProcessHarness.http(
                        "PUT", host: host, port: 8500, path: "/v1/kv/chaos/counter?cas=\(current.index)", body: Array(String(current.value + 1).utf8))
                    switch (answer?.status, answer?.body) {
                    case (200?, "true"?):
                        history.operations.withLock { $0.append(Operation(kind: .increment(from: current.value), started: writeStarted, finished: Self.now())) }
                    case (200?, "false"?):
                        history.refused.add(1, ordering: .relaxed)
                    default:
                        // Cut off, or a server error: the increment may or may not have happened.
                        history.unknown.add(1, ordering: .relaxed)
                    }
                }
            }
        }

        // Chaos: kill one server at a time with SIGKILL, restart it with the same data dir.
        var random = SystemRandomNumberGenerator()
        for _ in 0..<5 {
            Thread.sleep(forTimeInterval: 1.5)
            let victim = servers.keys.sorted()[Int(random.next() % 3)]
            cluster.kill9(victim)
            Thread.sleep(forTimeInterval: 1.5)
            try cluster.start(victim, host: servers[victim]!, server: true, extra: flags)
        }
        Thread.sleep(forTimeInterval: 1.5)
        running.store(false, ordering: .relaxed)
        #expect(clients.wait(timeout: .now() + 60) == .success, "clients did not stop")

        var final: UInt64?
        _ = AgentProcessHarness.eventually(40) {
            final = hosts.lazy.compactMap { Self.read($0)?.value }.first
            return final != nil
        }
        let operations = history.operations.withLock { $0 }
        let increments = operations.compactMap { op -> UInt64? in if case .increment(let from) = op.kind { from } else { nil } }
        let unknown = UInt64(history.unknown.load(ordering: .relaxed))
        let counter = try #require(final, "no server answers after the chaos:\n\(cluster.logs)")
        #expect(increments.count > 10, "too few increments acknowledged to mean anything: \(increments.count)")
        #expect(Set(increments).count == increments.count, "two acknowledged increments from the same value: a lost update")
        #expect(counter >= UInt64(increments.count), "counter \(counter) < \(increments.count) acknowledged increments")
        #expect(counter <= UInt64(increments.count) + unknown, "counter \(counter) > acknowledged \(increments.count) + unknown \(unknown)")

        // Linearizability for a counter that only grows: an operation sees at least every value
        // an operation that finished before it started saw or wrote.
        var floor: [(finished: UInt64, value: UInt64)] = operations.map { op in
            switch op.kind {
            case .read(let value): (op.finished, value)
            case .increment(let from): (op.finished, from + 1)
            }
        }
        floor.sort { $0.finished < $1.finished }
        var violations: [String] = []
        for op in operations {
            let seen: UInt64
            switch op.kind {
            case .read(let value): seen = value
            case .increment(let from): seen = from
            }
            // The highest value known before this operation started.
            var known: UInt64 = 0
            for entry in floor {
                if entry.finished >= op.started { break }
                known = max(known, entry.value)
            }
            if seen < known { violations.append("saw \(seen) after \(known) was already visible") }
        }
        #expect(violations.isEmpty, "not linearizable: \(violations.prefix(5))")
    }
}
