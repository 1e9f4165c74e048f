@testable import ConsulAgent
import NIOCore
import NIOPosix
import Testing

/// Bad input for every endpoint family that had no test of it (see Tests/BAD_INPUT_AUDIT.md), through
/// the real request path: router → query options → forwarder → ACL gate → endpoint, on a client
/// agent with no server in reach. A refusal must therefore come from validation that runs before
/// anything is forwarded or started; a request that got past it would be answered 500 "No known
/// Consul servers" instead (several tests check that a good request does, so the refusal is not
/// a coincidence of the harness). Status and message are both checked, in Consul's words where
/// Consul has some.
@Suite(.serialized) struct BadInputTests {
    /// A client agent's dispatcher on one event loop.
    private struct Client {
        let dispatcher: APIDispatcher
        let loop: any EventLoop

        func call(_ method: String, _ target: String, _ body: String = "") async throws -> (Int, String) {
            try await AgentLocalEndpointTests.call(dispatcher, loop, method, target, body)
        }

        /// For bodies that are not UTF-8 text (archives).
        func call(_ method: String, _ target: String, bytes: [UInt8]) async throws -> (Int, String) {
            let parsed = APIRequest.parseTarget(target)!
            let request = APIRequest(method: method, path: parsed.path, query: parsed.query, headers: [], body: bytes)
            let response = try await dispatcher.handle(request, on: loop).get()
            return (response.status, String(decoding: response.body, as: UTF8.self))
        }
    }

