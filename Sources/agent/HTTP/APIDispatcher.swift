import ConsulCore
import NIOCore
import Synchronization

/// The request path of ARCHITECTURE.md: route → options → forwarder → ACL gate → endpoint, then
/// blocking-query waits, consistency checks and Consul's response headers. Runs on the event loop
/// that received the request; only what truly waits (Raft, blocking queries) leaves it.
final class APIDispatcher: Sendable {
    let agent: AgentRuntime
    private let router: APIRouter
    private let jitter: Mutex<SeededRandom>
    /// Carries requests the forwarder sends to the leader (or, from a client, to a server); nil:
    /// such requests are answered with the error a lone agent would give.
    private let relay: RPCRelay?

    init(agent: AgentRuntime, seed: UInt64, relay: RPCRelay? = nil) {
        self.agent = agent
        self.router = APIRouter(agent: agent)
        self.jitter = Mutex(SeededRandom(seed: seed))
        self.relay = relay
    }

    func handle(_ request: APIRequest, on loop: any EventLoop) -> EventLoopFuture<APIResponse> {
        agent.countHTTPRequest(request.method)
        do {
            let route = try router.route(request)
            let options = try QueryOptions.parse(request, localDatacenter: agent.datacenter)
            // Parsed before anything is forwarded or started: a bad expression is the caller's 400
            // wherever the request would go (a client with no server in reach included), and must
            // not leave a blocking query waiting behind it. The agent that answers applies it.
            let filter = try listFilter(request)
            let answerer = route.answerer
            // Only the replicated state and what any server knows travel between agents; what an
            // agent answers about itself is never forwarded, so a forwarded request cannot ask for it.
            if answerer == .thisAgent, request.forwardHops > 0 {
                throw APIError.badRequest("\(request.path) is answered by each agent itself and is not forwarded")
            }
            let decision: ForwardDecision
            switch answerer {
            case .thisAgent:
                decision = .local
            case .anyServer:
                decision = try Forwarder.decide(datacenter: options.datacenter, consistency: .stale, isWrite: false, state: agent.forwardingState)
            case .forwarder:
                decision = try Forwarder.decide(
                    datacenter: options.datacenter, consistency: options.consistency, isWrite: route.isWrite, state: agent.forwardingState)
            }
            switch decision {
            case .local: break
            case .datacenter(let dc): throw APIError.unknownDatacenter(dc)
            case .leader:
                // The ACL gate runs on the agent that answers, not here.
                guard let relay else { throw agent.raft == nil ? APIError.noServers : APIError.noLeader }
                return relay.forward(request, isWrite: route.isWrite, options: options, on: loop)
            }
            _ = try agent.acl.authorize(token: options.token, route.resource, route.access)
            let answer: EventLoopFuture<APIResponse>
            switch route.action {
            case .respond(let response):
                answer = loop.makeSucceededFuture(response)
            case .read(let tables, let render):
                answer = read(tables: tables, render: render, options: options, on: loop)
            case .write(let perform), .agentOperation(let perform):
                answer = run(perform, on: loop)
            case .propose(let command, let refusal, let render):
                answer = propose(command, refusal: refusal, render: render, on: loop)
            }
            // `?filter=` on list answers is applied where the answer is rendered.
            if let filter {
                return answer.map { ResponseFilter.apply(filter.expression, shape: filter.shape, to: $0) }
            }
            return answer
        } catch let error as APIError {
            return loop.makeSucceededFuture(error.response)
        } catch {
            return loop.makeSucceededFuture(APIError.internalError("\(error)").response)
        }
    }

    /// The request's `?filter=`, parsed (a syntax error is a 400), when its path answers a list
    /// Consul filters; other paths ignore the parameter, as Consul's do.
    private func listFilter(_ request: APIRequest) throws(APIError) -> (expression: FilterExpression, shape: ResponseFilter.Shape)? {
        guard let text = request.query["filter"], !text.isEmpty, let shape = ResponseFilter.shape(of: request.path) else { return nil }
        return (try FilterExpression(parsing: text), shape)
    }

