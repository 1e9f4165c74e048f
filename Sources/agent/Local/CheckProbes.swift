import ConsulCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// What one run of a probe saw.
struct ProbeResult: Equatable, Sendable {
    var status: HealthStatus
    var output: String
}

/// The probes behind HTTP, TCP, UDP and script checks: thin shells over sockets and processes.
/// They never run on an event loop thread's time: sockets are NIO's (non-blocking), scripts are
/// waited for through their termination handler. How a result maps to a status is
/// `CheckStatusRules`' business.
struct CheckProbes: Sendable {
    let group: any EventLoopGroup
    let limiter: ProbeLimiter
    /// Client TLS for `https://` checks.
    var tls = CheckTLS()

    func run(_ kind: CheckDefinition.Kind, timeout: Duration) async -> ProbeResult {
        await limiter.acquire()
        defer { Task { await limiter.release() } }
        switch kind {
        case .http(let probe): return await http(probe, timeout: timeout)
        case .tcp(let address): return await tcp(address, timeout: timeout)
        case .udp(let address): return await udp(address, timeout: timeout)
        case .script(let args): return await ScriptProbe.run(args, timeout: timeout)
        case .ttl: return ProbeResult(status: .critical, output: "TTL checks are not probed")
        case .alias: return ProbeResult(status: .critical, output: "alias checks are not probed")
        }
    }

    // MARK: HTTP

    func http(_ probe: CheckDefinition.HTTPProbe, timeout: Duration) async -> ProbeResult {
        let failure = { (reason: String) in ProbeResult(status: .critical, output: CheckStatusRules.truncated(reason)) }
        guard let url = CheckURL(probe.url) else { return failure("invalid check URL \"\(probe.url)\"") }
        let goVerb = probe.method.prefix(1) + probe.method.dropFirst().lowercased()
        let promise = group.next().makePromise(of: HTTPCheckResponse.self)
        let tls = self.tls
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(.nanoseconds(timeout.nioNanoseconds))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if url.secure {
                            try tls.addHandlers(
                                to: channel.pipeline.syncOperations, skipVerify: probe.tlsSkipVerify, serverName: probe.tlsServerName, host: url.host)
                        }
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(HTTPCheckCollector(promise: promise))
                    }
                }
                .connect(host: url.host, port: url.port).get()
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: url.hostHeader)
            headers.add(name: "User-Agent", value: "Consul Health Check")
            headers.add(name: "Accept", value: "text/plain, text/*, */*")
            for (name, values) in probe.headers {
                if name.lowercased() == "host" || name.lowercased() == "user-agent" || name.lowercased() == "accept" { headers.remove(name: name) }
                for value in values { headers.add(name: name, value: value) }
            }
            headers.add(name: "Content-Length", value: String(probe.body.utf8.count))
            headers.add(name: "Connection", value: "close")
            channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: probe.method), uri: url.target, headers: headers)), promise: nil)
            if !probe.body.isEmpty { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: probe.body))), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(timeout.nioNanoseconds)) {
                promise.fail(CheckProbeError("\(goVerb) \"\(probe.url)\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"))
                channel.close(promise: nil)
            }
            defer { deadline.cancel() }
            let response = try await promise.futureResult.get()
            // The body's tail is already at most 4 KiB; the prefix is not cut again, or the tail would lose its end.
            let output = "HTTP \(probe.method) \(probe.url): \(response.code) \(response.reason) Output: \(CheckStatusRules.tail(response.body))"
            return ProbeResult(status: CheckStatusRules.status(httpCode: response.code), output: output)
        } catch let error as CheckProbeError {
            return failure(error.message.hasPrefix("tls: ") ? "\(goVerb) \"\(probe.url)\": \(error.message)" : error.message)
        } catch {
            promise.fail(error)
            if error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError {
                return failure("\(goVerb) \"\(probe.url)\": \(CheckTLS.describe(error))")
            }
            return failure("\(goVerb) \"\(probe.url)\": \(Self.dialError(error, host: url.host, port: url.port, network: "tcp"))")
        }
    }

    // MARK: TCP

    func tcp(_ address: String, timeout: Duration) async -> ProbeResult {
        guard let (host, port) = Self.hostPort(address) else {
            return ProbeResult(status: .critical, output: "invalid TCP address \"\(address)\"; use host:port")
        }
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(.nanoseconds(timeout.nioNanoseconds))
                .connect(host: host, port: port).get()
            try? await channel.close()
            return ProbeResult(status: .passing, output: "TCP connect \(address): Success")
        } catch {
            return ProbeResult(status: .critical, output: Self.dialError(error, host: host, port: port, network: "tcp"))
        }
    }

    // MARK: UDP

    /// Consul's UDP check: send a datagram; an ICMP "port unreachable" (seen as ECONNREFUSED on a
    /// connected socket) is critical, an answer or silence until the timeout is passing.
    func udp(_ address: String, timeout: Duration) async -> ProbeResult {
        guard let (host, port) = Self.hostPort(address) else {
            return ProbeResult(status: .critical, output: "invalid UDP address \"\(address)\"; use host:port")
        }
        let promise = group.next().makePromise(of: ProbeResult.self)
        do {
            let channel = try await DatagramBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(UDPCheckHandler(promise: promise, address: address))
                    }
                }
                .connect(host: host, port: port).get()
            let payload = AddressedEnvelope(remoteAddress: channel.remoteAddress!, data: ByteBuffer(string: "consul udp check"))
            try await channel.writeAndFlush(payload)
            let quiet = channel.eventLoop.scheduleTask(in: .nanoseconds(min(timeout, .seconds(2)).nioNanoseconds)) {
                promise.succeed(ProbeResult(status: .passing, output: "UDP connect \(address): Success"))
            }
            let result = try await promise.futureResult.get()
            quiet.cancel()
            try? await channel.close()
            return result
        } catch {
            promise.succeed(ProbeResult(status: .critical, output: ""))
            return ProbeResult(status: .critical, output: Self.dialError(error, host: host, port: port, network: "udp"))
        }
    }

    // MARK: helpers

    static func hostPort(_ address: String) -> (String, Int)? {
        var text = Substring(address)
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = text[text.index(after: text.startIndex)..<close]
            text = text[text.index(after: close)...]
            guard text.hasPrefix(":"), let port = Int(text.dropFirst()), (1...65535).contains(port) else { return nil }
            return (String(host), port)
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        let host = String(text[..<colon])
        return host.isEmpty ? nil : (host, port)
    }

    /// Go's wording for failed dials, which operators grep for.
    static func dialError(_ error: any Error, host: String, port: Int, network: String) -> String {
        let text = "\(error)"
        if text.contains("refused") { return "dial \(network) \(host):\(port): connect: connection refused" }
        if text.lowercased().contains("timeout") || text.contains("timed out") { return "dial \(network) \(host):\(port): i/o timeout" }
        return "dial \(network) \(host):\(port): \(text)"
    }
}

