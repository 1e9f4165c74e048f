import ConsulCore
import Foundation

/// `consul kv get|put|delete`, over the agent's `/v1/kv` endpoint, with Consul's output and exits.
enum KVCommand {
    static let help = """
        Usage: consul kv <subcommand> [options] [args]

          This command has subcommands for interacting with Consul's key-value
          store. Here are some simple examples, and more detailed examples are
          available in the subcommands or the documentation.

          Create or update the key named "redis/config/connections" with the value "5":

              $ consul kv put redis/config/connections 5

          Read this value back:

              $ consul kv get redis/config/connections

          Or get detailed key information:

              $ consul kv get -detailed redis/config/connections

          Finally, delete the key:

              $ consul kv delete redis/config/connections

        Subcommands:
            delete    Removes data from the KV store
            get       Retrieves or lists data from the KV store
            put       Sets or updates data in the KV store

        """

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        let rest = Array(arguments.dropFirst())
        switch arguments.first {
        case "get": return get(rest, io: io)
        case "put": return put(rest, io: io)
        case "delete": return delete(rest, io: io)
        case "-h", "--help", "-help":
            io.err(help)
            return 0
        default:
            io.err(help)
            return 1
        }
    }

    // MARK: get

    struct GetFlags {
        var http = HTTPOptions()
        var recurse = false
        var keys = false
        var separator: String? = nil
        var detailed = false
        var base64 = false
    }

    static func get(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<GetFlags>(commandName: "kv get")
        HTTPOptions.register(into: &f, \.http)
        f.bool("recurse", \.recurse, usage: "Recursively look at all keys prefixed with the given path.")
        f.bool("keys", \.keys, usage: "List keys which start with the given prefix, but not their values.")
        f.string("separator", \.separator, usage: "String to use as a separator between keys. The default value is \"/\", but this option is only taken into account when paired with the -keys flag.")
        f.bool("detailed", \.detailed, usage: "Provide additional metadata about the key in addition to the value such as the ModifyIndex and any flags that may have been set on the key.")
        f.bool("base64", \.base64, usage: "Base64 encode the value.")
        var flags = GetFlags()
        let usage = "Usage: consul kv get [options] [KEY_OR_PREFIX]\n\n  Retrieves the value from Consul's key-value store at the given key name.\n"
        let rest: [String]
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed(let parsed): rest = parsed
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            guard rest.count <= 1 else { throw CommandFailure("Too many arguments (expected 1, got \(rest.count))") }
            var key = rest.first ?? ""
            if key.hasPrefix("/") { key.removeFirst() }
            guard !key.isEmpty || flags.recurse || flags.keys else { throw CommandFailure("Error! Missing KEY argument") }
            let client = try makeClient(flags.http)

            if flags.keys {
                let separator = flags.separator ?? "/"
                let response = try HTTPCommand.call(client, "GET", flags.http.target("/v1/kv/" + key, [("keys", nil), ("separator", separator)]), allow404: true)
                guard response.status != 404 else { return 0 }
                for element in try HTTPCommand.json(response).arrayValue ?? [] { io.line(element.stringValue ?? "") }
                return 0
            }
            let response = try HTTPCommand.call(
                client, "GET", flags.http.target("/v1/kv/" + key, flags.recurse ? [("recurse", nil)] : []), allow404: true)
            if response.status == 404 {
                if flags.recurse { return 0 }
                throw CommandFailure("Error! No key exists at: \(key)")
            }
            let entries = try HTTPCommand.json(response).arrayValue ?? []
            for (position, entry) in entries.enumerated() {
                let value = decodeValue(entry)
                let shown = flags.base64 ? Base64.encode(value) : String(decoding: value, as: UTF8.self)
                if flags.detailed {
                    if position > 0 { io.line("") }
                    let session = entry.text("Session")
                    io.line(HTTPCommand.columns([
                        ["CreateIndex", entry.text("CreateIndex")], ["Flags", entry.text("Flags")], ["Key", entry.text("Key")],
                        ["LockIndex", entry.text("LockIndex")], ["ModifyIndex", entry.text("ModifyIndex")],
                        ["Session", session.isEmpty ? "-" : session], ["Value", shown],
                    ]))
                } else if flags.recurse {
                    io.line("\(entry.text("Key")):\(shown)")
                } else {
                    io.line(shown)
                }
            }
            return 0
        }
    }

    private static func decodeValue(_ entry: ConfigValue) -> [UInt8] {
        guard let text = entry["Value"]?.stringValue else { return [] }
        return Base64.decode(Substring(text)) ?? []
    }

    // MARK: put

    struct PutFlags {
        var http = HTTPOptions()
        var cas = false
        var modifyIndex: Int? = nil
        var flags: Int? = nil
        var acquire = false
        var release = false
        var session: String? = nil
        var base64 = false
    }

    static func put(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<PutFlags>(commandName: "kv put")
        HTTPOptions.register(into: &f, \.http)
        f.bool("cas", \.cas, usage: "Perform a Check-And-Set operation. Specifying this value also requires the -modify-index flag to be set.")
        f.int("modify-index", \.modifyIndex, usage: "Unsigned integer representing the ModifyIndex of the key. This is used in combination with the -cas flag.")
        f.int("flags", \.flags, usage: "Unsigned integer value to assign to this key-value pair.")
        f.bool("acquire", \.acquire, usage: "Obtain a lock on the key. If the key does not exist, this will create the key and obtain the lock. The session must already exist and be specified via the -session flag.")
        f.bool("release", \.release, usage: "Forfeit the lock on the key at the given path. This requires the -session flag to be set.")
        f.string("session", \.session, usage: "User-defined identifier for this session as a string, commonly a UUID.")
        f.bool("base64", \.base64, usage: "Treat the data as base 64 encoded.")
        var flags = PutFlags()
        let usage = "Usage: consul kv put [options] KEY [DATA]\n\n  Writes the data to the given path in the key-value store.\n"
        let rest: [String]
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed(let parsed): rest = parsed
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            guard var key = rest.first else { throw CommandFailure("Error! Missing KEY argument") }
            guard rest.count <= 2 else { throw CommandFailure("Too many arguments (expected 1 or 2, got \(rest.count))") }
            if key.hasPrefix("/") { key.removeFirst() }
            if flags.cas && flags.modifyIndex == nil { throw CommandFailure("Must specify -modify-index with -cas!") }
            if (flags.acquire || flags.release) && (flags.session ?? "").isEmpty {
                throw CommandFailure("Error! Missing -session (required with -acquire and -release)")
            }
            var data = try readData(rest.count > 1 ? rest[1] : nil)
            if flags.base64 {
                guard let decoded = Base64.decode(Substring(String(decoding: data, as: UTF8.self))) else {
                    throw CommandFailure("Error! Cannot base 64 decode data")
                }
                data = decoded
            }
            var parameters: [(String, String?)] = []
            if let value = flags.flags { parameters.append(("flags", String(value))) }
            if flags.cas, let index = flags.modifyIndex { parameters.append(("cas", String(index))) }
            if flags.acquire { parameters.append(("acquire", flags.session)) }
            if flags.release { parameters.append(("release", flags.session)) }
            let client = try makeClient(flags.http)
            let response = try HTTPCommand.call(client, "PUT", HTTPOptions.target("/v1/kv/" + key, parameters + datacenterParameter(flags.http)), body: data)
            let succeeded = response.text.trimmingCharacters(in: .whitespacesAndNewlines) == "true"
            if flags.acquire {
                guard succeeded else { throw CommandFailure("Error! Did not acquire lock") }
                io.line("Success! Lock acquired on: \(key)")
            } else if flags.release {
                guard succeeded else { throw CommandFailure("Error! Did not release lock") }
                io.line("Success! Lock released on: \(key)")
            } else if flags.cas {
                guard succeeded else { throw CommandFailure("Error! Did not write to \(key): CAS failed") }
                io.line("Success! Data written to: \(key)")
            } else {
                io.line("Success! Data written to: \(key)")
            }
            return 0
        }
    }

    /// `DATA` as Consul reads it: literal text, `@file`, or `-` for stdin; absent means empty.
    private static func readData(_ argument: String?) throws(CommandFailure) -> [UInt8] {
        guard let argument else { return [] }
        if argument == "-" {
            return Array(FileHandle.standardInput.readDataToEndOfFile())
        }
        if argument.hasPrefix("@") {
            let path = String(argument.dropFirst())
            guard let data = FileManager.default.contents(atPath: path) else { throw CommandFailure("Failed to read file: \(path)") }
            return Array(data)
        }
        return Array(argument.utf8)
    }

    // MARK: delete

    struct DeleteFlags {
        var http = HTTPOptions()
        var recurse = false
        var cas = false
        var modifyIndex: Int? = nil
    }

    static func delete(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<DeleteFlags>(commandName: "kv delete")
        HTTPOptions.register(into: &f, \.http)
        f.bool("recurse", \.recurse, usage: "Recursively delete all keys with the path. The default value is false.")
        f.bool("cas", \.cas, usage: "Perform a Check-And-Set operation. Specifying this value also requires the -modify-index flag to be set.")
        f.int("modify-index", \.modifyIndex, usage: "Unsigned integer representing the ModifyIndex of the key. This is used in combination with the -cas flag.")
        var flags = DeleteFlags()
        let usage = "Usage: consul kv delete [options] KEY_OR_PREFIX\n\n  Removes the value from Consul's key-value store at the given path.\n"
        let rest: [String]
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed(let parsed): rest = parsed
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            guard rest.count <= 1 else { throw CommandFailure("Too many arguments (expected 1, got \(rest.count))") }
            var key = rest.first ?? ""
            if key.hasPrefix("/") { key.removeFirst() }
            guard !key.isEmpty || flags.recurse else { throw CommandFailure("Error! Missing KEY argument") }
            if flags.cas && flags.modifyIndex == nil { throw CommandFailure("Must specify -modify-index with -cas!") }
            if flags.cas && flags.recurse { throw CommandFailure("Cannot specify both -cas and -recurse!") }
            var parameters: [(String, String?)] = []
            if flags.recurse { parameters.append(("recurse", nil)) }
            if flags.cas, let index = flags.modifyIndex { parameters.append(("cas", String(index))) }
            let client = try makeClient(flags.http)
            let response = try HTTPCommand.call(client, "DELETE", HTTPOptions.target("/v1/kv/" + key, parameters + datacenterParameter(flags.http)))
            if flags.cas && response.text.trimmingCharacters(in: .whitespacesAndNewlines) != "true" {
                throw CommandFailure("Error! Did not delete key \(key): CAS failed")
            }
            io.line(flags.recurse ? "Success! Deleted keys with prefix: \(key)" : "Success! Deleted key: \(key)")
            return 0
        }
    }

    private static func datacenterParameter(_ http: HTTPOptions) -> [(String, String?)] {
        guard let dc = http.datacenter, !dc.isEmpty else { return [] }
        return [("dc", dc)]
    }
}

/// The agent client for a command's HTTP options, with a usable error.
func makeClient(_ options: HTTPOptions) throws(CommandFailure) -> AgentHTTPClient {
    do {
        return try options.client()
    } catch {
        throw CommandFailure("Error connecting to Consul agent: \(error.description)")
    }
}
