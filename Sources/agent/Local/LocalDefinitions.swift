import ConsulCore

/// A health check as an operator defines it (config file `check`/`checks`, a service's `check`,
/// or `PUT /v1/agent/check/register`), typed and validated. What runs it and how its result is
/// judged live elsewhere (`CheckRunner`, `CheckStatusRules`).
struct CheckDefinition: Equatable, Sendable {
    /// What the check probes. Exactly one per check, as Consul requires.
    enum Kind: Equatable, Sendable {
        case http(HTTPProbe)
        case tcp(String)
        case udp(String)
        /// The application reports in (`/v1/agent/check/pass|warn|fail|update`) at least this often.
        case ttl(Duration)
        /// `args`: a program and its arguments, run without a shell.
        case script([String])
        /// `alias_node` / `alias_service`: mirrors another node's or service's health.
        case alias(AliasCheck.Target)

        /// The `Type` Consul shows for the check.
        var typeName: String {
            switch self {
            case .http: return "http"
            case .tcp: return "tcp"
            case .udp: return "udp"
            case .ttl: return "ttl"
            case .script: return "script"
            case .alias: return "alias"
            }
        }
    }

    struct HTTPProbe: Equatable, Sendable {
        var url: String
        var method = "GET"
        /// Header names with their values, in the order given (a name may carry several values).
        var headers: [(String, [String])] = []
        var body = ""
        var tlsSkipVerify = false
        /// `tls_server_name`: the name sent as SNI and checked against the certificate.
        var tlsServerName = ""

        static func == (lhs: HTTPProbe, rhs: HTTPProbe) -> Bool {
            lhs.url == rhs.url && lhs.method == rhs.method && lhs.body == rhs.body && lhs.tlsSkipVerify == rhs.tlsSkipVerify
                && lhs.tlsServerName == rhs.tlsServerName
                && lhs.headers.map(\.0) == rhs.headers.map(\.0) && lhs.headers.map(\.1) == rhs.headers.map(\.1)
        }
    }

    /// Empty until the agent assigns one (`service:<id>[:N]` for service checks, else the name).
    var id = ""
    var name = ""
    var serviceID = ""
    var notes = ""
    /// Consul starts every check critical unless told otherwise.
    var initialStatus: HealthStatus = .critical
    var kind: Kind
    var interval: Duration?
    var timeout: Duration?
    var successBeforePassing = 0
    var failuresBeforeWarning = 0
    var failuresBeforeCritical = 0
    var deregisterCriticalServiceAfter: Duration?

    var isScript: Bool {
        if case .script = kind { return true }
        return false
    }

    /// The timeout a probe runs with: given, else Consul's default for its kind.
    var effectiveTimeout: Duration {
        if let timeout, timeout > .zero { return timeout }
        return isScript ? .seconds(30) : .seconds(10)
    }

    /// Consul never probes more often than once a second.
    static let minimumInterval: Duration = .seconds(1)
}

/// A service as defined in a config file or registered over `/v1/agent/service/register`.
struct ServiceDefinition: Equatable, Sendable {
    var id = ""
    var name: String
    var tags: [String] = []
    var address = ""
    var port = 0
    var meta: [String: String] = [:]
    var weights = ServiceWeights()
    var enableTagOverride = false
    var checks: [CheckDefinition] = []

    /// The ID Consul uses when none is given: the name.
    var effectiveID: String { id.isEmpty ? name : id }
}

/// Why a definition was refused; the message names the field, in Consul's words where it has them.
struct DefinitionError: Error, Equatable, Sendable, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// Reads service and check definitions from a parsed JSON/HCL value. Config files use snake_case
/// (`enable_tag_override`), the HTTP API CamelCase (`EnableTagOverride`); Consul accepts either in
/// both places, so keys are matched ignoring case and underscores.
///
/// `strict` (config files) refuses keys Consul does not have, as Consul's config decoder does; the
/// HTTP API ignores them, like Go's JSON decoder.
struct DefinitionParser {
    var strict: Bool

