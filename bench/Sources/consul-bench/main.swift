// Micro-benchmarks for the hot paths that bench/*.sh compare against their anchors.
// Prints machine-readable lines; the scripts turn them into side-by-side tables.
import ConsulAgent
import ConsulCore
import ConsulCrypto
#if canImport(Glibc)
import Glibc
#endif

let usage = """
    usage: consul-bench crypto [-sizes 64,512,1400] [-seconds S]
           consul-bench dns serve [-port 0] [-seconds 30] [-services 20] [-instances 3] [-nodes 20]
           consul-bench dns files -dir DIR [-services 20] [-instances 3] [-nodes 20]
           consul-bench dns resolve [-seconds 2] [-services 20] [-instances 3] [-nodes 20]
      crypto      seal+open one gossip packet with the AES-256-GCM keyring, per message size
      dns serve   the agent's DNS server on 127.0.0.1 over an in-memory catalog; prints "ready port=P"
      dns resolve parse+resolve+encode of the same 50/50 A/SRV queries in a loop, no sockets (CPU ns per query)
      dns files   writes DIR/hosts and DIR/dnsmasq.conf (the same records for dnsmasq) and DIR/queries (50/50 A/SRV)
    """

func fail(_ message: String) -> Never {
    var standardError = StandardError()
    print(message, to: &standardError)
    exit(2)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

/// Runs `body` in growing batches until `seconds` of wall time have passed; returns ns per call.
func measure(seconds: Double, _ body: () -> Void) -> (nanosecondsPerCall: Double, calls: Int) {
    let clock = SystemMonotonicClock()
    let budget = Duration.nanoseconds(Int64(seconds * 1e9))
    var calls = 0
    var batch = 64
    let start = clock.now()
    while clock.now().duration(since: start) < budget {
        for _ in 0..<batch { body() }
        calls += batch
        batch = min(batch * 2, 65_536)
    }
    let elapsed = Double(clock.now().duration(since: start).totalNanoseconds)
    return (elapsed / Double(calls), calls)
}

func runCrypto(arguments: ArraySlice<String>) {
    var sizes = [64, 512, 1400]
    var seconds = 1.0
    var rest = arguments
    while let flag = rest.popFirst() {
        guard let value = rest.popFirst() else { fail("flag \(flag) needs a value\n\(usage)") }
        switch flag {
        case "-sizes", "--sizes":
            let parsed = value.split(separator: ",").map { Int($0) }
            guard !parsed.isEmpty, parsed.allSatisfy({ ($0 ?? 0) > 0 }) else { fail("bad -sizes: \(value)") }
            sizes = parsed.map { $0! }
        case "-seconds", "--seconds":
            guard let parsed = Double(value), parsed > 0 else { fail("bad -seconds: \(value)") }
            seconds = parsed
        default:
            fail("unknown flag \(flag)\n\(usage)")
        }
    }
    let keyring = Keyring(primary: GossipKey.generate())
    print("# OpenSSL: \(OpenSSLLibrary.version)")
    for size in sizes {
        let message = SecureRandom.bytes(size)
        var sink = 0
        let result = measure(seconds: seconds) {
            let sealed = keyring.encrypt(message)
            // A failure here would make the number meaningless: stop loudly.
            guard let opened = try? keyring.decrypt(sealed), opened.count == size else { fail("round trip failed at \(size) bytes") }
            sink &+= opened.count
        }
        precondition(sink != 0)
        print("crypto size=\(size) seal_open_ns=\(String(format: result.nanosecondsPerCall)) calls=\(result.calls)")
    }
}

func String(format value: Double) -> String {
    let rounded = (value * 10).rounded() / 10
    return "\(rounded)"
}

func runDNS(arguments: ArraySlice<String>) async {
    var rest = arguments
    let action = rest.popFirst()
    var options = ["port": "0", "seconds": "30", "services": "20", "instances": "3", "nodes": "20", "dir": ""]
    while let flag = rest.popFirst() {
        let name = String(flag.drop { $0 == "-" })
        guard options[name] != nil, let value = rest.popFirst() else { fail("bad flag \(flag)\n\(usage)") }
        options[name] = value
    }
    func number(_ name: String) -> Int {
        guard let value = Int(options[name]!), value >= 0 else { fail("bad -\(name): \(options[name]!)") }
        return value
    }
    let services = number("services"), instances = number("instances"), nodes = max(1, number("nodes"))
    switch action {
    case "serve":
        do {
            let summary = try await DNSBench.serve(
                host: "127.0.0.1", port: number("port"), services: services, instancesPerService: instances, nodes: nodes,
                seconds: number("seconds"), ready: { port in writeUnbuffered(1, "ready port=\(port)\n") })
            print("done \(summary)")
        } catch {
            fail("dns serve: \(error)")
        }
    case "resolve":
        let result = DNSBench.resolveLoop(
            services: services, instancesPerService: instances, nodes: nodes, seconds: Double(number("seconds")),
            clock: ThreadCPUClock())
        print("dns resolve ns_per_query=\(String(format: result.nanoseconds)) queries=\(result.queries)")
    case "files":
        let directory = options["dir"]!
        guard !directory.isEmpty else { fail("dns files needs -dir\n\(usage)") }
        let records = DNSBench.dnsmasqRecords(services: services, instancesPerService: instances, nodes: nodes)
        writeFile(directory + "/hosts", records.hosts)
        writeFile(directory + "/dnsmasq.conf", records.config)
        writeFile(directory + "/queries", DNSBench.queries(services: services))
    default:
        fail(usage)
    }
}

/// CPU time of the calling thread: a per-query cost that other processes on the machine do not
/// inflate the way they inflate wall time.
struct ThreadCPUClock: MonotonicClock {
    func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return Timestamp(nanoseconds: UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec))
    }
}

/// Straight to the file descriptor, so a script reading our output sees the line at once.
func writeUnbuffered(_ descriptor: Int32, _ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
}

func writeFile(_ path: String, _ text: String) {
    guard let file = fopen(path, "w") else { fail("cannot write \(path)") }
    let bytes = Array(text.utf8)
    let written = fwrite(bytes, 1, bytes.count, file)
    fclose(file)
    guard written == bytes.count else { fail("short write to \(path)") }
}

var arguments = CommandLine.arguments.dropFirst()
switch arguments.popFirst() {
case "crypto": runCrypto(arguments: arguments)
case "dns": await runDNS(arguments: arguments)
default: fail(usage)
}
