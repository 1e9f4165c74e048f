import ConsulCore

/// `consul keyring -list | -list-primary | -install K | -use K | -remove K`: one keyring action
/// per run over `/v1/operator/keyring`, printed as Consul prints it.
enum KeyringCommand {
    struct Flags {
        var http = HTTPOptions()
        var install: String?
        var use: String?
        var remove: String?
        var list = false
        var listPrimary = false
        var relayFactor: Int?
        var localOnly = false
    }

    static let usage = """
        Usage: consul keyring [options]

          Manages encryption keys used for gossip messages. Gossip encryption is
          optional. When enabled, this command may be used to examine active encryption
          keys in the cluster, add new keys, and remove old ones. When combined, this
          functionality provides the ability to perform key rotation cluster-wide,
          without disrupting the cluster.

          All operations performed by this command can only be run against server nodes.

          All variations of the keyring command return 0 if all nodes reply and there
          are no errors. If any node fails to reply or reports failure, the exit code
          will be 1.

        """

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        var f = FlagSet<Flags>(commandName: "keyring")
        HTTPOptions.register(into: &f, \.http, withQueryFlags: false)
        f.string("install", \.install, usage: "Install a new encryption key. This will broadcast the new key to all members in the cluster.")
        f.string("use", \.use, usage: "Change the primary encryption key, which is used to encrypt messages. The key must already be installed before this operation can succeed.")
        f.string("remove", \.remove, usage: "Remove the given key from the cluster. This operation may only be performed on keys which are not currently the primary key.")
        f.bool("list", \.list, usage: "List all keys currently in use within the cluster.")
        f.bool("list-primary", \.listPrimary, usage: "List all primary keys currently in use within the cluster.")
        f.int("relay-factor", \.relayFactor, usage: "Setting this to a non-zero value will cause nodes to relay their response to the operation through this many randomly-chosen other nodes in the cluster. The maximum allowed value is 5.")
        f.bool("local-only", \.localOnly, usage: "Setting this to true will force the keyring query to only hit local servers (no WAN traffic). This flag can only be set for list queries.")
        var flags = Flags()
        switch parseFlags(f, arguments, into: &flags, help: usage, io: io) {
        case .exit(let code): return code
        case .parsed: break
        }
        let actions = [flags.install != nil, flags.use != nil, flags.remove != nil, flags.list, flags.listPrimary].filter { $0 }.count
        if actions > 1 {
            io.errorLine("Only a single action is allowed")
            return 1
        }
        if actions == 0 {
            io.err(usage + "\nCommand Options:\n\n" + f.usage + "\n")
            return 1
        }
        var query: [(String, String?)] = []
        if let relay = flags.relayFactor {
            guard (0...5).contains(relay) else {
                io.errorLine("Error parsing relay factor: Relay factor must be in range: [0, 5]")
                return 1
            }
            if relay > 0 { query.append(("relay-factor", String(relay))) }
        }
        if flags.localOnly {
            guard flags.list || flags.listPrimary else {
                io.errorLine("Error validating local-only: local-only can only be set for list requests")
                return 1
            }
            query.append(("local-only", "true"))
        }
        return HTTPCommand.run(io: io) { () throws(CommandFailure) -> Int32 in
            let client = try makeClient(flags.http)
            let target = HTTPOptions.target("/v1/operator/keyring", query)
            func call(_ method: String, body: [UInt8] = []) throws(CommandFailure) -> AgentHTTPClient.Response {
                do {
                    return try HTTPCommand.call(client, method, target, body: body)
                } catch {
                    throw CommandFailure("error: \(error.message)")
                }
            }
            if flags.list || flags.listPrimary {
                io.line(flags.list ? "==> Gathering installed encryption keys..." : "==> Gathering installed primary encryption keys...")
                let pools = try HTTPCommand.json(try call("GET")).arrayValue ?? []
                for pool in pools { io.line(format(pool, keysField: flags.list ? "Keys" : "PrimaryKeys")) }
                return 0
            }
            let (method, key, banner): (String, String, String) =
                if let key = flags.install { ("POST", key, "==> Installing new gossip encryption key...") }
                else if let key = flags.use { ("PUT", key, "==> Changing primary gossip encryption key...") }
                else { ("DELETE", flags.remove ?? "", "==> Removing gossip encryption key...") }
            io.line(banner)
            var body = JSONWriter()
            body.object { w in w.field("Key") { $0.string(key) } }
            _ = try call(method, body: body.bytes)
            return 0
        }
    }

    /// One pool's block: a blank line, `dc1 (LAN):`, member messages, then `  <key> [n/total]`.
    static func format(_ pool: ConfigValue, keysField: String) -> String {
        var text = "\n"
        text += pool["WAN"]?.boolValue == true ? "WAN:\n" : "\(pool.text("Datacenter")) (LAN):\n"
        for member in (pool["Messages"]?.objectValue?.members ?? []).sorted(by: { $0.key < $1.key }) {
            text += "  ===> \(member.key): \(member.value.stringValue ?? "")\n"
        }
        let total = pool.text("NumNodes")
        for entry in (pool[keysField]?.objectValue?.members ?? []).sorted(by: { $0.key < $1.key }) {
            text += "  \(entry.key) [\(entry.value.integerValue.map(String.init) ?? "0")/\(total)]\n"
        }
        while text.last == "\n" { text.removeLast() }
        return text
    }
}
