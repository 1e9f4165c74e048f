import Testing
@testable import ConsulAgent

/// Consul user events: the msgpack payload, receivers' filters, the list index and the ring buffer.
@Suite struct UserEventTests {
    @Test func payloadRoundTripsAndGarbageIsIgnored() {
        let event = UserEvent(id: "0f3c7a6e-0b5e-4b9c-8a4f-1d2e3f405060", name: "deploy", payload: Array("v2".utf8), serviceFilter: "web", tagFilter: "blue")
        #expect(UserEvent.decode(event.encoded, lamportTime: 7) == UserEvent(
            id: event.id, name: "deploy", payload: Array("v2".utf8), serviceFilter: "web", tagFilter: "blue", lamportTime: 7))
        #expect(UserEvent.decode([0xc1, 0x00], lamportTime: 1) == nil)
        #expect(UserEvent.decode([0x93, 0x01, 0x02, 0x03], lamportTime: 1) == nil)
    }

    @Test func filtersMatchNodeNameServiceIDsAndTags() {
        let services = [(id: "web1", tags: ["blue"]), (id: "db", tags: [String]())]
        func event(node: String = "", service: String = "", tag: String = "") -> UserEvent {
            UserEvent(id: "x", name: "e", nodeFilter: node, serviceFilter: service, tagFilter: tag)
        }
        #expect(event().passes(nodeName: "n1", services: []))
        #expect(event(node: "^n").passes(nodeName: "n1", services: []))
        #expect(!event(node: "^m").passes(nodeName: "n1", services: []))
        #expect(event(service: "web").passes(nodeName: "n1", services: services))
        #expect(event(service: "web", tag: "bl").passes(nodeName: "n1", services: services))
        #expect(!event(service: "web", tag: "green").passes(nodeName: "n1", services: services))
        #expect(!event(service: "cache").passes(nodeName: "n1", services: services))
        #expect(UserEvent.validate(name: "e", node: "(", service: "", tag: "") != nil)
        #expect(UserEvent.validate(name: "", node: "", service: "", tag: "") == "User event missing name")
    }

    @Test func indexXorsTheHalvesOfTheID() {
        #expect(UserEvent.index(ofID: "00000000-0000-0001-0000-000000000003") == 2)
        #expect(UserEvent.index(ofID: "not-a-uuid") == 0)
    }

    @Test func ringKeepsTheNewest256OldestFirst() {
        let log = UserEventLog(nodeName: "n1")
        for number in 0..<300 { log.ingest(UserEvent(id: "\(number)", name: "e")) }
        let events = log.events.events
        #expect(events.count == UserEventLog.capacity)
        #expect(events.first?.id == "44" && events.last?.id == "299")
    }

    @Test func waitReturnsOnANewEventOrTimeout() async {
        let log = UserEventLog(nodeName: "n1")
        await log.waitForChange(since: log.events.version, timeout: .milliseconds(10))
        let version = log.events.version
        async let waited: Void = log.waitForChange(since: version, timeout: .seconds(30))
        log.ingest(UserEvent(id: "1", name: "e"))
        await waited
        #expect(log.events.events.count == 1)
    }
}
