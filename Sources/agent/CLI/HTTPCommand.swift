import ConsulCore
import Foundation

/// The flags every command that talks to an agent shares, and what they resolve to.
struct HTTPOptions {
    var httpAddr: String?
    var token: String?
    var tokenFile: String?
    var datacenter: String?
    var stale = false
    var caFile: String?
    var caPath: String?
    var clientCert: String?
    var clientKey: String?
    var tlsServerName: String?

    static func register<O>(into flags: inout FlagSet<O>, _ path: WritableKeyPath<O, HTTPOptions>, withQueryFlags: Bool = true) {
        flags.string("http-addr", path.appending(path: \.httpAddr), usage: "The `address` and port of the Consul HTTP agent. The value can be an IP address or DNS address, but it must also include the port. This can also be specified via the CONSUL_HTTP_ADDR environment variable. The default value is http://127.0.0.1:8500.")
        flags.string("token", path.appending(path: \.token), usage: "ACL token to use in the request. This can also be specified via the CONSUL_HTTP_TOKEN environment variable.")
        flags.string("token-file", path.appending(path: \.tokenFile), usage: "File containing the ACL token to use in the request instead of one specified via the -token argument or CONSUL_HTTP_TOKEN environment variable.")
        flags.string("ca-file", path.appending(path: \.caFile), usage: "Path to a CA file to use for TLS when communicating with Consul. This can also be specified via the CONSUL_CACERT environment variable.")
        flags.string("ca-path", path.appending(path: \.caPath), usage: "Path to a directory of CA certificates to use for TLS when communicating with Consul. This can also be specified via the CONSUL_CAPATH environment variable.")
        flags.string("client-cert", path.appending(path: \.clientCert), usage: "Path to a client cert file to use for TLS when 'verify_incoming' is enabled. This can also be specified via the CONSUL_CLIENT_CERT environment variable.")
        flags.string("client-key", path.appending(path: \.clientKey), usage: "Path to a client key file to use for TLS when 'verify_incoming' is enabled. This can also be specified via the CONSUL_CLIENT_KEY environment variable.")
        flags.string("tls-server-name", path.appending(path: \.tlsServerName), usage: "The server name to use as the SNI host when connecting via TLS. This can also be specified via the CONSUL_TLS_SERVER_NAME environment variable.")
        if withQueryFlags {
            flags.string("datacenter", path.appending(path: \.datacenter), usage: "Name of the datacenter to query. If unspecified, this will default to the datacenter of the queried agent.")
            flags.bool("stale", path.appending(path: \.stale), usage: "Permit any Consul server (non-leader) to respond to this request.")
        }
    }

