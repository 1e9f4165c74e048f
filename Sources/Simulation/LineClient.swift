#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A blocking TCP connection that speaks one text line per request and per answer: the client
/// side of `consul-sim raft-node`'s client port, used by the cluster test and the benchmark.
/// Every wait is bounded by `timeoutMilliseconds`.
package final class LineClient {
    /// A line longer than this is not an answer the node gives: the connection is dropped.
    package static let maxLineBytes = 64 * 1024
    private let fd: Int32
    private var buffer: [UInt8] = []
    package let timeoutMilliseconds: Int32

    /// Connects to `host:port` (IPv4); nil when that fails.
    package init?(host: String, port: Int, timeoutMilliseconds: Int32 = 5_000) {
        guard let fd = connectIPv4(host: host, port: port) else { return nil }
        self.fd = fd
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    deinit { close(fd) }

    /// Sends `line` and returns the answer line, or nil when the connection failed or timed out.
    package func request(_ line: String) -> String? {
        guard writeAll(fd, Array((line + "\n").utf8)) else { return nil }
        return readLine()
    }

    /// Sends `text` as it is (no newline added).
    package func send(_ text: String) -> Bool {
        writeAll(fd, Array(text.utf8))
    }

    /// Exactly `count` bytes (after what `readLine` left buffered), or nil.
    package func read(count: Int) -> [UInt8]? {
        guard count <= Self.maxLineBytes else { return nil }
        while buffer.count < count {
            guard fill() else { return nil }
        }
        defer { buffer.removeFirst(count) }
        return Array(buffer.prefix(count))
    }

    package func readLine() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            guard buffer.count < Self.maxLineBytes, fill() else { return nil }
        }
    }

    /// Reads what arrives next (bounded wait); false on timeout, end of stream or error.
    private func fill() -> Bool {
        var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pollFD, 1, timeoutMilliseconds) == 1 else { return false }
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        let count = chunk.withUnsafeMutableBytes { readSocket(fd, $0) }
        guard count > 0 else { return false }
        buffer += chunk[..<count]
        return true
    }
}

/// A connected TCP socket to an IPv4 `host:port` (with TCP_NODELAY), or nil.
func connectIPv4(host: String, port: Int) -> Int32? {
    #if canImport(Glibc)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { return nil }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
    guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
        close(fd)
        return nil
    }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        return nil
    }
    var on: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    return fd
}

/// A listening TCP socket on an IPv4 `host:port` (port 0: any free one) and the port it got.
func listenIPv4(host: String, port: Int, backlog: Int32 = 128) -> (fd: Int32, port: Int)? {
    #if canImport(Glibc)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { return nil }
    var on: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
    guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
        close(fd)
        return nil
    }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, listen(fd, backlog) == 0 else {
        close(fd)
        return nil
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// `read(2)` under a name `LineClient.read(count:)` does not shadow.
private func readSocket(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
    read(fd, buffer.baseAddress, buffer.count)
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
        if written < 0 && errno == EINTR { continue }
        if written <= 0 { return false }
        offset += written
    }
    return true
}
