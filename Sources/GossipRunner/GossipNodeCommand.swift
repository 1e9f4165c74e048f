#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore
import Gossip
import NIOPosix
import Synchronization

/// `gossip-node` (also `consul-sim gossip-node`): one real gossip node in its own process, for
/// interop tests with HashiCorp's `serf` and for bench/gossip.sh (a process can be killed with
/// SIGKILL, which an in-process node cannot). The `gossip-node` executable is this command alone,
/// linked with nothing but Gossip and its dependencies, so that what bench/gossip.sh measures
/// (RSS per node) is the gossip node and not the simulator, Raft or Foundation.
///
/// Prints `ready <address>` once listening, then events as lines (`member-join <name> <addr>`,
/// `member-failed ...`, `member-leave ...`, `user-event <name> <payload>`). Reads commands from
/// standard input, one per line, each answered by one line (`members` by `member` lines then
/// `end`): `members`, `summary` (member counts by status), `status <name>`, `join <ip:port>`,
/// `event <name> [payload]`, `keys`, `metrics`, `leave` (graceful, then exit), `quit`.
/// SIGINT leaves gracefully, SIGTERM stops at once. With `--exit-on-eof`, end of input stops the
/// node (so a test that dies does not leave it running).
package enum GossipNodeCommand {
    package struct Arguments: Equatable {
        package var name = ""
        package var bind: GossipAddress?
        package var join: [GossipAddress] = []
        package var encrypt: String?
        package var dataDirectory: String?
        package var profile = "lan"
        package var tags: [String: String] = [:]
        package var logLevel = GossipLogLevel.info
        package var exitOnEOF = false
    }

    package static let usage = """
        usage: gossip-node --name N --bind IP:PORT [--join IP:PORT]... [--encrypt KEY] [--data-dir DIR]
                           [--profile lan|wan|local] [--tag K=V]... [--log-level debug|info|warn|error] [--exit-on-eof]
               (the same as `consul-sim gossip-node ...`)
        """

    package static func parse(_ arguments: [String]) -> Arguments? {
        var parsed = Arguments()
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            let flag = argument.hasPrefix("--") ? String(argument.dropFirst()) : argument
            func value() -> String? { iterator.next() }
            switch flag {
            case "-name": guard let name = value(), !name.isEmpty else { return nil }; parsed.name = name
            case "-bind": guard let text = value(), let address = GossipAddress(text) else { return nil }; parsed.bind = address
            case "-join": guard let text = value(), let address = GossipAddress(text) else { return nil }; parsed.join.append(address)
            case "-encrypt": guard let key = value() else { return nil }; parsed.encrypt = key
            case "-data-dir": guard let directory = value() else { return nil }; parsed.dataDirectory = directory
            case "-profile": guard let name = value(), SWIMConfig.profile(named: name) != nil else { return nil }; parsed.profile = name
            case "-tag":
                guard let pair = value(), let equals = pair.firstIndex(of: "=") else { return nil }
                parsed.tags[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            case "-log-level":
                switch value() {
                case "debug": parsed.logLevel = .debug
                case "info": parsed.logLevel = .info
                case "warn": parsed.logLevel = .warn
                case "error": parsed.logLevel = .error
                default: return nil
                }
            case "-exit-on-eof": parsed.exitOnEOF = true
            default: return nil
            }
        }
        guard !parsed.name.isEmpty, parsed.bind != nil else { return nil }
        return parsed
    }

    /// Exit codes: 0 after leave/quit/EOF, 1 when start or join failed, 2 on bad usage.
    package static func run(_ arguments: [String], out: (String) -> Void, err: (String) -> Void) -> Int32 {
        guard let parsed = parse(arguments), let bind = parsed.bind else {
            err(usage)
            return 2
        }
        let resolution: GossipKeyringFile.Resolution
        do {
            resolution = try GossipKeyringFile.resolve(dataDirectory: parsed.dataDirectory, encrypt: parsed.encrypt)
        } catch {
            writeLine("error: \(error)", to: 2)
            return 1
        }
        let clock = SystemMonotonicClock()
        let logger = RateLimitedLogger(minimumLevel: parsed.logLevel, clock: clock) { level, text in writeLine("[\(level)] \(text)", to: 2) }
        for (level, line) in resolution.messages { logger.log(level, line) }
        var configuration = GossipNodeConfiguration(
            name: parsed.name, bindAddress: bind, serf: SerfConfig(swim: SWIMConfig.profile(named: parsed.profile)!, tags: parsed.tags),
            keyring: resolution.keyring)
        if case .keyringFile(let path) = resolution.source { configuration.keyringFilePath = path }
        if case .encryptSetting(let path?) = resolution.source { configuration.keyringFilePath = path }
        // A node runs on one event loop: a group of one thread, not NIO's singleton of one thread
        // per core, whose other threads the node never used (one thread fewer; no measurable RSS
        // difference, see bench/README.md). The process ends when `run` returns.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let node = GossipNode(configuration: configuration, group: group, clock: clock, logger: logger) { event in
            switch event {
            case .member(let change): writeLine("\(change.kind.rawValue) \(change.member.name) \(change.member.address)", to: 1)
            case .user(let event): writeLine("user-event \(event.name) \(String(decoding: event.payload, as: UTF8.self))", to: 1)
            case .query(let query): writeLine("query \(query.name)", to: 1)
            case .keyringChanged(let keyring): writeLine("keyring \(keyring.base64Keys.joined(separator: ","))", to: 1)
            }
        }
        if let failure = blocking({ () async -> String? in
            do throws(GossipNodeError) {
                try await node.start()
                return nil
            } catch {
                return error.description
            }
        }) {
            writeLine("error: \(failure)", to: 2)
            return 1
        }
        writeLine("ready \(node.address.map { "\($0)" } ?? "?")", to: 1)
        if !parsed.join.isEmpty {
            let joined = blocking { () async -> Result<Int, GossipNodeError> in
                do throws(GossipNodeError) {
                    return .success(try await node.join(parsed.join, ignoreOld: true))
                } catch {
                    return .failure(error)
                }
            }
            switch joined {
            case .success(let count): writeLine("joined \(count)", to: 1)
            case .failure(let error):
                writeLine("join-failed: \(error)", to: 1)
                writeLine("error: \(error)", to: 2)
                blocking { await node.shutdown() }
                return 1
            }
        }
        installSignalHandlers()
        var input = LineReader(fd: 0)
        while true {
            switch Signals.received.load(ordering: .relaxed) {
            case SIGINT:
                blocking { await node.leave() }
                blocking { await node.shutdown() }
                writeLine("left", to: 1)
                return 0
            case SIGTERM:
                blocking { await node.shutdown() }
                return 0
            default:
                break
            }
            // Blocks until input or a signal (whose handler writes to the wake-up pipe): an idle
            // runner must not add wake-ups of its own to the node it hosts.
            switch input.nextLine(wakeFD: Signals.wakeReadFD.load(ordering: .relaxed)) {
            case .line(let line):
                if execute(line, on: node, logger: logger) == .stop { return 0 }
            case .eof where parsed.exitOnEOF:
                blocking { await node.shutdown() }
                return 0
            case .eof:
                break  // nextLine waited for a signal
            case .none:
                break
            }
        }
    }

    private enum Next { case `continue`, stop }

    private static func execute(_ line: String, on node: GossipNode, logger: RateLimitedLogger) -> Next {
        let words = line.split(separator: " ", maxSplits: 2).map(String.init)
        switch words.first {
        case "members":
            for member in node.members { writeLine("member \(member.name) \(member.address) \(member.status)", to: 1) }
            writeLine("end", to: 1)
        case "summary":
            var counts: [SerfMemberStatus: Int] = [:]
            for member in node.members { counts[member.status, default: 0] += 1 }
            let order: [SerfMemberStatus] = [.alive, .leaving, .left, .failed]
            writeLine("summary " + order.map { "\($0)=\(counts[$0] ?? 0)" }.joined(separator: " "), to: 1)
        case "status":
            guard words.count >= 2 else { writeLine("error: status needs a name", to: 1); break }
            writeLine("status \(words[1]) \(node.member(words[1]).map { "\($0.status)" } ?? "none")", to: 1)
        case "join":
            guard words.count >= 2, let address = GossipAddress(words[1]) else { writeLine("error: join needs ip:port", to: 1); break }
            let result = blocking { () async -> String in
                do throws(GossipNodeError) {
                    return "joined \(try await node.join([address], ignoreOld: true))"
                } catch {
                    return "join-failed: \(error)"
                }
            }
            writeLine(result, to: 1)
        case "event":
            guard words.count >= 2 else { writeLine("error: event needs a name", to: 1); break }
            do throws(GossipNodeError) {
                try node.userEvent(name: words[1], payload: Array((words.count > 2 ? words[2] : "").utf8))
                writeLine("ok", to: 1)
            } catch {
                writeLine("error: \(error)", to: 1)
            }
        case "keys":
            let result = blocking { () async -> String in
                do throws(GossipNodeError) {
                    let listing = try await node.keyOperation(.list)
                    return "keys " + listing.keys.keys.sorted().map { "\($0)=\(listing.keys[$0]!)" }.joined(separator: " ")
                } catch {
                    return "error: \(error)"
                }
            }
            writeLine(result, to: 1)
        case "metrics":
            let metrics = node.metrics
            let rtt = metrics.probeRTTAverage.map { "\($0)" } ?? "-"
            writeLine("metrics packets_in=\(metrics.packetsIn) packets_out=\(metrics.packetsOut) bytes_in=\(metrics.bytesIn) bytes_out=\(metrics.bytesOut) decrypt_failures=\(metrics.decryptFailures) plaintext_dropped=\(metrics.plaintextDropped) probes=\(metrics.probes) probe_rtt_avg=\(rtt) health=\(node.healthScore)", to: 1)
        case "leave":
            blocking { await node.leave() }
            // Between the two waits, so a leave that never reports `left` shows which one hung.
            logger.log(.info, "gossip: leave finished, shutting down")
            blocking { await node.shutdown() }
            writeLine("left", to: 1)
            return .stop
        case "quit":
            blocking { await node.shutdown() }
            return .stop
        default:
            writeLine("error: unknown command", to: 1)
        }
        return .continue
    }

    // MARK: - Plumbing for a synchronous main thread

    /// Runs async work from the (synchronous) command thread and waits for it.
    @discardableResult
    private static func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let box = Mutex<T?>(nil)
        Task { let value = await body(); box.withLock { $0 = value } }
        while true {
            if let value = box.withLock({ $0 }) { return value }
            usleep(2_000)
        }
    }

    private enum Signals {
        static let received = Atomic<Int32>(0)
        /// The self-pipe: a signal handler writes a byte, which ends the main thread's poll.
        static let wakeReadFD = Atomic<Int32>(-1)
        static let wakeWriteFD = Atomic<Int32>(-1)
    }

    private static func installSignalHandlers() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
            Signals.wakeReadFD.store(fds[0], ordering: .relaxed)
            Signals.wakeWriteFD.store(fds[1], ordering: .relaxed)
        }
        let handler: @convention(c) (Int32) -> Void = { signal in
            Signals.received.store(signal, ordering: .relaxed)
            var byte: UInt8 = 1
            _ = write(Signals.wakeWriteFD.load(ordering: .relaxed), &byte, 1)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }

    /// Lines from a file descriptor, waiting until one arrives or `wakeFD` becomes readable.
    private struct LineReader {
        enum Read { case line(String), eof, none }

        let fd: Int32
        var pending: [UInt8] = []
        var closed = false

        init(fd: Int32) { self.fd = fd }

        mutating func nextLine(wakeFD: Int32) -> Read {
            if let line = takeLine() { return .line(line) }
            if closed {
                // Nothing more will come in: wait for a signal only.
                var wake = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
                if wakeFD >= 0 { _ = poll(&wake, 1, -1) } else { usleep(200_000) }
                return .eof
            }
            // Without a wake-up pipe, fall back to checking for signals every 200 ms.
            var descriptors = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            guard poll(&descriptors, wakeFD >= 0 ? 2 : 1, wakeFD >= 0 ? -1 : 200) > 0 else { return .none }
            guard descriptors[0].revents != 0 else { return .none }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 {
                closed = true
                return pending.isEmpty ? .eof : .line(String(decoding: pending, as: UTF8.self))
            }
            pending.append(contentsOf: chunk[0..<count])
            if pending.count > 64 * 1024 { pending.removeAll() }  // a runaway line is dropped
            return takeLine().map { .line($0) } ?? .none
        }

        private mutating func takeLine() -> String? {
            guard let newline = pending.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            let line = String(decoding: pending[..<newline], as: UTF8.self)
            pending.removeSubrange(...newline)
            return line
        }
    }
}