    private static func withClient(_ body: (Client) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = Client(dispatcher: APIDispatcher(agent: RPCRelayTests.clientRuntime(), seed: 1), loop: group.next())
        do {
            try await body(client)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    static let noServers = (500, "No known Consul servers")

    // MARK: - Sessions

    @Test func sessionCreateRefusesBadBodies() async throws {
        try await Self.withClient { (client: Client) async throws in
            let badJSON = try await client.call("PUT", "/v1/session/create", "{")
            #expect(badJSON.0 == 400 && badJSON.1.hasPrefix("Request decode failed: "), "\(badJSON)")
            #expect(try await client.call("PUT", "/v1/session/create", "[]") == (400, "Request decode failed: the body must be a JSON object"))
            #expect(try await client.call("PUT", "/v1/session/create", #""web""#) == (400, "Request decode failed: the body must be a JSON object"))
            #expect(try await client.call("PUT", "/v1/session/create", #"{"TTL": 10}"#) == (400, "Request decode failed: TTL must be a string, not an integer"))
            #expect(try await client.call("PUT", "/v1/session/create", #"{"TTL": "soon"}"#) == (400, #"Request decode failed: invalid TTL "soon""#))
            #expect(try await client.call("PUT", "/v1/session/create", #"{"TTL": "1s"}"#) == (400, "Invalid Session TTL '1s', must be between [10s-24h0m0s]"))
            #expect(try await client.call("PUT", "/v1/session/create", #"{"TTL": "25h"}"#) == (400, "Invalid Session TTL '25h', must be between [10s-24h0m0s]"))
            #expect(try await client.call("PUT", "/v1/session/create", #"{"Behavior": "explode"}"#) == (400, "Invalid Behavior setting 'explode'"))
            #expect(try await client.call("PUT", "/v1/session/create", #"{"LockDelay": true}"#) == (400, "Request decode failed: LockDelay must be a duration"))
            #expect(try await client.call("PUT", "/v1/session/create", #"{"NodeChecks": "serfHealth"}"#) == (400, "Request decode failed: NodeChecks must be a list of strings, not a string"))
            #expect(try await client.call("GET", "/v1/session/create") == (405, "method GET not allowed"))
            let oversized = String(repeating: " ", count: JSONBody.maxBytes + 1)
            #expect(try await client.call("PUT", "/v1/session/create", oversized) == (413, "Request body too large, max size: \(JSONBody.maxBytes) bytes"))
            // The same body with a good TTL gets past validation and on towards a server.
            #expect(try await client.call("PUT", "/v1/session/create", #"{"TTL": "10s"}"#) == Self.noServers)
            // As in Go, a JSON null is no fields at all: the defaults.
            #expect(try await client.call("PUT", "/v1/session/create", "null") == Self.noServers)
        }
    }

    @Test func sessionReadsAndChangesRefuseMissingIDsAndBadParameters() async throws {
        try await Self.withClient { (client: Client) async throws in
            #expect(try await client.call("PUT", "/v1/session/destroy/") == (400, "Missing session"))
            #expect(try await client.call("PUT", "/v1/session/renew/") == (400, "Missing session"))
            #expect(try await client.call("GET", "/v1/session/info/") == (400, "Missing session"))
            #expect(try await client.call("GET", "/v1/session/node/") == (400, "Missing node name"))
            #expect(try await client.call("GET", "/v1/session/destroy/s1") == (405, "method GET not allowed"))
            #expect(try await client.call("GET", "/v1/session/renew/s1") == (405, "method GET not allowed"))
            #expect(try await client.call("PUT", "/v1/session/info/s1") == (405, "method PUT not allowed"))
            #expect(try await client.call("PUT", "/v1/session/list") == (405, "method PUT not allowed"))
            #expect(try await client.call("GET", "/v1/session/info/s1?index=abc") == (400, "Invalid index"))
            #expect(try await client.call("GET", "/v1/session/node/n1?index=1&wait=xyz") == (400, "Invalid wait time"))
            #expect(try await client.call("GET", "/v1/session/list?stale&consistent") == (400, "Cannot specify ?stale with ?consistent, conflicting semantics."))
            #expect(try await client.call("GET", "/v1/session/list") == Self.noServers)
        }
    }

    // MARK: - Events

    @Test func eventFireAndListRefuseBadInput() async throws {
        try await Self.withClient { (client: Client) async throws in
            #expect(try await client.call("PUT", "/v1/event/fire/") == (400, "Missing name"))
            #expect(try await client.call("PUT", "/v1/event/fire") == (400, "Missing name"))
            #expect(try await client.call("PUT", "/v1/event/fire/deploy?tag=blue") == (400, "Cannot provide tag filter without service filter"))
            #expect(try await client.call("PUT", "/v1/event/fire/deploy?node=%5B") == (400, "Invalid node filter: error parsing regexp: missing closing ]: `[`"))
            #expect(try await client.call("PUT", "/v1/event/fire/deploy?service=web&tag=(") == (400, "Invalid tag filter: error parsing regexp: missing closing ): `(`"))
            #expect(try await client.call("GET", "/v1/event/fire/deploy") == (405, "method GET not allowed"))
            #expect(try await client.call("GET", "/v1/event/list?index=abc") == (400, "Invalid index"))
            #expect(try await client.call("GET", "/v1/event/list?index=1&wait=xyz") == (400, "Invalid wait time"))
            #expect(try await client.call("PUT", "/v1/event/list") == (405, "method PUT not allowed"))
        }
    }

    // MARK: - Coordinates

    @Test func coordinateReadsRefuseBadParametersAndMethods() async throws {
        try await Self.withClient { (client: Client) async throws in
            #expect(try await client.call("PUT", "/v1/coordinate/datacenters") == (405, "method PUT not allowed"))
            #expect(try await client.call("GET", "/v1/coordinate/datacenters?index=abc") == (400, "Invalid index"))
            #expect(try await client.call("POST", "/v1/coordinate/nodes") == (405, "method POST not allowed"))
            #expect(try await client.call("GET", "/v1/coordinate/nodes?index=-5") == (400, "Invalid index"))
            #expect(try await client.call("DELETE", "/v1/coordinate/node/n1") == (405, "method DELETE not allowed"))
            #expect(try await client.call("GET", "/v1/coordinate/node/n1?index=1&wait=1fortnight") == (400, "Invalid wait time"))
            #expect(try await client.call("PUT", "/v1/coordinate/update", #"{"Node": "n1"}"#) == (400, "Missing coordinate"))
            #expect(try await client.call("PUT", "/v1/coordinate/update", #"{"Node": "n1", "Coord": []}"#) == (400, "Request decode failed: Coord must be an object, not a list"))
            #expect(try await client.call("GET", "/v1/coordinate/nodes") == Self.noServers)
        }
    }

    // MARK: - Snapshot

    @Test func snapshotRefusesWhatIsNotAnArchiveBeforeItTravels() async throws {
        try await Self.withClient { (client: Client) async throws in
            let notGzip = "Error restoring snapshot: failed to decompress snapshot: not a gzip stream (gzip: invalid header)"
            #expect(try await client.call("PUT", "/v1/snapshot") == (400, notGzip))
            #expect(try await client.call("PUT", "/v1/snapshot", #"{"Index": 1}"#) == (400, notGzip))
            #expect(try await client.call("POST", "/v1/snapshot") == (405, "method POST not allowed"))
            #expect(try await client.call("DELETE", "/v1/snapshot") == (405, "method DELETE not allowed"))
            // Something that looks like gzip is left to the leader to verify (off the event loop).
            #expect(try await client.call("PUT", "/v1/snapshot", bytes: [0x1f, 0x8b, 0x08] + [UInt8](repeating: 0, count: 15)) == Self.noServers)
            #expect(try await client.call("PUT", "/v1/snapshot", bytes: [0x1f, 0x8b]) == (400, notGzip))
        }
    }

    // MARK: - Operator

    @Test func keyringRefusesBadKeysBodiesAndParameters() async throws {
        try await Self.withClient { (client: Client) async throws in
            let path = "/v1/operator/keyring"
            let goodKey = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="
            #expect(try await client.call("PATCH", path) == (405, "method PATCH not allowed"))
            let badJSON = try await client.call("POST", path, "{")
            #expect(badJSON.0 == 400 && badJSON.1.hasPrefix("Request decode failed: "), "\(badJSON)")
            #expect(try await client.call("POST", path, "[]") == (400, #"Request decode failed: the body must be an object like {"Key": "..."}"#))
            #expect(try await client.call("POST", path, #"{"Key": 7}"#) == (400, "Request decode failed: Key must be a string, not an integer"))
            let shortKey = try await client.call("PUT", path, #"{"Key": "bm9wZQ=="}"#)
            #expect(shortKey.0 == 400 && shortKey.1.hasPrefix("Invalid key: "), "\(shortKey)")
            let noKey = try await client.call("DELETE", path, "{}")
            #expect(noKey.0 == 400 && noKey.1.hasPrefix("Invalid key: "), "\(noKey)")
            #expect(try await client.call("GET", path + "?relay-factor=x") == (400, #"Error parsing relay factor: strconv.Atoi: parsing "x": invalid syntax"#))
            #expect(try await client.call("GET", path + "?relay-factor=6") == (400, "Invalid relay-factor: Relay factor must be in range: [0, 5]"))
            #expect(try await client.call("GET", path + "?local-only=maybe") == (400, #"Error parsing local-only: strconv.ParseBool: parsing "maybe": invalid syntax"#))
            #expect(try await client.call("POST", path + "?local-only=true", #"{"Key": "\#(goodKey)"}"#) == (400, "Invalid use of local-only: local-only can only be set for list requests"))
            // A good install gets past validation; a client is refused by the action, as Consul's are.
            #expect(try await client.call("POST", path, #"{"Key": "\#(goodKey)"}"#) == (500, "keyring operations must run against a server node"))
        }
    }

    @Test func autopilotHealthAndStateRefuseBadParametersAndMethods() async throws {
        try await Self.withClient { (client: Client) async throws in
            #expect(try await client.call("PUT", "/v1/operator/autopilot/health") == (405, "method PUT not allowed"))
            #expect(try await client.call("GET", "/v1/operator/autopilot/health?index=abc") == (400, "Invalid index"))
            #expect(try await client.call("GET", "/v1/operator/autopilot/health?stale&consistent") == (400, "Cannot specify ?stale with ?consistent, conflicting semantics."))
            #expect(try await client.call("POST", "/v1/operator/autopilot/state") == (405, "method POST not allowed"))
            #expect(try await client.call("GET", "/v1/operator/autopilot/state?wait=xyz") == (400, "Invalid wait time"))
            #expect(try await client.call("PATCH", "/v1/operator/autopilot/configuration") == (405, "method PATCH not allowed"))
            #expect(try await client.call("GET", "/v1/operator/autopilot/configuration?index=x") == (400, "Invalid index"))
            #expect(try await client.call("GET", "/v1/operator/autopilot/health") == Self.noServers)
        }
    }

    // MARK: - Agent: information, reload, maintenance, token

    @Test func agentInformationEndpointsRefuseWrongMethodsAndFormats() async throws {
        try await Self.withClient { (client: Client) async throws in
            #expect(try await client.call("PUT", "/v1/agent/self") == (405, "method PUT not allowed"))
            #expect(try await client.call("POST", "/v1/agent/host") == (405, "method POST not allowed"))
            #expect(try await client.call("PUT", "/v1/agent/version") == (405, "method PUT not allowed"))
            #expect(try await client.call("PUT", "/v1/agent/metrics") == (405, "method PUT not allowed"))
            #expect(try await client.call("GET", "/v1/agent/metrics?format=xml") == (400, #"Invalid format "xml": only "prometheus" is supported"#))
            #expect(try await client.call("PUT", "/v1/agent/monitor") == (405, "method PUT not allowed"))
            #expect(try await client.call("GET", "/v1/agent/reload") == (405, "method GET not allowed"))
            #expect(try await client.call("GET", "/v1/agent/token/default") == (405, "method GET not allowed"))
            #expect(try await client.call("PUT", "/v1/agent/token/default", "{") == (401, "ACL support disabled"))
        }
    }

    @Test func nodeMaintenanceReadsEnableAsGoDoes() async throws {
        try await Self.withClient { (client: Client) async throws in
            #expect(try await client.call("PUT", "/v1/agent/maintenance") == (400, "Missing value for enable"))
            #expect(try await client.call("PUT", "/v1/agent/maintenance?enable=") == (400, #"Invalid value for enable: """#))
            #expect(try await client.call("PUT", "/v1/agent/maintenance?enable=maybe") == (400, #"Invalid value for enable: "maybe""#))
            #expect(try await client.call("PUT", "/v1/agent/maintenance?enable=tRuE") == (400, #"Invalid value for enable: "tRuE""#))
            #expect(try await client.call("GET", "/v1/agent/maintenance?enable=true") == (405, "method GET not allowed"))
            #expect(try await client.call("PUT", "/v1/agent/maintenance?enable=TRUE&reason=test").0 == 200)
            #expect(try await client.call("PUT", "/v1/agent/maintenance?enable=F").0 == 200)
        }
    }

    // MARK: - Agent: checks

    @Test func checkRegistrationRefusesBadDefinitions() async throws {
        try await Self.withClient { (client: Client) async throws in
            let path = "/v1/agent/check/register"
            let badJSON = try await client.call("PUT", path, #"{"Name": "#)
            #expect(badJSON.0 == 400 && badJSON.1.hasPrefix("Request decode failed: "), "\(badJSON)")
            #expect(try await client.call("PUT", path, "[]") == (400, "Request decode failed: the body must be a JSON object"))
            #expect(try await client.call("PUT", path, #"{"TTL": "10s"}"#) == (400, "Missing check name"))
            #expect(try await client.call("PUT", path, #"{"Name": 3, "TTL": "10s"}"#) == (400, "Request decode failed: Name must be a string, not an integer"))
            #expect(try await client.call("PUT", path, #"{"Name": "disk"}"#) == (400, "Invalid check: TTL must be > 0 for TTL checks"))
            #expect(try await client.call("PUT", path, #"{"Name": "disk", "TTL": "10s", "Interval": "10s"}"#) == (400, "Invalid check: Interval and TTL cannot both be specified"))
            #expect(try await client.call("PUT", path, #"{"Name": "web", "HTTP": "http://127.0.0.1/"}"#) == (400, "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks"))
            #expect(try await client.call("PUT", path, #"{"Name": "disk", "TTL": "soon"}"#) == (400, #"Invalid check: ttl: invalid duration "soon": time: invalid duration "soon""#))
            #expect(try await client.call("PUT", path, #"{"Name": "disk", "TTL": "10s", "Status": "fine"}"#) == (400, "Bad check status"))
            #expect(try await client.call("PUT", path, #"{"Name": "disk", "TTL": "10s", "Status": "maintenance"}"#) == (400, "Bad check status"))
            #expect(try await client.call("GET", path) == (405, "method GET not allowed"))
        }
    }

    @Test func checkChangesRefuseMissingIDsBadBodiesAndWrongMethods() async throws {
        try await Self.withClient { (client: Client) async throws in
            #expect(try await client.call("PUT", "/v1/agent/check/deregister/") == (400, "Missing check ID"))
            #expect(try await client.call("GET", "/v1/agent/check/deregister/c1") == (405, "method GET not allowed"))
            for verb in ["pass", "warn", "fail"] {
                #expect(try await client.call("PUT", "/v1/agent/check/\(verb)/") == (400, "Missing check ID"))
                #expect(try await client.call("GET", "/v1/agent/check/\(verb)/c1") == (405, "method GET not allowed"))
                #expect(try await client.call("PUT", "/v1/agent/check/\(verb)/nope") == (404, #"Unknown check ID "nope". Ensure that the check ID is passed, not the check name."#))
            }
            #expect(try await client.call("PUT", "/v1/agent/check/update/", #"{"Status": "passing"}"#) == (400, "Missing check ID"))
            let badJSON = try await client.call("PUT", "/v1/agent/check/update/c1", "{")
            #expect(badJSON.0 == 400 && badJSON.1.hasPrefix("Request decode failed: "), "\(badJSON)")
            #expect(try await client.call("PUT", "/v1/agent/check/update/c1", #"["passing"]"#) == (400, "Request decode failed: the body must be a JSON object"))
            #expect(try await client.call("PUT", "/v1/agent/check/update/c1", #"{"Status": 1}"#) == (400, "Request decode failed: Status must be a string, not an integer"))
            #expect(try await client.call("PUT", "/v1/agent/check/update/c1", "{}") == (400, "Invalid check status: ''"))
            #expect(try await client.call("PUT", "/v1/agent/check/update/c1", #"{"Status": "maintenance"}"#) == (400, "Invalid check status: 'maintenance'"))
            #expect(try await client.call("POST", "/v1/agent/check/update/c1", #"{"Status": "passing"}"#) == (405, "method POST not allowed"))
        }
    }

    // MARK: - Agent: services

    @Test func serviceRegistrationRefusesBadDefinitions() async throws {
        try await Self.withClient { (client: Client) async throws in
            let path = "/v1/agent/service/register"
            let badJSON = try await client.call("PUT", path, "{")
            #expect(badJSON.0 == 400 && badJSON.1.hasPrefix("Request decode failed: "), "\(badJSON)")
            #expect(try await client.call("PUT", path, #"["web"]"#) == (400, "Request decode failed: the body must be a JSON object"))
            #expect(try await client.call("PUT", path, #"{"Port": 80}"#) == (400, "Missing service name"))
            #expect(try await client.call("PUT", path, #"{"Name": ""}"#) == (400, "Missing service name"))
            #expect(try await client.call("PUT", path, #"{"Name": 5}"#) == (400, "Request decode failed: Name must be a string, not an integer"))
            #expect(try await client.call("PUT", path, #"{"Name": "web", "Port": 70000}"#) == (400, "Invalid service registration: Invalid service port 70000: must be 0-65535"))
            #expect(try await client.call("PUT", path, #"{"Name": "web", "Tags": "v1"}"#) == (400, "Invalid service registration: Tags must be a list of strings, not a string"))
            #expect(try await client.call("PUT", path, #"{"Name": "web", "Weights": {"Passing": 0}}"#) == (400, "Invalid service registration: Passing must be greater than 0"))
            #expect(try await client.call("PUT", path, #"{"Name": "web", "Check": {"Interval": "10s"}}"#) == (400, "Invalid service registration: check: TTL must be > 0 for TTL checks"))
            #expect(try await client.call("GET", path) == (405, "method GET not allowed"))
        }
    }

    @Test func serviceChangesAndReadsRefuseMissingIDsAndBadParameters() async throws {
        try await Self.withClient { (client: Client) async throws in
            #expect(try await client.call("PUT", "/v1/agent/service/register", #"{"ID": "web1", "Name": "web"}"#).0 == 200)
            #expect(try await client.call("PUT", "/v1/agent/service/deregister/") == (400, "Missing service ID"))
            #expect(try await client.call("GET", "/v1/agent/service/deregister/web1") == (405, "method GET not allowed"))
            #expect(try await client.call("PUT", "/v1/agent/service/deregister/nope") == (404, #"Unknown service ID "nope". Ensure that the service ID is passed, not the service name."#))
            #expect(try await client.call("PUT", "/v1/agent/service/maintenance/?enable=true") == (400, "Missing service ID"))
            #expect(try await client.call("PUT", "/v1/agent/service/maintenance/web1") == (400, "Missing value for enable"))
            #expect(try await client.call("PUT", "/v1/agent/service/maintenance/web1?enable=yes") == (400, #"Invalid value for enable: "yes""#))
            #expect(try await client.call("GET", "/v1/agent/service/maintenance/web1?enable=true") == (405, "method GET not allowed"))
            #expect(try await client.call("GET", "/v1/agent/service/") == (400, "Missing service ID"))
            #expect(try await client.call("PUT", "/v1/agent/service/web1") == (405, "method PUT not allowed"))
            #expect(try await client.call("GET", "/v1/agent/service/web1?index=abc") == (400, "Invalid index"))
            #expect(try await client.call("GET", "/v1/agent/service/web1?wait=xyz") == (400, "Invalid wait time"))
            #expect(try await client.call("GET", "/v1/agent/service/nope") == (404, "unknown service ID: nope"))
            // Nothing refused above changed the registration.
            #expect(try await client.call("GET", "/v1/agent/service/web1").0 == 200)
        }
    }

    @Test func localServiceHealthRefusesMissingIDsAndNames() async throws {
        try await Self.withClient { (client: Client) async throws in
            #expect(try await client.call("GET", "/v1/agent/health/service/id/") == (400, "Missing serviceID"))
            #expect(try await client.call("GET", "/v1/agent/health/service/name/") == (400, "Missing service Name"))
            #expect(try await client.call("GET", "/v1/agent/health/service/id/?format=text") == (400, "Missing serviceID"))
            #expect(try await client.call("PUT", "/v1/agent/health/service/id/web1") == (405, "method PUT not allowed"))
            #expect(try await client.call("POST", "/v1/agent/health/service/name/web") == (405, "method POST not allowed"))
            #expect(try await client.call("GET", "/v1/agent/health/service/id/nope") == (404, "ServiceId nope not found"))
        }
    }

    // MARK: - Prepared queries

    @Test func preparedQueryReadsChangesAndRunsRefuseBadInput() async throws {
        try await Self.withClient { (client: Client) async throws in
            #expect(try await client.call("GET", "/v1/query?index=abc") == (400, "Invalid index"))
            #expect(try await client.call("DELETE", "/v1/query") == (405, "method DELETE not allowed"))
            #expect(try await client.call("PATCH", "/v1/query/q1") == (405, "method PATCH not allowed"))
            #expect(try await client.call("GET", "/v1/query/q1?wait=xyz") == (400, "Invalid wait time"))
            #expect(try await client.call("DELETE", "/v1/query/q1?stale&consistent") == (400, "Cannot specify ?stale with ?consistent, conflicting semantics."))
            let badUpdate = try await client.call("PUT", "/v1/query/q1", "{")
            #expect(badUpdate.0 == 400 && badUpdate.1.hasPrefix("Request decode failed: "), "\(badUpdate)")
            #expect(try await client.call("PUT", "/v1/query/q1", #"{"Service": {"Service": "web"}, "DNS": {"TTL": true}}"#) == (400, "Request decode failed: DNS.TTL must be a duration"))
            #expect(try await client.call("POST", "/v1/query/q1/execute") == (405, "method POST not allowed"))
            #expect(try await client.call("GET", "/v1/query/q1/execute?limit=-1") == (400, "Bad limit: -1"))
            #expect(try await client.call("GET", "/v1/query/q1/execute?index=abc") == (400, "Invalid index"))
            #expect(try await client.call("PUT", "/v1/query/q1/explain") == (405, "method PUT not allowed"))
            #expect(try await client.call("GET", "/v1/query/q1/explain?index=abc") == (400, "Invalid index"))
            #expect(try await client.call("GET", "/v1/query/q1/explain") == Self.noServers)
        }
    }

    // MARK: - ?filter= on catalog, health and agent lists

    /// A bad expression is refused on the agent that receives it, before it is forwarded: even a
    /// client with no server to ask answers 400, not 500.
    @Test func badFilterExpressionsAreRefusedOnEveryFilteredList() async throws {
        try await Self.withClient { (client: Client) async throws in
            let lists = [
                "/v1/catalog/nodes", "/v1/catalog/service/web", "/v1/health/node/n1", "/v1/health/checks/web",
                "/v1/health/service/web", "/v1/health/state/any", "/v1/agent/services", "/v1/agent/checks", "/v1/agent/members",
            ]
            for path in lists {
                let unclosed = try await client.call("GET", path + "?filter=%28Service%20%3D%3D%20web")
                #expect(unclosed.0 == 400 && unclosed.1.hasPrefix("Failed to create boolean expression evaluator: "), "\(path): \(unclosed)")
                let dangling = try await client.call("GET", path + "?filter=Node%20%3D%3D")
                #expect(dangling.0 == 400 && dangling.1.hasPrefix("Failed to create boolean expression evaluator: "), "\(path): \(dangling)")
            }
            // A good expression on a replicated list goes on to a server.
            #expect(try await client.call("GET", "/v1/catalog/nodes?filter=Node%20%3D%3D%20n1") == Self.noServers)
        }
    }
}
