import ConsulCore
import Foundation

/// `consul snapshot save|restore|inspect FILE`, Consul's wording and exit codes.
enum SnapshotCommand {
    struct Flags {
        var http = HTTPOptions()
        var format: String?
    }

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        guard let verb = arguments.first else {
            io.err("Usage: consul snapshot <subcommand> [options] [args]\n\nSubcommands:\n    inspect    Displays information about a Consul snapshot file\n    restore    Restores snapshot of Consul server state\n    save       Saves snapshot of Consul server state\n")
            return 1
        }
        let rest = Array(arguments.dropFirst())
        switch verb {
        case "save": return save(rest, io: io)
        case "restore": return restore(rest, io: io)
        case "inspect": return inspect(rest, io: io)
        default:
            io.errorLine("Error: unknown subcommand 'consul snapshot \(verb)'; save, restore and inspect exist.")
            return 1
        }
    }

    /// Flags plus exactly one file argument.
    private static func parse(_ name: String, _ arguments: [String], usage: String, http: Bool, io: CommandIO) -> (Flags, String)? {
        var f = FlagSet<Flags>(commandName: name)
        if http {
            HTTPOptions.register(into: &f, \.http, withQueryFlags: name.hasSuffix("save"))
        } else {
            f.string("format", \.format, usage: "Output format {pretty|json}")
        }
        var flags = Flags()
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit: return nil
        case .parsed(let rest):
            guard rest.count == 1 else {
                io.errorLine(rest.isEmpty ? "Missing FILE argument" : "Too many arguments (expected 1, got \(rest.count))")
                return nil
            }
            return (flags, rest[0])
        }
    }

    static func save(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = "Usage: consul snapshot save [options] FILE\n\n  Retrieves an atomic, point-in-time snapshot of the state of the Consul servers\n  which includes key/value entries, service catalog, prepared queries, sessions,\n  and ACLs.\n"
        guard let (flags, file) = parse("snapshot save", arguments, usage: usage, http: true, io: io) else { return 1 }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            let response: AgentHTTPClient.Response
            do throws(CommandFailure) {
                response = try HTTPCommand.call(try makeClient(flags.http), "GET", flags.http.target("/v1/snapshot"))
            } catch {
                throw CommandFailure("Error saving snapshot: \(error.message)")
            }
            // Verified before it is kept: a partial or damaged download never replaces the file.
            let archive: SnapshotArchive
            do throws(SnapshotArchive.Problem) {
                archive = try SnapshotArchive.decode(response.body)
            } catch {
                throw CommandFailure("Error verifying snapshot file: \(error.description)")
            }
            let partial = file + ".part"
            guard FileManager.default.createFile(atPath: partial, contents: Data(response.body)) else {
                throw CommandFailure("Error creating snapshot file: cannot write \(partial)")
            }
            do {
                if FileManager.default.fileExists(atPath: file) { try FileManager.default.removeItem(atPath: file) }
                try FileManager.default.moveItem(atPath: partial, toPath: file)
            } catch {
                throw CommandFailure("Error creating snapshot file: \(error.localizedDescription)")
            }
            io.line("Saved and verified snapshot to index \(archive.meta.index)")
            return 0
        }
    }

    static func restore(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = "Usage: consul snapshot restore [options] FILE\n\n  Restores an atomic, point-in-time snapshot of the state of the Consul servers\n  which includes key/value entries, service catalog, prepared queries, sessions,\n  and ACLs.\n"
        guard let (flags, file) = parse("snapshot restore", arguments, usage: usage, http: true, io: io) else { return 1 }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            guard let data = FileManager.default.contents(atPath: file) else { throw CommandFailure("Error opening snapshot file: open \(file): no such file or directory") }
            do throws(CommandFailure) {
                _ = try HTTPCommand.call(try makeClient(flags.http), "PUT", "/v1/snapshot", body: Array(data))
            } catch {
                throw CommandFailure("Error restoring snapshot: \(error.message)")
            }
            io.line("Restored snapshot")
            return 0
        }
    }

    static func inspect(_ arguments: [String], io: CommandIO) -> Int32 {
        let usage = "Usage: consul snapshot inspect [options] FILE\n\n  Displays information about a snapshot file on disk.\n"
        guard let (flags, file) = parse("snapshot inspect", arguments, usage: usage, http: false, io: io) else { return 1 }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            guard let data = FileManager.default.contents(atPath: file) else { throw CommandFailure("Error opening snapshot file: open \(file): no such file or directory") }
            let archive: SnapshotArchive
            do throws(SnapshotArchive.Problem) {
                archive = try SnapshotArchive.decode(Array(data))
            } catch {
                throw CommandFailure("Error extracting snapshot data: \(error.description)")
            }
            let meta = archive.meta
            if flags.format == "json" {
                io.line(String(decoding: JSONPretty.format(SnapshotArchive.metaJSON(meta)), as: UTF8.self))
                return 0
            }
            io.line(HTTPCommand.columns([
                [" ID", meta.id], [" Size", String(meta.size)], [" Index", String(meta.index)], [" Term", String(meta.term)],
                [" Version", String(meta.version)],
            ]))
            return 0
        }
    }
}
