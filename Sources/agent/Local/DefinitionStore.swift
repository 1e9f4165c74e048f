import ConsulCore
import ConsulCrypto
import Dispatch
import Foundation
import Synchronization

/// The services and checks registered over the API, kept in the data dir as Consul keeps them so
/// they survive a restart: `services/<md5(id)>` and `checks/<md5(id)>`, one JSON file each
/// (`{"Service": …, "Token": …, "Source": …}` and `{"Check": …, "ChkType": …, "Token": …}`).
/// Config-file definitions are not persisted: the files are their source.
///
/// Writes happen on a queue of their own, never on an event loop or under the state's lock:
/// the shell submits the latest wanted set, the writer brings the directory to it (fsync,
/// atomic rename, directory fsync). Submissions made while a write runs are coalesced.
final class DefinitionStore: Sendable {
    /// What should be on disk: API services (without their checks) and API checks, by ID.
    struct Contents: Equatable, Sendable {
        var services: [String: ServiceDefinition] = [:]
        var checks: [String: CheckDefinition] = [:]
    }

    let dataDir: String
    private let logger: AgentLogger?
    private let queue = DispatchQueue(label: "consul.definition-store")
    private struct Progress {
        var written = Contents()
        /// The newest submission, and its number; `pending` is it while not yet taken by the writer.
        var latest = Contents()
        var latestGeneration: UInt64 = 0
        var pending: Contents?
        var writing = false
        /// The newest submission the writer has finished, and whether every write it needed worked.
        var doneGeneration: UInt64 = 0
        var doneWithoutErrors = true
        var waiters: [(generation: UInt64, continuation: CheckedContinuation<Bool, Never>)] = []
    }
    private let progress = Mutex(Progress())

    var servicesDirectory: String { dataDir + "/services" }
    var checksDirectory: String { dataDir + "/checks" }

    init(dataDir: String, logger: AgentLogger?) {
        self.dataDir = dataDir
        self.logger = logger
    }

    static func fileName(_ id: String) -> String { Digests.md5Hex(Array(id.utf8)) }

    // MARK: - Loading

    /// Reads what an earlier run persisted. A file that cannot be read or decoded is logged with
    /// its path and skipped (one bad file must not keep the agent from starting), as Consul does.
    func load() -> Contents {
        var contents = Contents()
        for (path, bytes) in Self.files(in: servicesDirectory) {
            do {
                let service = try Self.decodeService(bytes)
                contents.services[service.effectiveID] = service
            } catch {
                logger?.error("agent", "Failed decoding service file", ["file": path, "error": "\(error)"])
            }
        }
        for (path, bytes) in Self.files(in: checksDirectory) {
            do {
                let check = try Self.decodeCheck(bytes)
                contents.checks[check.id] = check
            } catch {
                logger?.error("agent", "Failed decoding check file", ["file": path, "error": "\(error)"])
            }
        }
        progress.withLock { state in
            state.written = contents
            state.latest = contents
        }
        return contents
    }

