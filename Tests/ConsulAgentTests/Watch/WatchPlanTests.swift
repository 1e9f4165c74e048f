import ConsulCore
import Testing
@testable import ConsulAgent

/// `consul watch`'s pure half: which read each type makes, what is refused, how an answer becomes
/// the result, and when a result is handed out (index bookkeeping, change detection, backoff).
@Suite struct WatchPlanTests {
    typealias Parameters = WatchPlan.Parameters

    static func plan(_ build: (inout Parameters) -> Void) throws(WatchPlan.PlanError) -> WatchPlan {
        var parameters = Parameters()
        build(&parameters)
        return try WatchPlan.make(parameters)
    }

    static func names(_ plan: WatchPlan, index: UInt64 = 0) -> [String] {
        plan.parameters(blockingOn: index).map { parameter in parameter.value.map { "\(parameter.name)=\($0)" } ?? parameter.name }
    }

    static func json(_ text: String) -> ConfigValue {
        try! JSONConfigParser.parseValue(bytes: Array(text.utf8), file: "test")
    }

    @Test func eachTypeReadsItsEndpoint() throws {
        let key = try Self.plan { $0.type = "key"; $0.key = "app/config" }
        #expect(key.path == "/v1/kv/app/config" && key.shape == .firstElementOrNullWhenMissing && Self.names(key).isEmpty)
        let prefix = try Self.plan { $0.type = "keyprefix"; $0.prefix = "app/" }
        #expect(prefix.path == "/v1/kv/app/" && Self.names(prefix) == ["recurse"] && prefix.shape == .bodyOrNullWhenMissing)
        #expect(try Self.plan { $0.type = "services" }.path == "/v1/catalog/services")
        #expect(try Self.plan { $0.type = "nodes" }.path == "/v1/catalog/nodes")
        let service = try Self.plan { $0.type = "service"; $0.service = "web"; $0.tags = ["a", "b"]; $0.passingOnly = "true" }
        #expect(service.path == "/v1/health/service/web" && Self.names(service) == ["tag=a", "tag=b", "passing=1"])
        #expect(Self.names(try Self.plan { $0.type = "service"; $0.service = "web"; $0.passingOnly = "false" }).isEmpty)
        #expect(try Self.plan { $0.type = "checks" }.path == "/v1/health/state/any")
        #expect(try Self.plan { $0.type = "checks"; $0.state = "critical" }.path == "/v1/health/state/critical")
        #expect(try Self.plan { $0.type = "checks"; $0.service = "web" }.path == "/v1/health/checks/web")
        let event = try Self.plan { $0.type = "event"; $0.name = "deploy" }
        #expect(event.path == "/v1/event/list" && Self.names(event) == ["name=deploy"] && event.shape == .eventsAfterPreviousIndex)
        #expect(!event.indexesAreOrdered && key.indexesAreOrdered)
    }

    @Test func datacenterStaleAndTheBlockingIndexGoIntoTheQuery() throws {
        let nodes = try Self.plan { $0.type = "nodes"; $0.datacenter = "dc2"; $0.stale = true }
        #expect(Self.names(nodes) == ["dc=dc2", "stale"])
        // Index 0 asks for an answer at once, so it is not sent.
        #expect(Self.names(nodes, index: 42) == ["dc=dc2", "stale", "index=42"])
    }

    @Test func badCombinationsAreRefusedWithConsulsMessages() {
        func refusal(_ build: (inout Parameters) -> Void) -> String? {
            do throws(WatchPlan.PlanError) {
                _ = try Self.plan(build)
                return nil
            } catch {
                return error.message
            }
        }
        #expect(refusal { _ in } == "Watch type must be specified")
        #expect(refusal { $0.type = "" } == "Watch type must be specified")
        #expect(refusal { $0.type = "keys" } == "Unsupported watch type: keys")
        #expect(refusal { $0.type = "key" } == "Must specify a single key to watch")
        #expect(refusal { $0.type = "key"; $0.key = "" } == "Must specify a single key to watch")
        #expect(refusal { $0.type = "keyprefix" } == "Must specify a single prefix to watch")
        #expect(refusal { $0.type = "service" } == "Must specify a single service to watch")
        #expect(refusal { $0.type = "checks"; $0.service = "web"; $0.state = "passing" } == "Cannot specify service and state")
        #expect(refusal { $0.type = "service"; $0.service = "web"; $0.passingOnly = "yes" }
            == #"Failed to parse passingonly flag: strconv.ParseBool: parsing "yes": invalid syntax"#)
        #expect(refusal { $0.type = "nodes"; $0.key = "a"; $0.tags = ["t"] } == "Invalid parameters: [key tag]")
        #expect(refusal { $0.type = "key"; $0.key = "a"; $0.prefix = "b" } == "Invalid parameters: [prefix]")
        #expect(refusal { $0.type = "checks"; $0.tags = ["t"] } == "Invalid parameters: [tag]")
        #expect(refusal { $0.type = "event"; $0.stale = true } == "Invalid parameters: [stale]")
    }

