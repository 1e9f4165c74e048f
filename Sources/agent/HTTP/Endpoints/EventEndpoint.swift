import ConsulCore
import Foundation
import Gossip

/// `PUT /v1/event/fire/:name` (`?node=&service=&tag=` filters, body = payload) and
/// `GET /v1/event/list` (`?name=`, blocking on `?index=`). Events travel over this datacenter's
/// LAN gossip pool; the list is this agent's own buffer of recent events, so it is never forwarded.
struct EventEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        if tail.hasPrefix("fire/") || tail == "fire" {
            try APIRouter.requireMethod(request, "PUT")
            return try fire(request, name: String(tail.dropFirst(min(tail.count, 5))))
        }
        guard tail == "list" else { throw .notFound("404 page not found") }
        try APIRouter.requireMethod(request, "GET")
        return try list(request)
    }

    private func fire(_ request: APIRequest, name: String) throws(APIError) -> APIRoute {
        guard !name.isEmpty else { throw .badRequest("Missing name") }
        if let dc = request.query["dc"], !dc.isEmpty, dc != agent.datacenter { throw .unknownDatacenter(dc) }
        let node = request.query["node"] ?? "", service = request.query["service"] ?? "", tag = request.query["tag"] ?? ""
        if let problem = UserEvent.validate(name: name, node: node, service: service, tag: tag) { throw .badRequest(problem) }
        let event = UserEvent(
            id: UUID().uuidString.lowercased(), name: name, payload: request.body.isEmpty ? nil : request.body,
            nodeFilter: node, serviceFilter: service, tagFilter: tag)
        let agent = self.agent
        let perform: @Sendable () async throws(APIError) -> APIResponse = { () async throws(APIError) -> APIResponse in
            guard let lan = agent.lan else { throw .internalError("user events need the LAN gossip pool, which is not running") }
            do throws(GossipNodeError) {
                try lan.fire(event)
            } catch {
                throw Self.fireError(error)
            }
            return .json { event.write(into: &$0) }
        }
        return .agentOperation(.event(name), perform)
    }

    /// serf's size limit counts the whole encoded event, not just the payload: too large is the
    /// caller's to fix.
    private static func fireError(_ error: GossipNodeError) -> APIError {
        if case .serf(let serf) = error, case .userEventTooLarge = serf { return .tooLarge(error.description) }
        return .internalError(error.description)
    }

    private func list(_ request: APIRequest) throws(APIError) -> APIRoute {
        let options = try QueryOptions.parse(request, localDatacenter: agent.datacenter)
        let nameFilter = request.query["name"] ?? ""
        let agent = self.agent
        let perform: @Sendable () async throws(APIError) -> APIResponse = { () async throws(APIError) -> APIResponse in
            guard let log = agent.lan?.events else { return Self.answer([]) }
            var snapshot = log.events
            // Consul blocks only while the newest matching event is still the one named by ?index.
            if options.minIndex > 0, Self.index(Self.matching(snapshot.events, nameFilter)) == options.minIndex {
                await log.waitForChange(since: snapshot.version, timeout: options.wait)
                snapshot = log.events
            }
            return Self.answer(Self.matching(snapshot.events, nameFilter))
        }
        return APIRoute(action: .agentOperation(perform), isWrite: false, resource: .filteredList, access: .read)
    }

    private static func matching(_ events: [UserEvent], _ name: String) -> [UserEvent] {
        name.isEmpty ? events : events.filter { $0.name == name }
    }

    /// 1 for an empty list, so watchers do not spin on index 0 (as Consul).
    static func index(_ events: [UserEvent]) -> UInt64 {
        events.last.map { UserEvent.index(ofID: $0.id) } ?? 1
    }

    private static func answer(_ events: [UserEvent]) -> APIResponse {
        var response = APIResponse.json { writer in writer.array { for event in events { event.write(into: &$0) } } }
        response.headers.append(("X-Consul-Index", String(index(events))))
        return response
    }
}
