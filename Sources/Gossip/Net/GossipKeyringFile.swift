#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore
import ConsulCrypto

/// Why a keyring file could not be used. Every case names the file, so an operator knows which
/// one to fix.
package enum GossipKeyringFileError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case malformed(path: String, reason: String)
    case badKey(path: String, index: Int, reason: String)
    case empty(path: String)
    case unwritable(path: String, reason: String)
    case badEncryptKey(String)

    package var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read keyring file \(path): \(reason)"
        case .malformed(let path, let reason): "keyring file \(path) is not a JSON list of base64 keys: \(reason)"
        case .badKey(let path, let index, let reason): "keyring file \(path), key \(index + 1): \(reason)"
        case .empty(path: let path): "keyring file \(path) holds no keys"
        case .unwritable(let path, let reason): "cannot write keyring file \(path): \(reason)"
        case .badEncryptKey(let reason): "invalid 'encrypt' key: \(reason)"
        }
    }
}

/// Consul's keyring files: `serf/local.keyring` (LAN) and `serf/remote.keyring` (WAN) in the data
/// directory, each a JSON array of base64 keys, primary first, written with mode 0600 (as serf's
/// `writeKeyringFile` does: indented JSON).
package enum GossipKeyringFile {
    package static let lanPath = "serf/local.keyring"
    package static let wanPath = "serf/remote.keyring"
    /// A keyring file is a few keys; anything much larger is not one.
    package static let maxFileBytes = 64 * 1024

    /// Where the keys in use came from, for the log line that says so (a known source of
    /// confusion: `encrypt` is ignored once a keyring file exists).
    package enum Source: Equatable, Sendable {
        case none
        case keyringFile(path: String)
        /// `encrypt` given, no keyring file yet: the key was used and saved to `path` (nil when
        /// keyring files are disabled).
        case encryptSetting(savedTo: String?)
    }

    package struct Resolution: Equatable, Sendable {
        package var keyring: Keyring?
        package var source: Source
        /// Lines to log, already phrased (the source of the keys, and warnings).
        package var messages: [(GossipLogLevel, String)]

        package static func == (lhs: Resolution, rhs: Resolution) -> Bool {
            lhs.keyring == rhs.keyring && lhs.source == rhs.source && lhs.messages.map(\.1) == rhs.messages.map(\.1)
        }
    }

    /// Consul's precedence: an existing keyring file wins (and `encrypt` is ignored, with a
    /// warning); otherwise `encrypt` is used and written to the file so later starts (and key
    /// rotation) use the file; with neither, gossip is not encrypted.
    package static func resolve(
        dataDirectory: String?, wan: Bool = false, encrypt: String?, disableKeyringFile: Bool = false
    ) throws(GossipKeyringFileError) -> Resolution {
        let pool = wan ? "WAN" : "LAN"
        let path = dataDirectory.map { join($0, wan ? wanPath : lanPath) }
        if let path, !disableKeyringFile, fileExists(path) {
            let keyring = try load(path)
            var messages: [(GossipLogLevel, String)] = []
            if encrypt != nil {
                messages.append((.warn, "\(pool) keyring exists but -encrypt given, using keyring (\(path)); the 'encrypt' setting is ignored"))
            }
            messages.append((.info, "gossip encryption (\(pool)): \(keyring.keys.count) key(s) from keyring file \(path), primary \(keyring.primaryKey.algorithm)"))
            return Resolution(keyring: keyring, source: .keyringFile(path: path), messages: messages)
        }
        guard let encrypt else {
            return Resolution(keyring: nil, source: .none, messages: [(.info, "gossip encryption (\(pool)): disabled (no 'encrypt' key and no keyring file)")])
        }
        let key: GossipKey
        do {
            key = try GossipKey(base64: encrypt)
        } catch {
            throw .badEncryptKey(error.description)
        }
        let keyring = Keyring(primary: key)
        var savedTo: String?
        if let path, !disableKeyringFile {
            try save(keyring, to: path)
            savedTo = path
        }
        let saved = savedTo.map { "; saved to \($0)" } ?? ""
        return Resolution(
            keyring: keyring, source: .encryptSetting(savedTo: savedTo),
            messages: [(.info, "gossip encryption (\(pool)): key from the 'encrypt' setting (\(key.algorithm))\(saved)")])
    }

    package static func load(_ path: String) throws(GossipKeyringFileError) -> Keyring {
        let bytes: [UInt8]
        do {
            bytes = try readFile(path, limit: maxFileBytes)
        } catch {
            throw .unreadable(path: path, reason: error.reason)
        }
        let value: ConfigValue
        do {
            value = try JSONConfigParser.parseValue(bytes: bytes, file: path)
        } catch {
            throw .malformed(path: path, reason: "\(error)")
        }
        guard case .array(let items) = value else { throw .malformed(path: path, reason: "the top level is \(value.kindDescription)") }
        var keys: [GossipKey] = []
        for (index, item) in items.enumerated() {
            guard case .string(let text) = item else { throw .badKey(path: path, index: index, reason: "not a string") }
            do {
                keys.append(try GossipKey(base64: text))
            } catch {
                throw .badKey(path: path, index: index, reason: error.description)
            }
        }
        do {
            return try Keyring(keys: keys)
        } catch {
            throw .empty(path: path)
        }
    }

    /// Writes the keyring (primary first) atomically: temporary file, fsync, rename.
    package static func save(_ keyring: Keyring, to path: String) throws(GossipKeyringFileError) {
        let body = "[\n" + keyring.base64Keys.map { "  \"\($0)\"" }.joined(separator: ",\n") + "\n]"
        do {
            try makeParentDirectory(of: path)
            try writeFileAtomically(path, Array(body.utf8), mode: 0o600)
        } catch {
            throw .unwritable(path: path, reason: error.reason)
        }
    }

    // MARK: - Small POSIX file helpers (no Foundation in the gossip module)

    struct FileError: Error {
        var reason: String
        init(_ call: String) { reason = "\(call): \(String(cString: strerror(errno)))" }
        init(reason: String) { self.reason = reason }
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func fileExists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    static func readFile(_ path: String, limit: Int) throws(FileError) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FileError("open") }
        defer { close(fd) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw FileError("read")
            }
            if count == 0 { return output }
            output.append(contentsOf: chunk[0..<count])
            if output.count > limit { throw FileError(reason: "larger than \(limit) bytes") }
        }
    }

    static func makeParentDirectory(of path: String) throws(FileError) {
        var components = path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        var current = path.hasPrefix("/") ? "" : "."
        if path.hasPrefix("/") { components = components.dropFirst() }
        for component in components where !component.isEmpty {
            current += "/" + component
            if mkdir(current, 0o700) != 0 && errno != EEXIST { throw FileError("mkdir \(current)") }
        }
    }

    static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t) throws(FileError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else { throw FileError("open \(temporary)") }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                let error = FileError("write")
                close(fd)
                throw error
            }
            offset += written
        }
        guard fsync(fd) == 0 else {
            let error = FileError("fsync")
            close(fd)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw FileError("rename") }
    }
}