    /// The client for these options: flags first, then Consul's environment variables.
    func client(environment: [String: String] = ProcessInfo.processInfo.environment) throws(AgentHTTPClient.Failure) -> AgentHTTPClient {
        var token = self.token
        if token == nil, let file = tokenFile ?? environment["CONSUL_HTTP_TOKEN_FILE"] {
            guard let content = NewFile.read(file) else { throw AgentHTTPClient.Failure(description: "Error loading token file: cannot read \(file)") }
            token = content.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        token = token ?? environment["CONSUL_HTTP_TOKEN"]
        let tls = AgentHTTPClient.TLSOptions(
            caFile: caFile ?? environment["CONSUL_CACERT"].nonEmpty, caPath: caPath ?? environment["CONSUL_CAPATH"].nonEmpty,
            clientCert: clientCert ?? environment["CONSUL_CLIENT_CERT"].nonEmpty, clientKey: clientKey ?? environment["CONSUL_CLIENT_KEY"].nonEmpty,
            serverName: tlsServerName ?? environment["CONSUL_TLS_SERVER_NAME"].nonEmpty,
            verify: environment["CONSUL_HTTP_SSL_VERIFY"].map { !Self.isFalse($0) } ?? true)
        let defaultHTTPS = environment["CONSUL_HTTP_SSL"].map { !Self.isFalse($0) && !$0.isEmpty } ?? false
        return try AgentHTTPClient(
            address: httpAddr ?? environment["CONSUL_HTTP_ADDR"] ?? "127.0.0.1:8500", token: token, defaultHTTPS: defaultHTTPS, tlsOptions: tls)
    }

    /// Go's `strconv.ParseBool` false spellings, which Consul's environment variables use.
    static func isFalse(_ text: String) -> Bool {
        ["0", "f", "F", "false", "FALSE", "False"].contains(text)
    }

    /// `?dc=…&stale` for commands that read cluster data, appended to `path`.
    func target(_ path: String, _ extra: [(String, String?)] = []) -> String {
        var parameters = extra
        if let datacenter, !datacenter.isEmpty { parameters.append(("dc", datacenter)) }
        if stale { parameters.append(("stale", nil)) }
        return HTTPOptions.target(path, parameters)
    }

    static func target(_ path: String, _ parameters: [(String, String?)]) -> String {
        let encodedPath = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path
        guard !parameters.isEmpty else { return encodedPath }
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+")
        let query = parameters.map { name, value in
            value.map { "\(name)=\($0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0)" } ?? name
        }
        return encodedPath + "?" + query.joined(separator: "&")
    }
}

/// Helpers shared by the HTTP-speaking commands: the request with Consul's error wording, and
/// reading JSON answers.
enum HTTPCommand {
    /// Sends the request; an unreachable agent or a non-2xx status becomes Consul's error text.
    static func call(
        _ client: AgentHTTPClient, _ method: String, _ target: String, body: [UInt8] = [], allow404: Bool = false
    ) throws(CommandFailure) -> AgentHTTPClient.Response {
        let response: AgentHTTPClient.Response
        do {
            response = try client.send(.init(rawValue: method), target, body: body)
        } catch {
            throw CommandFailure("Error connecting to Consul agent: \(error.description)")
        }
        if response.status == 404 && allow404 { return response }
        guard (200..<300).contains(response.status) else {
            throw CommandFailure("Unexpected response code: \(response.status) (\(response.text.trimmingCharacters(in: .whitespacesAndNewlines)))")
        }
        return response
    }

    static func json(_ response: AgentHTTPClient.Response) throws(CommandFailure) -> ConfigValue {
        do {
            return try JSONConfigParser.parseValue(bytes: response.body, file: "agent response")
        } catch {
            throw CommandFailure("Error decoding the agent's response: \(error)")
        }
    }

    /// Runs a command body, printing its failure to stderr with exit code 1.
    static func run(io: CommandIO, _ body: () throws(CommandFailure) -> Int32) -> Int32 {
        do {
            return try body()
        } catch {
            io.errorLine(error.message)
            return error.exitCode
        }
    }

    /// Aligns rows into columns separated by two spaces, like Consul's `columnize`.
    static func columns(_ rows: [[String]]) -> String {
        guard let width = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: width)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        return rows.map { row in
            var line = row.enumerated().map { index, cell in index == row.count - 1 ? cell : cell.padding(to: widths[index]) }
                .joined(separator: "  ")
            while line.last == " " { line.removeLast() }
            return line
        }.joined(separator: "\n")
    }
}

struct CommandFailure: Error {
    var message: String
    var exitCode: Int32 = 1

    init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }
}

extension Optional where Wrapped == String {
    /// An unset or empty environment variable counts as not given.
    fileprivate var nonEmpty: String? {
        guard let self, !self.isEmpty else { return nil }
        return self
    }
}

extension ConfigValue {
    /// Members of a JSON object as strings (numbers and booleans rendered), for tables.
    func text(_ key: String) -> String {
        guard let value = self[key] else { return "" }
        switch value {
        case .string(let string): return string
        case .number(let number): return number.description
        case .bool(let bool): return String(bool)
        default: return ""
        }
    }
}
