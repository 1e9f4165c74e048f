import ConsulCore

/// A loaded, validated configuration and the warnings to print before the agent starts.
struct LoadedAgentConfig: Equatable, Sendable {
    var config: AgentConfig
    var warnings: [String]
}

/// Loads the agent's configuration the way `consul agent` does:
///
/// 1. Consul's defaults (or the `-dev` defaults),
/// 2. each `-config-file` and `-config-dir` in command-line order (a dir's `*.json` and `*.hcl`
///    files in lexical order; `-config-format` decides how they are parsed),
/// 3. the `-hcl` fragments, in order,
/// 4. the command-line flags, which win over every file.
///
/// Each source is checked on its own (syntax, unknown keys, types, with the file and position),
/// then all are merged with Consul's rules (`ConfigValue.merge`), and the result is validated once.
/// All problems found at a stage are reported together.
struct AgentConfigLoader {
    var flags: AgentFlags
    /// Off for `consul validate`, which checks files without a data dir (see `AgentConfigValidator`).
    var requireDataDir = true

    /// The source name used in messages for the command line.
    static let flagsSourceName = "command-line flags"

    func load() throws(AgentConfigError) -> LoadedAgentConfig {
        var problems: [AgentConfigProblem] = []
        var sources: [(name: String, value: ConfigValue)] = []

        var forcedFormat: ConfigFormat?
        if let name = flags.configFormat, !name.isEmpty {
            guard let format = ConfigFormat(rawValue: name) else {
                throw AgentConfigError(problems: [.invalid("-config-format must be either 'hcl' or 'json', not '\(name)'")])
            }
            forcedFormat = format
        }

        for path in flags.configPaths {
            readSource(path, forcedFormat: forcedFormat, into: &sources, problems: &problems)
        }
        for (index, fragment) in flags.hclFragments.enumerated() {
            let name = flags.hclFragments.count == 1 ? "-hcl" : "-hcl[\(index)]"
            do throws(ConfigParseError) {
                sources.append((name, try ConfigFormat.hcl.parse(fragment, file: name)))
            } catch {
                problems.append(.syntax(error))
            }
        }
        do throws(AgentConfigError) {
            sources.append((Self.flagsSourceName, try flags.configSource()))
        } catch {
            problems += error.problems
        }

        for source in sources {
            problems += ConfigSchema.check(source.value, source: source.name)
            problems += ConfigDefinitions.problems(in: source.value, source: source.name)
        }
        guard problems.isEmpty else { throw AgentConfigError(problems: problems) }

        let merged = ConfigValue.merge(sources.map { Self.collectingDefinitions($0.value) })
        var (config, warnings) = AgentConfigBuilder.build(merged, dev: flags.dev)

        // Consul turns `bootstrap_expect = 1` into bootstrap mode before validating.
        if config.bootstrapExpect == 1 {
            config.bootstrap = true
            config.bootstrapExpect = 0
            warnings.append("BootstrapExpect is set to 1; this is the same as Bootstrap mode.")
        }

        let validation = AgentConfigValidator(requireDataDir: requireDataDir).validate(config)
        let definitionProblems = ConfigDefinitions.scriptProblems(config)
        guard validation.errors.isEmpty, definitionProblems.isEmpty else {
            throw AgentConfigError(problems: validation.errors.map { .invalid($0) } + definitionProblems)
        }
        return LoadedAgentConfig(config: config, warnings: warnings + validation.warnings)
    }

    /// A source with its single `service` moved to the end of its `services` list (and `check` to
    /// `checks`), as Consul's builder does per file before merging: otherwise definitions would be
    /// ordered by key rather than by file.
    static func collectingDefinitions(_ source: ConfigValue) -> ConfigValue {
        guard case .object(var object) = source else { return source }
        for (single, list) in [("service", "services"), ("check", "checks")] {
            guard let definition = object[single] else { continue }
            object[single] = nil
            var elements: [ConfigValue]
            switch object[list] {
            case .array(let existing)?: elements = existing
            case nil, .null?: elements = []
            case let existing?: elements = [existing]  // one definition written without a list
            }
            switch definition {
            case .null: continue
            // HCL collects repeated `service { }` blocks into a list.
            case .array(let definitions): elements += definitions
            default: elements.append(definition)
            }
            object[list] = .array(elements)
        }
        return .object(object)
    }

