import Foundation

/// The agent's data directory as Consul lays it out: `node-id`, `raft/`, `serf/`. Checks that the
/// directory belongs to this node and that its files are readable before anything starts.
struct AgentDataDir {
    let path: String

    enum Failure: Error, CustomStringConvertible {
        case notADirectory(String)
        case unreadable(String, String)
        case corruptNodeID(String, String)
        case otherNode(file: String, stored: String, configured: String)

        var description: String {
            switch self {
            case .notADirectory(let path): return "Data dir \(path) exists but is not a directory"
            case .unreadable(let path, let reason): return "Failed to read \(path): \(reason)"
            case .corruptNodeID(let path, let content): return "Corrupt node ID in \(path): \"\(content)\" is not a UUID"
            case .otherNode(let file, let stored, let configured):
                return "Data dir belongs to node \(stored) (\(file)), but this agent is configured with node ID \(configured); use that node's data dir or an empty one"
            }
        }
    }

    init(path: String) throws(Failure) {
        self.path = path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw .notADirectory(path) }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw .unreadable(path, "\(error)")
            }
        }
    }

    var raftDirectory: String { path + "/raft" }

    /// Creates `raft/` (Raft creates its own `wal/` and `snapshots/` inside).
    func prepareRaftDirectory() throws(Failure) {
        do {
            try FileManager.default.createDirectory(atPath: raftDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .unreadable(raftDirectory, "\(error)")
        }
    }
    var serfDirectory: String { path + "/serf" }

    /// The node's ID: read from `node-id`, or created there (fsynced) on first start. A configured
    /// ID must match what the directory holds.
    func nodeID(configured: String?) throws(Failure) -> String {
        let file = path + "/node-id"
        if FileManager.default.fileExists(atPath: file) {
            let content: String
            do {
                content = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                throw .unreadable(file, "\(error)")
            }
            guard UUID(uuidString: content) != nil else { throw .corruptNodeID(file, content) }
            if let configured, configured.lowercased() != content.lowercased() {
                throw .otherNode(file: file, stored: content, configured: configured)
            }
            return content.lowercased()
        }
        let id = (configured ?? UUID().uuidString).lowercased()
        do {
            try NewFile.create(file, contents: id, mode: 0o600)
        } catch {
            throw .unreadable(file, "\(error)")
        }
        return id
    }
}
