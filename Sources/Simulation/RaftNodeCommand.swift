#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore
import Dispatch
import Foundation
import NIOPosix
import Raft
import Synchronization

/// A string key/value store, the state machine of `consul-sim raft-node`.
///
/// The keys are spread over `shardCount` dictionaries: the node serializes a snapshot from a copy
/// of the machine while it goes on applying, and the first write after the copy then duplicates
/// only the dictionary it touches, not the whole store at once on the event loop.
package struct StringKVMachine: RaftStateMachine {
    private var shards = [[String: String]](repeating: [:], count: Self.shardCount)
    /// Keys and values are single words of the line protocol; longer ones are refused.
    package static let maxKeyBytes = 1024
    package static let maxValueBytes = 32 * 1024
    static let shardCount = 64

    package init() {}

    package func value(for key: String) -> String? {
        shards[Self.shard(of: key)][key]
    }

    package var count: Int { shards.reduce(0) { $0 + $1.count } }

    /// FNV-1a of the key's bytes: the same shard in every process.
    static func shard(of key: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(hash % UInt64(shardCount))
    }

    package static func put(_ key: String, _ value: String) -> [UInt8] {
        var writer = ByteWriter()
        writer.string(key)
        writer.string(value)
        return writer.bytes
    }

    package mutating func apply(_ command: [UInt8], at index: LogIndex) -> [UInt8] {
        var reader = ByteReader(command)
        guard let key = try? reader.string(), let value = try? reader.string() else { return [0] }
        shards[Self.shard(of: key)][key] = value
        return [1]
    }

    /// One piece per key, in key order.
    package func snapshot(into sink: SnapshotSink) {
        for key in shards.flatMap(\.keys).sorted() {
            sink.write { piece in
                piece.string(key)
                piece.string(value(for: key)!)
            }
        }
    }

    package mutating func restore(from source: inout SnapshotSource) throws(RaftNodeError) {
        var restored = [[String: String]](repeating: [:], count: Self.shardCount)
        do throws(DecodeError) {
            while var piece = try source.next() {
                let key = try piece.string()
                restored[Self.shard(of: key)][key] = try piece.string()
                guard piece.isAtEnd else { throw .invalid("trailing bytes in a key's piece", at: piece.offset) }
            }
        } catch {
            throw .badSnapshot("\(error)")
        }
        shards = restored
    }
}