    private func run(_ perform: @escaping @Sendable () async throws(APIError) -> APIResponse, on loop: any EventLoop) -> EventLoopFuture<APIResponse> {
        let promise = loop.makePromise(of: APIResponse.self)
        Task {
            do throws(APIError) {
                promise.succeed(try await perform())
            } catch {
                promise.succeed(error.response)
            }
        }
        return promise.futureResult
    }

    private func propose(
        _ command: StateCommand, refusal: (@Sendable () -> APIResponse?)?, render: @escaping @Sendable (StateCommandResult) throws(APIError) -> APIResponse,
        on loop: any EventLoop
    ) -> EventLoopFuture<APIResponse> {
        if let refused = refusal?() { return loop.makeSucceededFuture(refused) }
        let promise = loop.makePromise(of: APIResponse.self)
        agent.apply(command) { result in
            switch result {
            case .success(let applied):
                do throws(APIError) {
                    promise.succeed(try render(applied))
                } catch {
                    promise.succeed(error.response)
                }
            case .failure(let error):
                promise.succeed(error.response)
            }
        }
        return promise.futureResult
    }

    private func read(
        tables: [StateTable], render: @escaping @Sendable (StateStore) throws(APIError) -> APIResponse, options: QueryOptions,
        on loop: any EventLoop
    ) -> EventLoopFuture<APIResponse> {
        guard options.consistency == .consistent else {
            return readWhenReady(tables: tables, render: render, options: options, on: loop)
        }
        let promise = loop.makePromise(of: APIResponse.self)
        let agent = self.agent
        Task {
            do throws(APIError) {
                try await agent.consistentRead()
                loop.execute { promise.completeWith(self.readWhenReady(tables: tables, render: render, options: options, on: loop)) }
            } catch {
                promise.succeed(error.response)
            }
        }
        return promise.futureResult
    }

    /// Answers now, or — for a blocking query whose tables have not moved past `?index` — when they
    /// do or the (jittered) wait runs out, whichever comes first.
    private func readWhenReady(
        tables: [StateTable], render: @escaping @Sendable (StateStore) throws(APIError) -> APIResponse, options: QueryOptions,
        on loop: any EventLoop
    ) -> EventLoopFuture<APIResponse> {
        let store = agent.watch.current
        // A read that watches no table (Raft configuration, autopilot settings) does not block.
        guard options.minIndex > 0, !tables.isEmpty, store.index(of: tables) <= options.minIndex else {
            return loop.makeSucceededFuture(answer(store, tables: tables, render: render))
        }
        let promise = loop.makePromise(of: APIResponse.self)
        let done = NIOLoopBoundBox(false, eventLoop: loop)
        let finish: @Sendable () -> Void = {
            guard !done.value else { return }
            done.value = true
            promise.succeed(self.answer(self.agent.watch.current, tables: tables, render: render))
        }
        let token = agent.watch.wait(for: tables, beyond: options.minIndex) { loop.execute(finish) }
        guard let token else { return loop.makeSucceededFuture(answer(agent.watch.current, tables: tables, render: render)) }
        let wait = jitter.withLock { options.jitteredWait(&$0) }
        let watch = agent.watch
        let timeout = loop.scheduleTask(in: .nanoseconds(wait.totalNanoseconds)) {
            watch.cancel(token)
            finish()
        }
        promise.futureResult.whenComplete { _ in
            timeout.cancel()
            watch.cancel(token)
        }
        return promise.futureResult
    }

    private func answer(_ store: StateStore, tables: [StateTable], render: (StateStore) throws(APIError) -> APIResponse) -> APIResponse {
        var response: APIResponse
        do {
            response = try render(store)
        } catch {
            response = error.response
        }
        let leader = agent.leaderContact
        response.headers.append(("X-Consul-Index", String(store.index(of: tables))))
        response.headers.append(("X-Consul-KnownLeader", leader.knownLeader ? "true" : "false"))
        response.headers.append(("X-Consul-LastContact", String((leader.sinceContact ?? .zero).totalNanoseconds / 1_000_000)))
        return response
    }
}
