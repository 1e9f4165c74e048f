/// How config files combine. Consul reads `-config-file`s in order and the files of each
/// `-config-dir` in lexical order, and merges them so that later files override earlier ones.
///
/// Consul merges typed structs (agent/config/merge.go and the builder); this is the same rule
/// applied to the untyped tree:
/// - objects (Consul's nested structs: `ports`, `tls.defaults`, `acl.tokens`) merge key by key,
///   recursively; keys only the later file has are added after the earlier keys;
/// - lists are appended: the later file's elements follow the earlier's (Go slices are appended,
///   so `retry_join` or `recursors` from two files accumulate);
/// - scalars are replaced by the later value; a later `null` changes nothing (Go decodes it to a
///   nil pointer, which merge.go treats as "not set");
/// - when the kinds differ (object against string, say) the later value replaces the earlier;
/// - the definition keys `service`, `services`, `check`, `checks` at the top level are collected
///   from every file: a single definition counts as a one-element list and the lists are
///   concatenated, because Consul's builder moves each file's single `service`/`check` into its
///   list before merging ("later values would clobber earlier ones" otherwise);
/// - Go maps in Consul's config (`node_meta`, `connect.ca_config`, …) are not merged: a later
///   non-empty map replaces the earlier one wholesale, an empty one changes nothing.
package struct ConfigMergePolicy: Sendable, Equatable {
    /// Top-level keys whose definitions are collected from every file into one list.
    package var collectedTopLevelKeys: Set<String>
    /// Key paths of objects replaced whole by a later non-empty object instead of merged.
    package var replacedObjectPaths: Set<[String]>

    package init(collectedTopLevelKeys: Set<String>, replacedObjectPaths: Set<[String]>) {
        self.collectedTopLevelKeys = collectedTopLevelKeys
        self.replacedObjectPaths = replacedObjectPaths
    }

    /// Consul's agent configuration.
    package static let consul = ConfigMergePolicy(
        collectedTopLevelKeys: ["service", "services", "check", "checks"],
        replacedObjectPaths: [["node_meta"], ["connect", "ca_config"]]
    )

    /// Plain deep merge, with no Consul-specific keys.
    package static let plain = ConfigMergePolicy(collectedTopLevelKeys: [], replacedObjectPaths: [])
}

extension ConfigValue {
    /// Merges config files given in load order (the first is overridden by the rest).
    package static func merge(_ sources: [ConfigValue], policy: ConfigMergePolicy = .consul) -> ConfigValue {
        guard var result = sources.first else { return .object(ConfigObject()) }
        for source in sources.dropFirst() {
            result = result.merged(with: source, policy: policy)
        }
        return result
    }

    /// This value with `later` laid over it, by the rules of `ConfigMergePolicy`.
    package func merged(with later: ConfigValue, policy: ConfigMergePolicy = .consul) -> ConfigValue {
        mergeValues(self, later, path: [], policy: policy)
    }
}

private func mergeValues(_ earlier: ConfigValue, _ later: ConfigValue, path: [String], policy: ConfigMergePolicy) -> ConfigValue {
    switch (earlier, later) {
    case (_, .null):
        return earlier
    case (.array(let first), .array(let second)):
        return .array(first + second)
    case (.object(let first), .object(let second)):
        if policy.replacedObjectPaths.contains(path) {
            return second.isEmpty ? earlier : later
        }
        var result = first
        for member in second.members {
            let childPath = path + [member.key]
            guard let existing = result[member.key] else {
                result.set(member)
                continue
            }
            let value: ConfigValue
            if path.isEmpty, policy.collectedTopLevelKeys.contains(member.key) {
                value = collect(existing, member.value)
            } else {
                value = mergeValues(existing, member.value, path: childPath, policy: policy)
            }
            result.set(.init(key: member.key, value: value, position: member.position))
        }
        return .object(result)
    default:
        return later
    }
}

/// Definitions from two files as one list; `null` contributes nothing.
private func collect(_ earlier: ConfigValue, _ later: ConfigValue) -> ConfigValue {
    func definitions(_ value: ConfigValue) -> [ConfigValue] {
        switch value {
        case .array(let elements): return elements
        case .null: return []
        default: return [value]
        }
    }
    return .array(definitions(earlier) + definitions(later))
}
