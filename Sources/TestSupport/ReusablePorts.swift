#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Ports for tests that bind a port, release it and bind it again later (a server restarted on
/// its address). Port 0 hands out an ephemeral port, and while the server is down any outgoing
/// connection on the machine may take that port as its source port: the second bind then fails
/// with "Address already in use". These ports come from below the ephemeral range instead, and
/// each is handed out once per process.
package enum ReusablePorts {
    /// The first port handed out: the fixed ports tests bind (7946, 8300-8600, 18300-18683) lie below.
    static let lowest = 20_000
    private static let cursor = Atomic<Int>(Int.random(in: 0..<4_096))

    /// A port below the ephemeral range that is free on `host` for TCP (and UDP when `udp`),
    /// or nil when none of a bounded number of candidates is.
    package static func next(host: String = "127.0.0.1", udp: Bool = false) -> Int? {
        let highest = ephemeralLow - 1
        guard highest > lowest else { return nil }
        for _ in 0..<256 {
            let port = lowest + cursor.add(1, ordering: .relaxed).oldValue % (highest - lowest + 1)
            if canBind(host: host, port: port, type: SOCK_STREAM) && (!udp || canBind(host: host, port: port, type: SOCK_DGRAM)) {
                return port
            }
        }
        return nil
    }

    /// The first port of `ip_local_port_range` (Linux's default when it cannot be read), read once.
    static let ephemeralLow: Int = {
        let fd = open("/proc/sys/net/ipv4/ip_local_port_range", O_RDONLY)
        guard fd >= 0 else { return 32_768 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return 32_768 }
        let text = String(decoding: buffer[..<count], as: UTF8.self)
        return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 32_768
    }()

    private static func canBind(host: String, port: Int, type: __socket_type) -> Bool {
        let fd = socket(AF_INET, Int32(type.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return false }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
