// Micro-benchmarks for the hot paths that bench/*.sh compare against their anchors.
// Prints machine-readable lines; the scripts turn them into side-by-side tables.
import ConsulCore
import ConsulCrypto
#if canImport(Glibc)
import Glibc
#endif

let usage = """
    usage: consul-bench crypto [-sizes 64,512,1400] [-seconds S]
      crypto   seal+open one gossip packet with the AES-256-GCM keyring, per message size
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

var arguments = CommandLine.arguments.dropFirst()
switch arguments.popFirst() {
case "crypto": runCrypto(arguments: arguments)
default: fail(usage)
}
