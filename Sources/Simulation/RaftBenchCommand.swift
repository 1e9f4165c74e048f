#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Synchronization

/// `consul-sim raft-bench`: the load generator of bench/raft.sh. N client connections to the
/// leader, each writing 256-byte values to fresh keys one at a time (a write counts once the
/// server acknowledged it, i.e. after commit), for a fixed time after a warm-up; prints commits/s
/// and p50/p99 latency. Speaks `raft-node`'s line protocol or etcd's v3 HTTP/JSON gateway, so
/// both systems are measured the same way.
///
/// `consul-sim fsync-rate --dir D`: 256-byte writes each followed by fdatasync, appended to a
/// growing file and then written over a preallocated one, for the disk's physical limit on
/// unbatched commits (the WAL writes into preallocated segments).
package enum RaftBenchCommand {
    package enum Target: String, Sendable {
        case raft
        case etcd
    }

    package static let usage = "raft-bench --target raft|etcd --endpoints HOST:PORT,... --clients N [--seconds S] "
        + "[--warmup S] [--value-bytes B]"
    /// Bounds of a run, so a mistyped argument cannot start something endless.
    static let maxClients = 1024
    static let maxSeconds = 600.0

    package static func run(_ arguments: [String], out: (String) -> Void, err: (String) -> Void) -> Int32 {
        var target: Target?
        var endpoints: [(host: String, port: Int)] = []
        var clients = 1
        var seconds = 5.0
        var warmup = 1.0
        var valueBytes = 256
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { return fail(err) }
            switch flag {
            case "--target": target = Target(rawValue: value)
            case "--endpoints":
                for item in value.split(separator: ",") {
                    guard let split = splitEndpoint(String(item)) else { return fail(err) }
                    endpoints.append(split)
                }
            case "--clients": clients = Int(value) ?? 0
            case "--seconds": seconds = Double(value) ?? 0
            case "--warmup": warmup = Double(value) ?? -1
            case "--value-bytes": valueBytes = Int(value) ?? 0
            default: return fail(err)
            }
        }
        guard let target, !endpoints.isEmpty, (1...maxClients).contains(clients), seconds > 0, seconds <= maxSeconds,
              warmup >= 0, warmup <= maxSeconds, (1...StringKVMachine.maxValueBytes).contains(valueBytes)
        else { return fail(err) }
        guard let leader = findLeader(target, endpoints) else {
            err("raft-bench: no leader among \(endpoints.map { "\($0.host):\($0.port)" })")
            return 1
        }
        let result = measure(
            target, leader: leader, clients: clients, warmup: warmup, seconds: seconds, value: String(repeating: "x", count: valueBytes))
        out(String(
            format: "%@ clients=%d commits/s=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d", target.rawValue, clients,
            Double(result.latencies.count) / seconds, percentile(result.latencies, 0.50), percentile(result.latencies, 0.99),
            result.errors))
        return result.latencies.isEmpty ? 1 : 0
    }

    private static func fail(_ err: (String) -> Void) -> Int32 {
        err("usage: consul-sim " + usage)
        return 2
    }

    private static func splitEndpoint(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return nil }
        return (String(text[..<colon]), port)
    }

    static func percentile(_ sorted: [UInt64], _ fraction: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let index = min(sorted.count - 1, Int(Double(sorted.count) * fraction))
        return Double(sorted[index]) / 1_000_000
    }

    // MARK: - Clients

    /// One connection speaking one of the two protocols.
    final class Client {
        let target: Target
        let line: LineClient
        let host: String

        init?(_ target: Target, host: String, port: Int) {
            guard let line = LineClient(host: host, port: port, timeoutMilliseconds: 10_000) else { return nil }
            self.target = target
            self.line = line
            self.host = host
        }

        /// One acknowledged write; false on any error.
        func put(_ key: String, _ value: String) -> Bool {
            switch target {
            case .raft:
                return line.request("PUT \(key) \(value)") == "OK"
            case .etcd:
                let body = "{\"key\":\"\(Data(key.utf8).base64EncodedString())\",\"value\":\"\(Data(value.utf8).base64EncodedString())\"}"
                guard let response = post("/v3/kv/put", body) else { return false }
                return response.status == 200 && response.body.contains("\"header\"")
            }
        }

        /// A minimal HTTP/1.1 keep-alive POST (the etcd gateway answers with Content-Length).
        func post(_ path: String, _ body: String) -> (status: Int, body: String)? {
            let request = "POST \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
            guard line.send(request) else { return nil }
            guard let statusLine = line.readLine(), statusLine.hasPrefix("HTTP/1.1 ") else { return nil }
            let status = Int(statusLine.dropFirst(9).prefix(3)) ?? 0
            var length = 0
            while let header = line.readLine() {
                let trimmed = header.hasSuffix("\r") ? String(header.dropLast()) : header
                if trimmed.isEmpty { break }
                if trimmed.lowercased().hasPrefix("content-length:") {
                    length = Int(trimmed.dropFirst(15).trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            guard let bytes = line.read(count: length) else { return nil }
            return (status, String(decoding: bytes, as: UTF8.self))
        }

        /// Whether this endpoint is its cluster's leader.
        func isLeader() -> Bool {
            switch target {
            case .raft:
                return line.request("STATUS")?.split(separator: " ").dropFirst().first == "leader"
            case .etcd:
                guard let response = post("/v3/maintenance/status", "{}"), response.status == 200,
                      let member = jsonString(response.body, after: "\"member_id\":"),
                      let leader = jsonString(response.body, after: "\"leader\":")
                else { return false }
                return member == leader
            }
        }

        private func jsonString(_ text: String, after marker: String) -> String? {
            guard let range = text.range(of: marker) else { return nil }
            let rest = text[range.upperBound...].drop { $0 == " " || $0 == "\"" }
            return String(rest.prefix { $0 != "\"" && $0 != "," && $0 != "}" })
        }
    }

    private static func findLeader(_ target: Target, _ endpoints: [(host: String, port: Int)]) -> (host: String, port: Int)? {
        for _ in 0..<100 {
            for endpoint in endpoints {
                if let client = Client(target, host: endpoint.host, port: endpoint.port), client.isLeader() { return endpoint }
            }
            usleep(100_000)
        }
        return nil
    }

    private static func measure(
        _ target: Target, leader: (host: String, port: Int), clients: Int, warmup: Double, seconds: Double, value: String
    ) -> (latencies: [UInt64], errors: Int) {
        let start = DispatchTime.now().uptimeNanoseconds
        let measureFrom = start + UInt64(warmup * 1e9)
        let end = measureFrom + UInt64(seconds * 1e9)
        let results = Shared<(latencies: [UInt64], errors: Int)>(([], 0))
        let group = DispatchGroup()
        for number in 0..<clients {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var latencies: [UInt64] = []
                var errors = 0
                if let client = Client(target, host: leader.host, port: leader.port) {
                    var sequence = 0
                    while true {
                        let before = DispatchTime.now().uptimeNanoseconds
                        if before >= end { break }
                        sequence += 1
                        let ok = client.put("bench-\(number)-\(sequence)", value)
                        let after = DispatchTime.now().uptimeNanoseconds
                        guard before >= measureFrom, after <= end else { continue }
                        if ok { latencies.append(after - before) } else { errors += 1 }
                    }
                } else {
                    errors += 1
                }
                results.value.withLock {
                    $0.latencies += latencies
                    $0.errors += errors
                }
            }
        }
        group.wait()
        var collected = results.value.withLock { $0 }
        collected.latencies.sort()
        return collected
    }

    // MARK: - fsync rate

    package static let fsyncUsage = "fsync-rate --dir D [--seconds S]"

    package static func fsyncRate(_ arguments: [String], out: (String) -> Void, err: (String) -> Void) -> Int32 {
        guard arguments.count == 2 || arguments.count == 4, arguments[0] == "--dir",
              arguments.count == 2 || arguments[2] == "--seconds",
              let seconds = arguments.count == 4 ? Double(arguments[3]) : 3, seconds > 0, seconds <= maxSeconds
        else {
            err("usage: consul-sim " + fsyncUsage)
            return 2
        }
        let path = arguments[1] + "/fsync-rate.tmp"
        guard let append = syncLoop(path: path, seconds: seconds, preallocated: false),
              let overwrite = syncLoop(path: path, seconds: seconds, preallocated: true)
        else {
            err("fsync-rate: cannot write \(path)")
            return 1
        }
        out(String(
            format: "fsync 256-byte appends+fdatasync/s=%.0f append_p50_ms=%.3f overwrites+fdatasync/s=%.0f overwrite_p50_ms=%.3f",
            Double(append.count) / seconds, percentile(append, 0.5), Double(overwrite.count) / seconds, percentile(overwrite, 0.5)))
        return 0
    }

    /// The bytes a preallocated test file gets (more than any run writes at 256 bytes a sync).
    static let preallocatedBytes = 64 << 20

    /// 256-byte records each followed by `fdatasync` for `seconds`: appended to a growing file
    /// (each sync also commits the new size through the journal), or written over a file that was
    /// zero-filled and synced first (as the WAL's preallocated segments are). Sorted latencies.
    static func syncLoop(path: String, seconds: Double, preallocated: Bool) -> [UInt64]? {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return nil }
        defer {
            close(fd)
            unlink(path)
        }
        if preallocated {
            let zeros = [UInt8](repeating: 0, count: 1 << 20)
            for offset in stride(from: 0, to: preallocatedBytes, by: zeros.count) {
                guard zeros.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }) == zeros.count else { return nil }
            }
            guard fsync(fd) == 0 else { return nil }
        }
        let record = [UInt8](repeating: 0x5A, count: 256)
        let end = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        var latencies: [UInt64] = []
        var offset = 0
        while DispatchTime.now().uptimeNanoseconds < end, offset + record.count <= preallocatedBytes {
            let before = DispatchTime.now().uptimeNanoseconds
            guard record.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }) == record.count else { return nil }
            offset += record.count
            #if canImport(Glibc)
            guard fdatasync(fd) == 0 else { return nil }
            #else
            guard fsync(fd) == 0 else { return nil }
            #endif
            latencies.append(DispatchTime.now().uptimeNanoseconds - before)
        }
        return latencies.sorted()
    }
}
