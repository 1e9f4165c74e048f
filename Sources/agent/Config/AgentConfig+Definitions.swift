import ConsulCore

/// Service and check definitions in config files (`service`, `services`, `check`, `checks`),
/// typed with `DefinitionParser`. Kept apart from the rest of the config code: the loader only
/// calls `problems(in:source:)` per source and `scriptProblems(_:)` once after the merge.
enum ConfigDefinitions {
    /// Every bad definition in one source, named by file, line and the service it belongs to.
    static func problems(in source: ConfigValue, source name: String) -> [AgentConfigProblem] {
        guard let object = source.objectValue else { return [] }
        var problems: [AgentConfigProblem] = []
        let parser = DefinitionParser(strict: true)
        for member in object.members where ["service", "services", "check", "checks"].contains(member.key) {
            let location = ConfigLocation(source: name, position: member.position)
            let elements = member.value.arrayValue ?? [member.value]
            for (index, element) in elements.enumerated() where !element.isNull {
                let label = elements.count > 1 ? "\(member.key)[\(index)]" : member.key
                do throws(DefinitionError) {
                    if member.key.hasPrefix("service") {
                        let service = try parser.service(element)
                        _ = try LocalState.assignCheckIDs(service)
                    } else {
                        _ = try parser.check(element)
                    }
                } catch {
                    let named = element["name"]?.stringValue.map { " \"\($0)\"" } ?? ""
                    problems.append(.invalidValue(location, key: label + named, reason: error.message))
                }
            }
        }
        return problems
    }

    /// Script checks in config files need `enable_script_checks` or `enable_local_script_checks`;
    /// Consul refuses to start otherwise.
    static func scriptProblems(_ config: AgentConfig) -> [AgentConfigProblem] {
        guard !config.enableScriptChecks, !config.enableLocalScriptChecks,
              let typed = try? typed(config)
        else { return [] }
        var problems: [AgentConfigProblem] = []
        for service in typed.services where service.checks.contains(where: \.isScript) {
            problems.append(.invalid("Failed to register service \"\(service.name)\": \(LocalState.scriptsDisabled)"))
        }
        for check in typed.checks where check.isScript {
            problems.append(.invalid("Failed to register check \"\(check.name)\": \(LocalState.scriptsDisabled)"))
        }
        return problems
    }

    /// The merged definitions, typed (they passed `problems(in:source:)` per source already).
    static func typed(_ config: AgentConfig) throws(DefinitionError) -> (services: [ServiceDefinition], checks: [CheckDefinition]) {
        let parser = DefinitionParser(strict: true)
        var services: [ServiceDefinition] = []
        for value in config.services { services.append(try parser.service(value)) }
        var checks: [CheckDefinition] = []
        for value in config.checks { checks.append(try parser.check(value)) }
        return (services, checks)
    }
}
