/// What an endpoint needs permission for, declared next to its route.
enum ACLResource: Equatable, Sendable {
    case key(String)
    case keyPrefix(String)
    case node(String)
    case service(String)
    case session(String)
    case agent(String)
    case `operator`
    /// Gossip encryption keys (`keyring = "read"|"write"` in Consul's rules).
    case keyring
    /// User events by name (`event` / `event_prefix` rules).
    case event(String)
    /// Prepared queries by name (`query` / `query_prefix` rules).
    case query(String)
    /// Listing endpoints: answered for everyone, results filtered per item by the gate.
    case filteredList
    case none
}

enum ACLAccess: Equatable, Sendable {
    case read, write
}

/// Decides what a resolved token may do. The ACL issue supplies the real one; while ACLs are
/// disabled Consul authorizes everything, and so does `AllowAll`.
protocol Authorizer: Sendable {
    func allows(_ resource: ACLResource, _ access: ACLAccess) -> Bool
}

struct AllowAllAuthorizer: Authorizer {
    func allows(_ resource: ACLResource, _ access: ACLAccess) -> Bool { true }
}

/// The single place a request's token is resolved and checked against what its endpoint declares.
struct ACLGate: Sendable {
    /// Turns a token into an authorizer; with ACLs disabled every token gets `AllowAllAuthorizer`.
    var resolve: @Sendable (String) -> any Authorizer = { _ in AllowAllAuthorizer() }

    func authorize(token: String, _ resource: ACLResource, _ access: ACLAccess) throws(APIError) -> any Authorizer {
        let authorizer = resolve(token)
        guard resource == .none || resource == .filteredList || authorizer.allows(resource, access) else {
            throw .forbidden("Permission denied")
        }
        return authorizer
    }
}
