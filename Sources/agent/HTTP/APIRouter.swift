/// What an endpoint does with a request once routed.
enum APIAction: Sendable {
    /// An answer that needs no state (status, errors).
    case respond(APIResponse)
    /// A read of the state store: rendered from one version of it, after any blocking-query wait
    /// or consistency check the request asks for. `tables` are what the blocking query watches.
    case read(tables: [StateTable], render: @Sendable (StateStore) throws(APIError) -> APIResponse)
    /// A change: goes through Raft, answered when applied.
    case write(@Sendable () async throws(APIError) -> APIResponse)
    /// A change that is one state command: proposed to Raft from the event loop with a callback,
    /// no task in between (a write's hops between threads cost more than its own work). `refusal`
    /// runs first on the server that proposes (a lock-delay, say): an answer there skips Raft.
    case propose(StateCommand, refusal: (@Sendable () -> APIResponse?)?, answer: @Sendable (StateCommandResult) throws(APIError) -> APIResponse)
    /// Something this agent does to itself (leave, join): never forwarded.
    case agentOperation(@Sendable () async throws(APIError) -> APIResponse)
}

/// Which agent answers a route.
enum APIAnswerer: Sendable, Equatable {
    /// The forwarder decides from the request (dc, consistency, write or read): reads and writes
    /// of the replicated state.
    case forwarder
    /// This agent, about itself (`/v1/agent/*`); never forwarded, and refused when forwarded here.
    case thisAgent
    /// Any server, from what it knows (`/v1/status/*`, as Consul's Status RPCs): a client asks a
    /// server, a server answers itself.
    case anyServer
}

/// A routed request: the endpoint's action plus what the request path needs to know about it.
struct APIRoute: Sendable {
    var action: APIAction
    var isWrite: Bool
    var resource: ACLResource
    var access: ACLAccess
    /// Nil: by the action (`respond` and `agentOperation` are this agent's, reads and writes the forwarder's).
    var answeredBy: APIAnswerer?

    var answerer: APIAnswerer {
        if let answeredBy { return answeredBy }
        switch action {
        case .respond, .agentOperation: return .thisAgent
        case .read, .write, .propose: return .forwarder
        }
    }

    static func read(_ resource: ACLResource, tables: [StateTable], render: @escaping @Sendable (StateStore) throws(APIError) -> APIResponse) -> APIRoute {
        APIRoute(action: .read(tables: tables, render: render), isWrite: false, resource: resource, access: .read)
    }

    /// A read about this agent itself, from its own state store, with blocking-query support.
    static func readHere(_ resource: ACLResource, tables: [StateTable], render: @escaping @Sendable (StateStore) throws(APIError) -> APIResponse) -> APIRoute {
        APIRoute(action: .read(tables: tables, render: render), isWrite: false, resource: resource, access: .read, answeredBy: .thisAgent)
    }

    static func write(_ resource: ACLResource, _ perform: @escaping @Sendable () async throws(APIError) -> APIResponse) -> APIRoute {
        APIRoute(action: .write(perform), isWrite: true, resource: resource, access: .write)
    }

    static func propose(
        _ resource: ACLResource, _ command: StateCommand, refusal: (@Sendable () -> APIResponse?)? = nil,
        answer: @escaping @Sendable (StateCommandResult) throws(APIError) -> APIResponse
    ) -> APIRoute {
        APIRoute(action: .propose(command, refusal: refusal, answer: answer), isWrite: true, resource: resource, access: .write)
    }

    /// Something only the leader can answer, read or not (autopilot health): forwarded to the
    /// leader whatever the request's consistency, and run there like a write's action.
    static func leaderOperation(_ resource: ACLResource, access: ACLAccess, _ perform: @escaping @Sendable () async throws(APIError) -> APIResponse) -> APIRoute {
        APIRoute(action: .write(perform), isWrite: true, resource: resource, access: access)
    }

    /// Answered by this agent itself (agent endpoints, status), never forwarded.
    static func local(_ response: APIResponse) -> APIRoute {
        APIRoute(action: .respond(response), isWrite: false, resource: .none, access: .read)
    }

    /// Answered by any server from what it knows; a client asks one.
    static func anyServer(_ resource: ACLResource, _ response: APIResponse) -> APIRoute {
        APIRoute(action: .respond(response), isWrite: false, resource: resource, access: .read, answeredBy: .anyServer)
    }

    static func agentOperation(_ resource: ACLResource, _ perform: @escaping @Sendable () async throws(APIError) -> APIResponse) -> APIRoute {
        APIRoute(action: .agentOperation(perform), isWrite: true, resource: resource, access: .write)
    }
}

/// Maps `/v1/...` paths to endpoints. Every endpoint of the API is listed here, so what this agent
/// answers is visible in one place.
struct APIRouter: Sendable {
    let agent: AgentRuntime

    func route(_ request: APIRequest) throws(APIError) -> APIRoute {
        let path = request.path
        guard path.hasPrefix("/v1/") else { throw .notFound("404 page not found") }
        let rest = path.dropFirst(4)
        let (group, tail) = Self.split(rest)
        switch group {
        case "kv": return try KVEndpoint(agent: agent).route(request, key: String(tail))
        case "catalog": return try CatalogEndpoint(agent: agent).route(request, tail: tail)
        case "health": return try HealthEndpoint(agent: agent).route(request, tail: tail)
        case "status": return try StatusEndpoint(agent: agent).route(request, tail: tail)
        case "agent": return try AgentEndpoint(agent: agent).route(request, tail: tail)
        case "operator": return try OperatorEndpoint(agent: agent).route(request, tail: tail)
        case "session": return try SessionEndpoint(agent: agent).route(request, tail: tail)
        case "event": return try EventEndpoint(agent: agent).route(request, tail: tail)
        case "query": return try PreparedQueryEndpoint(agent: agent).route(request, tail: tail)
        case "coordinate": return try CoordinateEndpoint(agent: agent).route(request, tail: tail)
        case "txn" where tail.isEmpty: return try TxnEndpoint(agent: agent).route(request)
        case "snapshot" where tail.isEmpty: return try SnapshotEndpoint(agent: agent).route(request)
        case "internal" where tail == "dns": return try DNSRelayEndpoint(agent: agent).route(request)
        case "connect", "config", "peering", "partition", "partitions", "namespace", "namespaces", "discovery-chain", "internal":
            throw .notFound("\(path): service mesh, config entries, peering, admin partitions and namespaces are not part of this edition")
        default:
            throw .notFound("404 page not found")
        }
    }

    /// `catalog/service/web` → ("catalog", "service/web").
    static func split(_ path: Substring) -> (Substring, Substring) {
        guard let slash = path.firstIndex(of: "/") else { return (path, "") }
        return (path[..<slash], path[path.index(after: slash)...])
    }

    static func requireMethod(_ request: APIRequest, _ allowed: String...) throws(APIError) {
        guard allowed.contains(request.method) else { throw .methodNotAllowed("method \(request.method) not allowed") }
    }
}