struct CheckProbeError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Bounds how many probes run at once, so a thousand checks cannot open a thousand sockets or
/// processes in the same instant.
actor ProbeLimiter {
    static let maxConcurrentProbes = 32
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if running < Self.maxConcurrentProbes {
            running += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}

/// An `http://host:port/path?query` URL, split for a request.
struct CheckURL: Equatable {
    var secure: Bool
    var host: String
    var port: Int
    var target: String
    var hostHeader: String

    init?(_ text: String) {
        var rest: Substring
        if text.hasPrefix("http://") {
            secure = false
            rest = text.dropFirst(7)
        } else if text.hasPrefix("https://") {
            secure = true
            rest = text.dropFirst(8)
        } else {
            return nil
        }
        let slash = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<slash]
        let path = rest[slash...]
        target = path.isEmpty ? "/" : (path.hasPrefix("?") ? "/" + path : String(path))
        hostHeader = String(authority)
        let defaultPort = secure ? 443 : 80
        if let (host, port) = CheckProbes.hostPort(String(authority)) {
            self.host = host
            self.port = port
        } else if !authority.isEmpty, !authority.contains(":") || authority.hasPrefix("[") {
            host = authority.hasPrefix("[") ? String(authority.dropFirst().dropLast()) : String(authority)
            port = defaultPort
        } else {
            return nil
        }
        rest = ""
    }
}

struct HTTPCheckResponse: Sendable {
    var code: Int
    var reason: String
    var body: [UInt8]
}