    private static func files(in directory: String) -> [(String, [UInt8])] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        return names.compactMap { name in
            let path = directory + "/" + name
            return FileManager.default.contents(atPath: path).map { (path, Array($0)) }
        }
    }

    // MARK: - Writing

    /// Asks for the directory to match `contents`; returns at once. The answer is the number of
    /// this submission, for `written(through:)`; an unchanged set gets the previous one's number
    /// (and is written again if that write failed).
    @discardableResult
    func submit(_ contents: Contents) -> UInt64 {
        let (generation, start) = progress.withLock { state -> (UInt64, Bool) in
            // Unchanged: the same number, unless that write failed (then this one tries again).
            let latestFailed = state.doneGeneration == state.latestGeneration && !state.doneWithoutErrors
            if contents == state.latest && !latestFailed { return (state.latestGeneration, false) }
            state.latest = contents
            state.latestGeneration += 1
            state.pending = contents
            if state.writing { return (state.latestGeneration, false) }
            state.writing = true
            return (state.latestGeneration, true)
        }
        if start { queue.async { self.drain() } }
        return generation
    }

    /// Waits until submission `generation` (or a later one) is on disk. False when a file could
    /// not be written or removed (the writer has logged which).
    func written(through generation: UInt64) async -> Bool {
        await withCheckedContinuation { continuation in
            let done = progress.withLock { state -> Bool? in
                if state.doneGeneration >= generation { return state.doneWithoutErrors }
                state.waiters.append((generation, continuation))
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    private func drain() {
        while true {
            let (wanted, generation, written) = progress.withLock { state -> (Contents?, UInt64, Contents) in
                let wanted = state.pending
                state.pending = nil
                if wanted == nil { state.writing = false }
                return (wanted, state.latestGeneration, state.written)
            }
            guard let wanted else { return }
            let done = apply(wanted, over: written)
            let woken = progress.withLock { state -> [CheckedContinuation<Bool, Never>] in
                state.written = done
                state.doneGeneration = generation
                state.doneWithoutErrors = done == wanted
                let ready = state.waiters.filter { $0.generation <= generation }
                state.waiters.removeAll { $0.generation <= generation }
                return ready.map(\.continuation)
            }
            for continuation in woken { continuation.resume(returning: done == wanted) }
        }
    }

    /// Writes what changed and removes what went; returns what is now on disk.
    private func apply(_ wanted: Contents, over written: Contents) -> Contents {
        var onDisk = written
        for (id, service) in wanted.services.sorted(by: { $0.key < $1.key }) where written.services[id] != service {
            if store(Self.encodeService(service), in: servicesDirectory, id: id, what: "service") { onDisk.services[id] = service }
        }
        for (id, check) in wanted.checks.sorted(by: { $0.key < $1.key }) where written.checks[id] != check {
            if store(Self.encodeCheck(check), in: checksDirectory, id: id, what: "check") { onDisk.checks[id] = check }
        }
        for id in written.services.keys.sorted() where wanted.services[id] == nil {
            if remove(in: servicesDirectory, id: id, what: "service") { onDisk.services[id] = nil }
        }
        for id in written.checks.keys.sorted() where wanted.checks[id] == nil {
            if remove(in: checksDirectory, id: id, what: "check") { onDisk.checks[id] = nil }
        }
        return onDisk
    }

    private func store(_ bytes: [UInt8], in directory: String, id: String, what: String) -> Bool {
        let path = directory + "/" + Self.fileName(id)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try Self.replaceAtomically(path, bytes)
            return true
        } catch {
            logger?.error("agent", "Failed to persist \(what)", [what: id, "file": path, "error": "\(error)"])
            return false
        }
    }

    private func remove(in directory: String, id: String, what: String) -> Bool {
        let path = directory + "/" + Self.fileName(id)
        if unlink(path) != 0 && errno != ENOENT {
            logger?.error("agent", "Failed to remove persisted \(what)", [what: id, "file": path, "error": String(cString: strerror(errno))])
            return false
        }
        return true
    }

    struct FileError: Error, CustomStringConvertible {
        var description: String
    }

    /// Temporary file beside the target, fsync, rename over it, fsync the directory: a crash
    /// leaves the old file or the new one, never half of one.
    static func replaceAtomically(_ path: String, _ bytes: [UInt8]) throws(FileError) {
        let directory = String(path[..<path.lastIndex(of: "/")!])
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileError(description: "open \(temporary): \(String(cString: strerror(errno)))") }
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw FileError(description: "write \(temporary): \(reason)")
            }
            offset += count
        }
        if fsync(fd) != 0 {
            let reason = String(cString: strerror(errno))
            close(fd)
            unlink(temporary)
            throw FileError(description: "fsync \(temporary): \(reason)")
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw FileError(description: "rename \(temporary): \(String(cString: strerror(errno)))") }
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }

    // MARK: - File contents

    /// Consul's `persistedService`: the service as the catalog shows it (`NodeService`).
    static func encodeService(_ service: ServiceDefinition) -> [UInt8] {
        var writer = JSONWriter()
        writer.object { w in
            w.field("Token") { $0.string("") }
            w.field("Service") { CatalogJSON.service(service.catalogRecord(node: ""), into: &$0, withIndexes: false) }
            w.field("Source") { $0.string("remote") }
        }
        return writer.bytes
    }

    static func decodeService(_ bytes: [UInt8]) throws -> ServiceDefinition {
        let value = try JSONConfigParser.parseValue(bytes: bytes, file: "service file")
        guard let service = value["Service"], service.objectValue != nil else { throw DefinitionError("no Service object") }
        // The API's registration shape, with the catalog's "Service" key read as the name.
        var members = service.objectValue!.members.filter { $0.key != "Service" }
        members.append(ConfigObject.Member(key: "Name", value: service["Service"] ?? .string("")))
        return try DefinitionParser(strict: false).service(.object(ConfigObject(members: members)))
    }

    /// Consul's `persistedCheck`: the check's record (`Check`) and its definition (`ChkType`).
    static func encodeCheck(_ check: CheckDefinition) -> [UInt8] {
        var writer = JSONWriter()
        writer.object { w in
            w.field("Check") { c in
                c.object { o in
                    o.field("CheckID") { $0.string(check.id) }
                    o.field("Name") { $0.string(check.name) }
                    o.field("Status") { $0.string(check.initialStatus.rawValue) }
                    o.field("Notes") { $0.string(check.notes) }
                    o.field("ServiceID") { $0.string(check.serviceID) }
                    o.field("Type") { $0.string(check.kind.typeName) }
                }
            }
            w.field("ChkType") { DefinitionJSON.check(check, into: &$0) }
            w.field("Token") { $0.string("") }
            w.field("Source") { $0.string("remote") }
        }
        return writer.bytes
    }

    static func decodeCheck(_ bytes: [UInt8]) throws -> CheckDefinition {
        let value = try JSONConfigParser.parseValue(bytes: bytes, file: "check file")
        guard let type = value["ChkType"], type.objectValue != nil else { throw DefinitionError("no ChkType object") }
        let check = try DefinitionParser(strict: false).check(type, inService: true)
        guard !check.id.isEmpty else { throw DefinitionError("the check has no CheckID") }
        return check
    }
}
