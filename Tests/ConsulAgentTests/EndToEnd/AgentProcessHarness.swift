import Foundation
import Synchronization
import Testing

/// Output collected from a child process while it runs.
final class OutputBuffer: Sendable {
    let bytes = Mutex<[UInt8]>([])
}

/// Starts real `consul` processes built by this package and drives them over real sockets.
/// Every wait is bounded; every process is killed when the harness is done with it.
final class AgentProcessHarness: @unchecked Sendable {
    /// The package's build products sit next to the test bundle.
    static var productsDirectory: URL {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        while directory.path != "/" {
            if FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("consul").path) { return directory }
            directory = directory.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../.build/debug").standardized
    }

    static var consulPath: String { productsDirectory.appendingPathComponent("consul").path }

    let process = Process()
    private let output = Pipe()
    private let collected = OutputBuffer()

    init(arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: Self.consulPath)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        output.fileHandleForReading.readabilityHandler = { [collected] handle in
            let data = handle.availableData
            collected.bytes.withLock { $0.append(contentsOf: data) }
        }
        try process.run()
    }

    var log: String { collected.bytes.withLock { String(decoding: $0, as: UTF8.self) } }

    func stop(signal: Int32 = SIGTERM) -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        output.fileHandleForReading.readabilityHandler = nil
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Runs a CLI command to completion: (exit code, stdout, stderr).
    static func cli(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: consulPath)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        if let stdin {
            let input = Pipe()
            process.standardInput = input
            try process.run()
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try input.fileHandleForWriting.close()
        } else {
            try process.run()
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    /// One HTTP request with URLSession-free plain sockets would be more work; curl is in every
    /// Debian image, but to depend on nothing we use our own CLI client through `consul` where we
    /// can and this tiny HTTP/1.0 client elsewhere.
    static func http(_ method: String, host: String, port: Int, path: String, body: [UInt8] = [], headers: [String: String] = [:]) throws -> (status: Int, headers: [String: String], body: String) {
        let socket = Darwinless.socket()
        defer { close(socket) }
        try Darwinless.connect(socket, host: host, port: port)
        var request = "\(method) \(path) HTTP/1.0\r\nHost: \(host)\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try Darwinless.send(socket, Array(request.utf8) + body)
        let response = Darwinless.receiveAll(socket)
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw HarnessError("no HTTP header end in: \(text)") }
        let headLines = text[..<split.lowerBound].split(separator: "\r\n")
        let status = Int(headLines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var parsed: [String: String] = [:]
        for line in headLines.dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                parsed[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return (status, parsed, String(text[split.upperBound...]))
    }

    /// Finds `tool` on PATH, installing Debian's `package` with apt-get when it is missing.
    static func ensureTool(_ tool: String, package: String) throws -> String {
        for directory in ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: "\(directory)/\(tool)") {
            return "\(directory)/\(tool)"
        }
        let install = Process()
        install.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        install.arguments = ["bash", "-c", "(apt-get install -y \(package) || (apt-get update && apt-get install -y \(package))) >/dev/null 2>&1"]
        install.environment = ["DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        try install.run()
        install.waitUntilExit()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/\(tool)") else {
            throw HarnessError("\(tool) is missing and `apt-get install \(package)` did not provide it")
        }
        return "/usr/bin/\(tool)"
    }

    /// Runs any program to completion: (exit code, stdout).
    static func run(_ path: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Polls `condition` every 50 ms until it holds or `seconds` pass.
    static func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Blocking POSIX socket calls for the test client.
enum Darwinless {
    static func socket() -> Int32 { Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) }

    static func connect(_ socket: Int32, host: String, port: Int) throws {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw HarnessError("connect to \(host):\(port) failed: errno \(errno)") }
    }

    static func send(_ socket: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { throw HarnessError("send failed: errno \(errno)") }
            offset += sent
        }
    }

    static func receiveAll(_ socket: Int32) -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            // Child processes exiting send this process SIGCHLD; a recv it interrupts is retried.
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return result }
            result.append(contentsOf: buffer[0..<count])
        }
    }
}