    /// Consul fields this agent accepts and ignores (service mesh, namespaces, …).
    static let ignoredServiceKeys: Set<String> = [
        "kind", "taggedaddresses", "token", "connect", "proxy", "namespace", "partition", "locality", "socketpath",
    ]
    static let ignoredCheckKeys: Set<String> = [
        "outputmaxsize", "disableredirects", "type", "definition", "exposedpath", "namespace", "partition",
        "node", "servicename", "servicetags", "createindex", "modifyindex", "output",
    ]
    static let unsupportedCheckKinds: [(key: String, what: String)] = [
        ("grpc", "gRPC"), ("h2ping", "H2PING"), ("dockercontainerid", "Docker"), ("osservice", "OS service"),
    ]

    static func normalize(_ key: String) -> String {
        String(key.lowercased().filter { $0 != "_" && $0 != "-" })
    }

    func service(_ value: ConfigValue) throws(DefinitionError) -> ServiceDefinition {
        let fields = try Fields(value, what: "service definition")
        let known: Set<String> = ["id", "name", "tags", "address", "port", "meta", "weights", "enabletagoverride", "check", "checks"]
        try fields.refuseUnknown(known.union(Self.ignoredServiceKeys), strict: strict, what: "service")
        guard let name = try fields.string("name"), !name.isEmpty else { throw DefinitionError("Missing service name") }
        var service = ServiceDefinition(name: name)
        service.id = try fields.string("id") ?? ""
        service.tags = try fields.strings("tags") ?? []
        service.address = try fields.string("address") ?? ""
        let port = try fields.int("port") ?? 0
        guard (0...65535).contains(port) else { throw DefinitionError("Invalid service port \(port): must be 0-65535") }
        service.port = port
        service.meta = try fields.stringMap("meta") ?? [:]
        if let weights = try fields.object("weights") {
            service.weights = ServiceWeights(passing: try weights.int("passing") ?? 1, warning: try weights.int("warning") ?? 1)
            guard service.weights.passing >= 1 else { throw DefinitionError("Passing must be greater than 0") }
            guard service.weights.warning >= 0 else { throw DefinitionError("Warning must be greater or equal than 0") }
        }
        service.enableTagOverride = try fields.bool("enabletagoverride") ?? false
        var checkValues: [ConfigValue] = []
        for key in ["check", "checks"] {
            guard let value = fields.value(key) else { continue }
            if let list = value.arrayValue { checkValues += list.filter { !$0.isNull } } else { checkValues.append(value) }
        }
        for (index, value) in checkValues.enumerated() {
            do throws(DefinitionError) {
                var check = try self.check(value, inService: true)
                check.serviceID = service.effectiveID
                service.checks.append(check)
            } catch {
                throw DefinitionError(checkValues.count == 1 ? "check: \(error.message)" : "check \(index + 1): \(error.message)")
            }
        }
        return service
    }