/// `consul-sim raft-node`: one Raft server as a real process, for the multi-process cluster test
/// and the benchmark. Raft over TCP (`RaftTCPTransport`) on `--bind`, a real WAL and snapshots in
/// `--dir`, the state machine `StringKVMachine`, and a client port speaking one line per request:
///
///     PUT <key> <value>   → OK | ERR notleader <leader or -> | ERR <reason>   (after commit and apply)
///     GET <key>           → VALUE <value> | NONE | ERR ...                    (linearizable, leader only)
///     LOCAL <key>         → VALUE <value> | NONE                              (this server's state)
///     STATUS              → STATUS <role> <term> <leader or -> <commit> <applied> <last> <snapshot>
///
/// The node, its Raft connections and its client connections share one event loop
/// (`RaftNodeClientPort`). Prints `ready` once both ports listen, then runs until killed.
package enum RaftNodeCommand {
    package struct Arguments: Equatable {
        package var id = ""
        package var directory = ""
        package var bind = ""
        package var client = ""
        package var peers: [ServerID: String] = [:]
        package var snapshotEvery: UInt64 = 1024
        package var trailingEntries: UInt64 = 64
        package var electionMilliseconds = 1000
    }

    package static let usage = "raft-node --id ID --dir D --bind HOST:PORT --client HOST:PORT --peers ID=HOST:PORT,... "
        + "[--snapshot-every N] [--trailing N] [--election-ms N]"

    package static func parse(_ arguments: [String]) -> Arguments? {
        var parsed = Arguments()
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { return nil }
            switch flag {
            case "--id": parsed.id = value
            case "--dir": parsed.directory = value
            case "--bind": parsed.bind = value
            case "--client": parsed.client = value
            case "--peers":
                for item in value.split(separator: ",") {
                    let parts = item.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2, splitHostPort(String(parts[1])) != nil else { return nil }
                    parsed.peers[ServerID(String(parts[0]))] = String(parts[1])
                }
            case "--snapshot-every": guard let number = UInt64(value), number > 0 else { return nil }; parsed.snapshotEvery = number
            case "--trailing": guard let number = UInt64(value) else { return nil }; parsed.trailingEntries = number
            case "--election-ms": guard let number = Int(value), number >= 50 else { return nil }; parsed.electionMilliseconds = number
            default: return nil
            }
        }
        guard !parsed.id.isEmpty, !parsed.directory.isEmpty, splitHostPort(parsed.bind) != nil, splitHostPort(parsed.client) != nil,
              parsed.peers[ServerID(parsed.id)] != nil
        else { return nil }
        return parsed
    }

    package static func run(_ arguments: [String], out: (String) -> Void, err: (String) -> Void) -> Int32 {
        guard let parsed = parse(arguments) else {
            err("usage: consul-sim " + usage)
            return 2
        }
        let failure = Shared<String?>(nil)
        let finished = DispatchSemaphore(value: 0)
        Task {
            do {
                try await serve(parsed)
                writeStdout("ready")
            } catch {
                failure.value.withLock { $0 = "\(error)" }
                finished.signal()
            }
        }
        // Serves until killed; returns only when starting failed.
        finished.wait()
        err("raft-node: \(failure.value.withLock { $0 } ?? "stopped")")
        return 1
    }

    private static func serve(_ arguments: Arguments) async throws {
        let id = ServerID(arguments.id)
        // One event loop carries the node, its Raft connections and its client connections, so a
        // commit hands nothing between threads but the disk writes (see `RaftNode`).
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let transport = RaftTCPTransport(localID: id, group: loop)
        let (bindHost, bindPort) = splitHostPort(arguments.bind)!
        _ = try await transport.listen(host: bindHost, port: bindPort)
        var options = RaftOptions()
        options.electionTimeout = .milliseconds(arguments.electionMilliseconds)
        options.heartbeatInterval = .milliseconds(max(arguments.electionMilliseconds / 10, 10))
        options.retransmitTimeout = .milliseconds(max(arguments.electionMilliseconds / 3, 30))
        options.trailingEntries = arguments.trailingEntries
        try FileManager.default.createDirectory(atPath: arguments.directory, withIntermediateDirectories: true)
        let configuration = ClusterConfiguration(servers: arguments.peers.keys.sorted().map {
            ServerEntry(id: $0, suffrage: .voter, address: arguments.peers[$0]!)
        })
        let seed = arguments.id.utf8.reduce(UInt64(getpid())) { $0 &* 31 &+ UInt64($1) }
        let node = try RaftNode(
            id: id, directory: arguments.directory, machine: StringKVMachine(), transport: transport, clock: SystemMonotonicClock(),
            random: SeededRandom(seed: seed), options: options, bootstrap: configuration, snapshots: .every(arguments.snapshotEvery),
            eventLoop: loop)
        for note in node.recoveryNotes { writeStderr("raft-node: recovered: " + note) }
        transport.onReceive { node.deliver($0) }
        await node.start()
        let (clientHost, clientPort) = splitHostPort(arguments.client)!
        do {
            _ = try await RaftNodeClientPort.listen(host: clientHost, port: clientPort, node: node)
        } catch {
            throw RaftNodeError.storage("cannot listen on client address \(arguments.client): \(error)")
        }
    }

    /// The answer line to a `PUT`.
    static func putAnswer(_ result: Result<[UInt8], RaftNodeError>) -> String {
        switch result {
        case .success: "OK"
        case .failure(let error): errorAnswer(error)
        }
    }

    static func errorAnswer(_ error: RaftNodeError) -> String {
        if case .rejected(.notLeader(let hint)) = error { return "ERR notleader \(hint?.rawValue ?? "-")" }
        return "ERR \(error)"
    }

    static func handle(_ line: String, node: RaftNode<StringKVMachine>) async -> String {
        let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        do throws(RaftNodeError) {
            switch (words.first, words.count) {
            case ("PUT", 3):
                guard words[1].utf8.count <= StringKVMachine.maxKeyBytes, words[2].utf8.count <= StringKVMachine.maxValueBytes else {
                    return "ERR too large"
                }
                _ = try await node.propose(StringKVMachine.put(words[1], words[2]))
                return "OK"
            case ("GET", 2):
                try await node.linearizableRead()
                return await node.withMachine { $0.value(for: words[1]) }.map { "VALUE " + $0 } ?? "NONE"
            case ("LOCAL", 2):
                return await node.withMachine { $0.value(for: words[1]) }.map { "VALUE " + $0 } ?? "NONE"
            case ("STATUS", 1):
                let status = await node.status()
                return "STATUS \(status.role) \(status.term) \(status.leader?.rawValue ?? "-") \(status.commitIndex) "
                    + "\(status.appliedIndex) \(status.lastIndex) \(status.snapshotIndex)"
            default:
                return "ERR unknown request"
            }
        } catch {
            return errorAnswer(error)
        }
    }

    private static func writeStdout(_ line: String) { writeLine(line, to: 1) }

    private static func writeStderr(_ line: String) { writeLine(line, to: 2) }
}

/// A value shared between threads and tasks.
final class Shared<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ initial: Value) { value = Mutex(initial) }
}