    /// One `-config-file` or `-config-dir` argument: a file, or a directory whose `*.json` and
    /// `*.hcl` files are read in lexical order (sub-directories and other files are skipped).
    private func readSource(
        _ path: String, forcedFormat: ConfigFormat?,
        into sources: inout [(name: String, value: ConfigValue)], problems: inout [AgentConfigProblem]
    ) {
        do throws(ConfigFiles.Failure) {
            switch try ConfigFiles.kind(path) {
            case .directory:
                let separator = path.hasSuffix("/") ? "" : "/"
                for name in try ConfigFiles.entries(path) where ConfigFormat(fileName: name) != nil {
                    let file = path + separator + name
                    guard try ConfigFiles.kind(file) == .file else { continue }
                    parseFile(file, format: forcedFormat ?? ConfigFormat(fileName: name)!, into: &sources, problems: &problems)
                }
            case .file, .other:
                guard let format = forcedFormat ?? ConfigFormat(fileName: path) else {
                    problems.append(.unreadable(path: path, reason: "cannot tell the config format from the file name; name it *.json or *.hcl, or pass -config-format"))
                    return
                }
                parseFile(path, format: format, into: &sources, problems: &problems)
            }
        } catch {
            problems.append(.unreadable(path: error.path, reason: error.reason))
        }
    }

    private func parseFile(
        _ path: String, format: ConfigFormat,
        into sources: inout [(name: String, value: ConfigValue)], problems: inout [AgentConfigProblem]
    ) {
        do throws(ConfigFiles.Failure) {
            let bytes = try ConfigFiles.read(path)
            do throws(ConfigParseError) {
                sources.append((path, try format.parse(bytes: bytes, file: path)))
            } catch {
                problems.append(.syntax(error))
            }
        } catch {
            problems.append(.unreadable(path: error.path, reason: error.reason))
        }
    }
}

extension AgentFlags {
    /// The flags as one more config source, laid over the files. Booleans are only set when
    /// given as true: `AgentFlags` cannot tell `-server=false` from no flag, so a false flag does
    /// not override a file (Consul would let it).
    func configSource() throws(AgentConfigError) -> ConfigValue {
        var top = ConfigObject()
        func set(_ key: String, _ value: String?) { if let value { top[key] = .string(value) } }
        func set(_ key: String, _ value: Int?) { if let value { top[key] = .integer(Int64(value)) } }
        func set(_ key: String, _ value: Duration?) { if let value { top[key] = .string(GoDuration.format(value)) } }
        func setTrue(_ key: String, _ value: Bool) { if value { top[key] = .bool(true) } }
        func set(_ key: String, _ values: [String]) { if !values.isEmpty { top[key] = .array(values.map { .string($0) }) } }

        setTrue("server", server)
        setTrue("bootstrap", bootstrap)
        set("bootstrap_expect", bootstrapExpect)
        set("node_name", nodeName)
        set("node_id", nodeID)
        set("datacenter", datacenter)
        set("primary_datacenter", primaryDatacenter)
        set("domain", domain)
        set("alt_domain", altDomain)
        set("data_dir", dataDir)
        set("pid_file", pidFile)
        set("bind_addr", bind)
        set("advertise_addr", advertise)
        set("advertise_addr_wan", advertiseWAN)
        set("client_addr", client)
        set("retry_join", retryJoin)
        set("retry_join_wan", retryJoinWAN)
        set("retry_interval", retryInterval)
        set("retry_interval_wan", retryIntervalWAN)
        set("retry_max", retryMax)
        set("retry_max_wan", retryMaxWAN)
        set("start_join", join)
        set("start_join_wan", joinWAN)
        setTrue("rejoin_after_leave", rejoin)
        set("encrypt", encrypt)
        setTrue("disable_keyring_file", disableKeyringFile)
        set("log_level", logLevel)
        setTrue("log_json", logJSON)
        set("recursors", recursors)
        setTrue("enable_script_checks", enableScriptChecks)
        setTrue("enable_local_script_checks", enableLocalScriptChecks)
        set("raft_protocol", raftProtocol)

        var ports = ConfigObject()
        for (key, value) in [("http", httpPort), ("https", httpsPort), ("dns", dnsPort), ("grpc", grpcPort),
                             ("server", serverPort), ("serf_lan", serfLANPort), ("serf_wan", serfWANPort)] {
            if let value { ports[key] = .integer(Int64(value)) }
        }
        if !ports.isEmpty { top["ports"] = .object(ports) }

        var ui = ConfigObject()
        if self.ui { ui["enabled"] = .bool(true) }
        if let uiDir { ui["dir"] = .string(uiDir) }
        if !ui.isEmpty { top["ui_config"] = .object(ui) }

        if !nodeMeta.isEmpty {
            var meta = ConfigObject()
            for entry in nodeMeta {
                // Consul splits at the first ':'; a value may contain more.
                guard let colon = entry.firstIndex(of: ":") else {
                    throw AgentConfigError(problems: [.invalid("-node-meta: invalid value \"\(entry)\"; use key:value")])
                }
                meta[String(entry[..<colon])] = .string(String(entry[entry.index(after: colon)...]))
            }
            top["node_meta"] = .object(meta)
        }
        return .object(top)
    }
}
