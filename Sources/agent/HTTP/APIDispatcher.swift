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

    init(agent: AgentRuntime, seed: UInt64) {
        self.agent = agent
        self.router = APIRouter(agent: agent)
        self.jitter = Mutex(SeededRandom(seed: seed))
    }

    func handle(_ request: APIRequest, on loop: any EventLoop) -> EventLoopFuture<APIResponse> {
        do {
            let route = try router.route(request)
            let options = try QueryOptions.parse(request, localDatacenter: agent.datacenter)
            switch route.action {
            case .respond(let response):
                _ = try agent.acl.authorize(token: options.token, route.resource, route.access)
                return loop.makeSucceededFuture(response)
            case .agentOperation(let perform):
                _ = try agent.acl.authorize(token: options.token, route.resource, route.access)
                return run(perform, on: loop)
            case .read, .write:
                break
            }
            let decision = try Forwarder.decide(
                datacenter: options.datacenter, consistency: options.consistency, isWrite: route.isWrite, state: agent.forwardingState)
            switch decision {
            case .local: break
            case .datacenter(let dc): throw APIError.unknownDatacenter(dc)
            case .leader:
                throw agent.raft == nil
                    ? APIError.noServers
                    : APIError.notImplemented("this server is not the leader, and forwarding to the leader is not built yet; ask the leader or use ?stale")
            }
            _ = try agent.acl.authorize(token: options.token, route.resource, route.access)
            switch route.action {
            case .respond(let response):
                return loop.makeSucceededFuture(response)
            case .read(let tables, let render):
                return read(tables: tables, render: render, options: options, on: loop)
            case .write(let perform), .agentOperation(let perform):
                return run(perform, on: loop)
            }
        } catch let error as APIError {
            return loop.makeSucceededFuture(error.response)
        } catch {
            return loop.makeSucceededFuture(APIError.internalError("\(error)").response)
        }
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
        guard options.minIndex > 0, store.index(of: tables) <= options.minIndex else {
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
        let view = agent.clusterView
        response.headers.append(("X-Consul-Index", String(store.index(of: tables))))
        response.headers.append(("X-Consul-KnownLeader", view.leaderID == nil ? "false" : "true"))
        var lastContact: Int64 = 0
        if !view.isLeader, let contact = view.lastContact {
            lastContact = agent.clock.now().duration(since: contact).totalNanoseconds / 1_000_000
        }
        response.headers.append(("X-Consul-LastContact", String(lastContact)))
        return response
    }
}