    /// `inService`: part of a service definition, where name and ID may be left to the agent.
    func check(_ value: ConfigValue, inService: Bool = false) throws(DefinitionError) -> CheckDefinition {
        let fields = try Fields(value, what: "check definition")
        let known: Set<String> = [
            "id", "checkid", "name", "notes", "serviceid", "status", "http", "method", "header", "body", "tlsskipverify", "tlsservername",
            "tcp", "udp", "ttl", "args", "scriptargs", "script", "interval", "timeout", "successbeforepassing",
            "failuresbeforewarning", "failuresbeforecritical", "deregistercriticalserviceafter", "aliasnode", "aliasservice",
        ]
        let unsupported = Set(Self.unsupportedCheckKinds.map(\.key))
        try fields.refuseUnknown(known.union(Self.ignoredCheckKeys).union(unsupported), strict: strict, what: "check")
        for (key, what) in Self.unsupportedCheckKinds where fields.value(key).map({ !$0.isNull && $0 != .string("") }) ?? false {
            throw DefinitionError("\(what) checks are not supported by this agent")
        }
        if fields.value("script") != nil {
            throw DefinitionError("'script' is no longer supported; use 'args' with the program and its arguments")
        }

        var kinds: [CheckDefinition.Kind] = []
        let http = try fields.string("http") ?? ""
        if !http.isEmpty {
            var probe = CheckDefinition.HTTPProbe(url: http)
            probe.method = (try fields.string("method")).flatMap { $0.isEmpty ? nil : $0.uppercased() } ?? "GET"
            probe.headers = try fields.headers("header")
            probe.body = try fields.string("body") ?? ""
            probe.tlsSkipVerify = try fields.bool("tlsskipverify") ?? false
            probe.tlsServerName = try fields.string("tlsservername") ?? ""
            guard http.hasPrefix("http://") || http.hasPrefix("https://") else {
                throw DefinitionError("http: \"\(http)\" is not an http:// or https:// URL")
            }
            kinds.append(.http(probe))
        }
        if let tcp = try fields.string("tcp"), !tcp.isEmpty { kinds.append(.tcp(tcp)) }
        if let udp = try fields.string("udp"), !udp.isEmpty { kinds.append(.udp(udp)) }
        let scriptArgs = try fields.strings("scriptargs")
        let args = try fields.strings("args") ?? scriptArgs ?? []
        if !args.isEmpty { kinds.append(.script(args)) }
        let ttl = try fields.duration("ttl")
        let interval = try fields.duration("interval")
        if let ttl, ttl > .zero { kinds.append(.ttl(ttl)) }
        let aliasNode = try fields.string("aliasnode") ?? ""
        let aliasService = try fields.string("aliasservice") ?? ""
        if !aliasNode.isEmpty || !aliasService.isEmpty { kinds.append(.alias(AliasCheck.Target(node: aliasNode, serviceID: aliasService))) }

        // Consul's CheckType.Validate, in its order and words.
        if let interval, interval > .zero, let ttl, ttl > .zero {
            throw DefinitionError("Interval and TTL cannot both be specified")
        }
        guard kinds.count <= 1 else {
            throw DefinitionError("only one of args, http, tcp, udp, ttl or alias_node/alias_service may be given in one check")
        }
        guard let kind = kinds.first else {
            throw DefinitionError("TTL must be > 0 for TTL checks")
        }
        switch kind {
        case .ttl, .alias: break
        default:
            guard let interval, interval > .zero else {
                throw DefinitionError("Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks")
            }
        }

        var check = CheckDefinition(kind: kind)
        let checkID = try fields.string("checkid")
        check.id = try fields.string("id") ?? checkID ?? ""
        check.name = try fields.string("name") ?? ""
        if !inService {
            // A node check needs a name or an ID; each defaults to the other.
            if check.name.isEmpty && check.id.isEmpty { throw DefinitionError("Missing check name") }
            if check.id.isEmpty { check.id = check.name }
            if check.name.isEmpty { check.name = check.id }
        }
        check.serviceID = try fields.string("serviceid") ?? ""
        check.notes = try fields.string("notes") ?? ""
        if let status = try fields.string("status"), !status.isEmpty {
            guard let parsed = HealthStatus(rawValue: status), parsed != .maintenance else {
                throw DefinitionError("Invalid check status: \"\(status)\"")
            }
            check.initialStatus = parsed
        }
        // Consul raises a too-short interval to its minimum rather than refusing it.
        check.interval = interval.map { max($0, CheckDefinition.minimumInterval) }
        check.timeout = try fields.duration("timeout")
        check.successBeforePassing = try fields.count("successbeforepassing")
        check.failuresBeforeCritical = try fields.count("failuresbeforecritical")
        check.failuresBeforeWarning = try fields.count("failuresbeforewarning")
        check.deregisterCriticalServiceAfter = try fields.duration("deregistercriticalserviceafter")
        return check
    }

    /// One definition's members, looked up by normalized key.
    private struct Fields {
        let object: ConfigObject
        private let byKey: [String: ConfigValue]

        init(_ value: ConfigValue, what: String) throws(DefinitionError) {
            guard let object = value.objectValue else { throw DefinitionError("\(what) must be an object, not \(value.kindDescription)") }
            self.object = object
            var byKey: [String: ConfigValue] = [:]
            for member in object.members { byKey[DefinitionParser.normalize(member.key)] = member.value }
            self.byKey = byKey
        }