/// Collects the status line and the last `outputMaxBytes` of the body, as Consul's ring buffer
/// does: the whole body is read (the probe's timeout bounds how long), only its tail is kept.
private final class HTTPCheckCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<HTTPCheckResponse>
    private var response: HTTPCheckResponse?

    init(promise: EventLoopPromise<HTTPCheckResponse>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            response = HTTPCheckResponse(code: Int(head.status.code), reason: head.status.reasonPhrase, body: [])
        case .body(let buffer):
            guard response != nil else { return }
            response!.body += buffer.readableBytesView
            // Compact only once twice the window has piled up, so each byte is moved at most once or twice.
            let keep = CheckStatusRules.outputMaxBytes + 4
            if response!.body.count > 2 * keep { response!.body.removeFirst(response!.body.count - keep) }
        case .end:
            if let response { promise.succeed(response) }
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let response { promise.succeed(response) } else { promise.fail(CheckProbeError("EOF")) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}

private final class UDPCheckHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let promise: EventLoopPromise<ProbeResult>
    private let address: String

    init(promise: EventLoopPromise<ProbeResult>, address: String) {
        self.promise = promise
        self.address = address
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        promise.succeed(ProbeResult(status: .passing, output: "UDP connect \(address): Success"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let (host, port) = CheckProbes.hostPort(address) ?? (address, 0)
        promise.succeed(ProbeResult(status: .critical, output: CheckProbes.dialError(error, host: host, port: port, network: "udp")))
    }
}

/// Script (`args`) checks: the program runs without a shell, in a process group of its own, with
/// stdout and stderr captured into a temporary file (a pipe could fill up and stall the child).
/// At the timeout the whole group is killed, as Consul does, so a shell script's children (a
/// `curl` that hangs) do not outlive the check.
enum ScriptProbe {
    /// How often a running script is looked at: starts fast for quick scripts, backs off to this.
    static let maxPollInterval: Duration = .milliseconds(100)

    static func run(_ args: [String], timeout: Duration) async -> ProbeResult {
        guard let program = args.first else { return ProbeResult(status: .critical, output: "no program to run") }
        let outputPath = NSTemporaryDirectory() + "consul-check-" + UUID().uuidString
        let outputFD = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard outputFD >= 0 else {
            return ProbeResult(status: .critical, output: "cannot create a file for the check's output in \(NSTemporaryDirectory())")
        }
        defer { unlink(outputPath) }
        let path = program.contains("/") ? program : Self.lookUp(program) ?? program
        let spawned = spawn(path: path, args: args, outputFD: outputFD)
        close(outputFD)
        let pid: pid_t
        switch spawned {
        case .success(let child): pid = child
        case .failure(let error): return ProbeResult(status: .critical, output: "Failed to invoke: \(program): \(String(cString: strerror(error.code)))")
        }

        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var pause: Duration = .milliseconds(5)
        var status: Int32 = 0
        var timedOut = false
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped < 0 && errno != EINTR {
                // Someone else reaped it (should not happen): say so rather than guess an exit code.
                kill(-pid, SIGKILL)
                return ProbeResult(status: .critical, output: "lost track of the check's process: \(String(cString: strerror(errno)))")
            }
            if !timedOut && (clock.now >= deadline || Task.isCancelled) {
                // The whole group: the script and whatever it started.
                kill(-pid, SIGKILL)
                timedOut = true
            }
            try? await Task.sleep(for: min(pause, max(.milliseconds(1), deadline - clock.now), timedOut ? .milliseconds(5) : pause))
            pause = min(pause * 2, maxPollInterval)
        }
        if timedOut {
            kill(-pid, SIGKILL)
            return ProbeResult(status: .critical, output: "Timed out (\(GoDuration.format(timeout))) running check")
        }
        let output = CheckStatusRules.tail(Self.readTail(outputPath, count: CheckStatusRules.outputMaxBytes + 4))
        // Exited normally: its code; killed by a signal: critical (Go reports -1).
        let code: Int32 = status & 0x7f == 0 ? (status >> 8) & 0xff : 2
        return ProbeResult(status: CheckStatusRules.status(exitCode: code), output: output)
    }

    /// posix_spawn with stdin from /dev/null, stdout and stderr to `outputFD`, a new process group,
    /// and default signal handling (the agent ignores SIGPIPE; its checks must not inherit that).
    static func spawn(path: String, args: [String], outputFD: Int32) -> Result<pid_t, Errno> {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outputFD, 1)
        posix_spawn_file_actions_adddup2(&actions, outputFD, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        let argv = args.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        return result == 0 ? .success(pid) : .failure(Errno(result))
    }

    struct Errno: Error {
        var code: Int32
        init(_ code: Int32) { self.code = code }
    }

    /// The last `count` bytes of a file (a script may have written megabytes; only the end is shown).
    static func readTail(_ path: String, count: Int) -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd() else { return [] }
        try? handle.seek(toOffset: size > UInt64(count) ? size - UInt64(count) : 0)
        return (try? handle.readToEnd()).map { Array($0) } ?? []
    }

    /// `PATH` lookup, as Go's exec.Command does for a bare program name.
    static func lookUp(_ program: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

extension Duration {
    var nioNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
