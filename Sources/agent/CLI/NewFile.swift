#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files that must never replace an existing one (keys, certificates): created with
/// O_EXCL, written fully, fsynced before success is reported.
enum NewFile {
    enum Failure: Error, Equatable, CustomStringConvertible {
        case exists(String)
        case system(String, operation: String, errno: Int32)

        var description: String {
            switch self {
            case .exists(let path): return "\(path) already exists; refusing to overwrite it"
            case .system(let path, let operation, let code): return "cannot \(operation) \(path): \(String(cString: strerror(code)))"
            }
        }
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    static func create(_ path: String, contents: String, mode: mode_t) throws(Failure) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else {
            if errno == EEXIST { throw .exists(path) }
            throw .system(path, operation: "create", errno: errno)
        }
        defer { close(descriptor) }
        var bytes = Array(contents.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw .system(path, operation: "write", errno: errno)
            }
            offset += written
        }
        guard fsync(descriptor) == 0 else { throw .system(path, operation: "fsync", errno: errno) }
    }

    /// The whole file as text, or nil when it cannot be read.
    static func read(_ path: String, limit: Int = 1 << 20) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while result.count <= limit {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            result.append(contentsOf: chunk[0..<count])
        }
        return result.count > limit ? nil : String(decoding: result, as: UTF8.self)
    }
}