        func refuseUnknown(_ known: Set<String>, strict: Bool, what: String) throws(DefinitionError) {
            guard strict else { return }
            for member in object.members where !known.contains(DefinitionParser.normalize(member.key)) {
                let position = member.position.map { " (line \($0.line))" } ?? ""
                throw DefinitionError("invalid \(what) key \(member.key)\(position)")
            }
        }

        func value(_ key: String) -> ConfigValue? {
            guard let value = byKey[key], !value.isNull else { return nil }
            return value
        }

        private func wrong(_ key: String, _ expected: String, _ found: ConfigValue) -> DefinitionError {
            let name = object.members.first { DefinitionParser.normalize($0.key) == key }?.key ?? key
            return DefinitionError("\(name) must be \(expected), not \(found.kindDescription)")
        }

        func string(_ key: String) throws(DefinitionError) -> String? {
            guard let value = value(key) else { return nil }
            guard let text = value.stringValue else { throw wrong(key, "a string", value) }
            return text
        }

        func bool(_ key: String) throws(DefinitionError) -> Bool? {
            guard let value = value(key) else { return nil }
            if let bool = value.boolValue { return bool }
            // Consul's weak decoding takes "true"/"false" strings too (HCL files often quote them).
            if let text = value.stringValue, let bool = Bool(text) { return bool }
            throw wrong(key, "a boolean", value)
        }

        func int(_ key: String) throws(DefinitionError) -> Int? {
            guard let value = value(key) else { return nil }
            if let number = value.integerValue, let int = Int(exactly: number) { return int }
            if let text = value.stringValue, let int = Int(text) { return int }
            throw wrong(key, "an integer", value)
        }

        func count(_ key: String) throws(DefinitionError) -> Int {
            let value = try int(key) ?? 0
            guard value >= 0 else { throw DefinitionError("\(key) cannot be negative") }
            return value
        }

        func strings(_ key: String) throws(DefinitionError) -> [String]? {
            guard let value = value(key) else { return nil }
            guard let elements = value.arrayValue else { throw wrong(key, "a list of strings", value) }
            var result: [String] = []
            for element in elements {
                guard let text = element.stringValue else { throw wrong(key, "a list of strings", element) }
                result.append(text)
            }
            return result
        }

        func stringMap(_ key: String) throws(DefinitionError) -> [String: String]? {
            guard let value = value(key) else { return nil }
            guard let object = value.objectValue else { throw wrong(key, "an object of strings", value) }
            var result: [String: String] = [:]
            for member in object.members {
                guard let text = member.value.stringValue else { throw wrong(key, "an object of strings", member.value) }
                result[member.key] = text
            }
            return result
        }

        func object(_ key: String) throws(DefinitionError) -> Fields? {
            guard let value = value(key) else { return nil }
            return try Fields(value, what: key)
        }

        /// `header`: `{"Name": ["v1", "v2"]}`; a single string value is taken as one value.
        func headers(_ key: String) throws(DefinitionError) -> [(String, [String])] {
            guard let value = value(key) else { return [] }
            guard let object = value.objectValue else { throw wrong(key, "an object of string lists", value) }
            var result: [(String, [String])] = []
            for member in object.members {
                if let text = member.value.stringValue {
                    result.append((member.key, [text]))
                } else if let list = member.value.arrayValue, list.allSatisfy({ $0.stringValue != nil }) {
                    result.append((member.key, list.compactMap(\.stringValue)))
                } else {
                    throw wrong(key, "an object of string lists", member.value)
                }
            }
            return result
        }

        /// A Go duration string ("10s"), or a number of nanoseconds as Consul's API also takes.
        func duration(_ key: String) throws(DefinitionError) -> Duration? {
            guard let value = value(key) else { return nil }
            if let number = value.integerValue { return .nanoseconds(number) }
            guard let text = value.stringValue else { throw wrong(key, "a duration string such as \"10s\"", value) }
            if text.isEmpty { return nil }
            do throws(GoDuration.ParseError) {
                return try GoDuration.parse(text)
            } catch {
                throw DefinitionError("\(key): invalid duration \"\(text)\": \(error)")
            }
        }
    }
}
