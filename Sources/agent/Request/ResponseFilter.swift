import ConsulCore

/// Applies a request's `?filter=` to a list answer, on the agent that renders it (a forwarded
/// request is filtered where it is answered, as Consul filters on the server). Which answers are
/// lists to filter, and where the list is, is by path, as Consul's endpoint docs list them.
enum ResponseFilter {
    enum Shape: Sendable {
        /// The answer is a JSON array of the elements to filter.
        case list
        /// The answer is an object whose values are the elements (`/v1/agent/services|checks`).
        case mapValues
    }

    static func shape(of path: String) -> Shape? {
        switch path {
        case "/v1/catalog/nodes", "/v1/agent/members": return .list
        case "/v1/agent/services", "/v1/agent/checks": return .mapValues
        default:
            for prefix in ["/v1/catalog/service/", "/v1/health/node/", "/v1/health/checks/", "/v1/health/service/", "/v1/health/state/"]
            where path.hasPrefix(prefix) { return .list }
            return nil
        }
    }

    /// The answer with only the elements the expression matches; anything that is not a
    /// successful JSON answer of the expected shape is passed through untouched.
    static func apply(_ filter: FilterExpression, shape: Shape, to response: APIResponse) -> APIResponse {
        guard response.status == 200, response.contentType == "application/json" else { return response }
        let parsed: ConfigValue
        do {
            parsed = try JSONConfigParser.parseValue(bytes: response.body, file: "answer", limits: ConfigParseLimits(maxInputBytes: .max))
        } catch {
            // Never hand back unfiltered data for a filtered request.
            return APIError.internalError("Failed to apply the filter: \(error)").response
        }
        var writer = JSONWriter(reserving: response.body.count)
        switch (shape, parsed) {
        case (.list, .array(let elements)):
            writer.array { w in for element in elements where filter.matches(element) { w.value(element) } }
        case (.mapValues, .object(let object)):
            writer.object { w in
                for member in object.members where filter.matches(member.value) { w.field(dynamic: member.key) { $0.value(member.value) } }
            }
        default:
            return response
        }
        var filtered = response
        filtered.body = writer.bytes
        return filtered
    }
}
