import Foundation
@testable import ConsulAgent

/// A fresh directory under the system temp dir, removed when the value is released.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "consul-config-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `contents` to `name` (relative, sub-directories created) and returns the full path.
    @discardableResult
    func write(_ name: String, _ contents: String) throws -> String {
        let file = path + "/" + name
        try FileManager.default.createDirectory(
            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try contents.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}

/// Loads with the given flags; the loader's error is returned as its problem descriptions.
func loadConfig(_ configure: (inout AgentFlags) -> Void) -> Result<LoadedAgentConfig, AgentConfigError> {
    var flags = AgentFlags()
    configure(&flags)
    do throws(AgentConfigError) {
        return .success(try AgentConfigLoader(flags: flags).load())
    } catch {
        return .failure(error)
    }
}

/// Parses an agent command line (as typed, without `consul agent`) and loads its configuration.
func loadConfig(commandLine: [String], requireDataDir: Bool = true) throws -> Result<LoadedAgentConfig, AgentConfigError> {
    var flags = AgentFlags()
    let rest = try AgentFlags.flagSet.parse(commandLine, into: &flags)
    precondition(rest.isEmpty, "unexpected arguments \(rest)")
    do throws(AgentConfigError) {
        return .success(try AgentConfigLoader(flags: flags, requireDataDir: requireDataDir).load())
    } catch {
        return .failure(error)
    }
}

extension Result where Success == LoadedAgentConfig, Failure == AgentConfigError {
    var config: AgentConfig? { try? get().config }
    var warnings: [String] { (try? get().warnings) ?? [] }
    var errors: [String] {
        if case .failure(let error) = self { return error.problems.map(\.description) }
        return []
    }
}
