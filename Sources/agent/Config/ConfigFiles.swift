#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore

/// Reads config files and lists config directories, with the system's reason when it cannot
/// (an operator needs "Permission denied" or "No such file or directory", not just "failed").
enum ConfigFiles {
    struct Failure: Error, Equatable {
        var path: String
        var reason: String
    }

    enum Kind { case file, directory, other }

    static func kind(_ path: String) throws(Failure) -> Kind {
        var info = stat()
        guard stat(path, &info) == 0 else { throw Failure(path: path, reason: systemReason()) }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .file
        default: return .other
        }
    }

    /// The whole file, refusing files larger than the config readers accept anyway.
    static func read(_ path: String, limit: Int = ConfigParseLimits.defaultMaxInputBytes) throws(Failure) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw Failure(path: path, reason: systemReason()) }
        defer { close(descriptor) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, reason: systemReason())
            }
            if count == 0 { break }
            result.append(contentsOf: chunk[0..<count])
            if result.count > limit {
                throw Failure(path: path, reason: "file is larger than \(limit) bytes")
            }
        }
        return result
    }

    /// Names of the entries of a directory (no `.`/`..`), sorted bytewise as Go's `ReadDir`
    /// sorts them, which is the "lexical order" Consul promises for `-config-dir`.
    static func entries(_ path: String) throws(Failure) -> [String] {
        guard let directory = opendir(path) else { throw Failure(path: path, reason: systemReason()) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    private static func systemReason() -> String {
        String(cString: strerror(errno))
    }
}