    @Test func answersBecomeTheWatchResult() throws {
        let key = try Self.plan { $0.type = "key"; $0.key = "a" }
        #expect(key.result(status: 404, body: nil, previousIndex: nil) == .null)
        #expect(key.result(status: 200, body: Self.json(#"[{"Key":"a","Value":"MQ=="}]"#), previousIndex: nil) == Self.json(#"{"Key":"a","Value":"MQ=="}"#))
        #expect(key.result(status: 500, body: nil, previousIndex: nil) == nil)
        let prefix = try Self.plan { $0.type = "keyprefix"; $0.prefix = "a" }
        #expect(prefix.result(status: 404, body: nil, previousIndex: 3) == .null)
        let nodes = try Self.plan { $0.type = "nodes" }
        #expect(nodes.result(status: 404, body: nil, previousIndex: nil) == nil, "a 404 from the catalog is an error, not an empty view")
        #expect(nodes.result(status: 200, body: Self.json("[]"), previousIndex: nil) == Self.json("[]"))
    }

    @Test func eventResultsKeepOnlyEventsAfterThePreviousIndex() throws {
        let plan = try Self.plan { $0.type = "event" }
        let first = "00000000-0000-0001-0000-000000000000", second = "00000000-0000-0002-0000-000000000000"
        let list = Self.json(#"[{"ID":"\#(first)","Name":"a"},{"ID":"\#(second)","Name":"b"}]"#)
        #expect(UserEvent.index(ofID: first) == 1)
        #expect(plan.result(status: 200, body: list, previousIndex: nil) == list)
        #expect(plan.result(status: 200, body: list, previousIndex: 1) == Self.json(#"[{"ID":"\#(second)","Name":"b"}]"#))
        #expect(plan.result(status: 200, body: list, previousIndex: 2) == Self.json("[]"))
        // An index naming no event in the buffer (it rolled over): everything there is.
        #expect(plan.result(status: 200, body: list, previousIndex: 99) == list)
    }

    @Test func firstResultAndChangesAreDeliveredButNotRepeats() {
        var progress = WatchProgress()
        #expect(progress.blockingIndex == 0)
        #expect(progress.received(index: 5, result: .null) == .deliver(index: 5, result: .null))
        #expect(progress.blockingIndex == 5)
        // Same index (a blocking query that timed out): nothing to do.
        #expect(progress.received(index: 5, result: .null) == .unchanged)
        // A new index with the same result (another key changed): not delivered, but followed.
        #expect(progress.received(index: 7, result: .null) == .unchanged)
        #expect(progress.blockingIndex == 7)
        let value = Self.json(#"{"Key":"x"}"#)
        #expect(progress.received(index: 9, result: value) == .deliver(index: 9, result: value))
    }

    @Test func anIndexGoingBackwardsStartsTheBlockingOver() {
        var progress = WatchProgress()
        let value = Self.json(#"{"Key":"x"}"#)
        _ = progress.received(index: 100, result: value)
        // A restored snapshot: the index went back. Ask again at once, deliver only what changed.
        #expect(progress.received(index: 40, result: value) == .unchanged)
        #expect(progress.blockingIndex == 0)
        #expect(progress.received(index: 40, result: value) == .unchanged)
        #expect(progress.blockingIndex == 40)
        let older = Self.json(#"{"Key":"y"}"#)
        #expect(progress.received(index: 30, result: older) == .deliver(index: 30, result: older))
        #expect(progress.blockingIndex == 0)

        // Event indexes are hashes: a smaller one is just another event.
        var events = WatchProgress(resetsWhenIndexGoesBackwards: false)
        _ = events.received(index: 100, result: .array([]))
        #expect(events.received(index: 40, result: .array([value])) == .deliver(index: 40, result: .array([value])))
        #expect(events.blockingIndex == 40)
    }

    @Test func failedReadsBackOffAndForgetTheIndex() {
        var progress = WatchProgress()
        _ = progress.received(index: 8, result: .null)
        #expect(progress.failed() == .seconds(5))
        #expect(progress.blockingIndex == 0)
        #expect(progress.failed() == .seconds(20))
        #expect(progress.failed() == .seconds(45))
        for _ in 0..<5 { _ = progress.failed() }
        #expect(progress.failed() == .seconds(180))
        // After a failure the next answer counts as a first one (Consul re-runs the handler).
        #expect(progress.received(index: 8, result: .null) == .deliver(index: 8, result: .null))
        #expect(progress.failures == 0)
        #expect(progress.failed() == .seconds(5))
    }
}
