import ConsulCore
import NIOCore
import NIOPosix
import Testing
@testable import ConsulAgent

/// The `coordinates` table, its JSON (Go's float layout) and the update body's checks.
@Suite struct CoordinateTests {
    static func coord(_ x: Double) -> NetworkCoordinate {
        NetworkCoordinate(vec: [x, 0, 0, 0, 0, 0, 0, 0], error: 1.5, adjustment: 0, height: 1e-5)
    }

    @Test func updatesSkipUnknownNodesAndDeregisteringDeletesTheCoordinate() throws {
        var state = StateHarness()
        state.registerNode("n1")
        state.registerNode("n2")
        state.run(.updateCoordinates([
            NodeCoordinate(node: "N1", segment: "", coord: Self.coord(0.5)), NodeCoordinate(node: "ghost", segment: "", coord: Self.coord(1)),
            NodeCoordinate(node: "n2", segment: "", coord: Self.coord(2)),
        ]))
        #expect(state.store.allCoordinates().map(\.node) == ["n1", "n2"])
        #expect(state.store.index(of: .coordinates) == 3)
        // Unchanged rows do not move the table's index.
        state.run(.updateCoordinates([NodeCoordinate(node: "n1", segment: "", coord: Self.coord(0.5))]))
        #expect(state.store.index(of: .coordinates) == 3)

        let bytes = state.machine.snapshotData()
        var restored = ConsulStateMachine(datacenter: "dc1")
        try restored.restore(snapshotData: bytes)
        #expect(restored.store.allCoordinates() == state.store.allCoordinates())

        state.run(.deregister(node: "n1", serviceID: nil, checkID: nil))
        #expect(state.store.coordinates(ofNode: "n1").isEmpty)
        #expect(state.store.index(of: .coordinates) == 5)
        let command = StateCommand.updateCoordinates([NodeCoordinate(node: "x", segment: "s", coord: Self.coord(-3.25))])
        #expect(try StateCommand.decode(command.encoded()) == command)
    }

    @Test func floatsAreWrittenAsGoWritesThem() {
        #expect(JSONWriter.goFloat(0) == "0")
        #expect(JSONWriter.goFloat(1.5) == "1.5")
        #expect(JSONWriter.goFloat(1e-5) == "0.00001")
        #expect(JSONWriter.goFloat(1e-7) == "1e-07")
        #expect(JSONWriter.goFloat(-0.000123) == "-0.000123")
        #expect(JSONWriter.goFloat(123456789) == "123456789")
        #expect(JSONWriter.goFloat(1e21) == "1e+21")
        #expect(JSONWriter.goFloat(0.1 + 0.2) == "0.30000000000000004")
        #expect(JSONWriter.goFloat(2.5e-6) == "0.0000025")
    }

    @Test func renderedRowsMatchConsulsShape() {
        let response = CoordinateEndpoint.render([NodeCoordinate(node: "n1", segment: "", coord: Self.coord(0.25))])
        #expect(String(decoding: response.body, as: UTF8.self)
            == #"[{"Node":"n1","Segment":"","Coord":{"Vec":[0.25,0,0,0,0,0,0,0],"Error":1.5,"Adjustment":0,"Height":0.00001}}]"#)
    }

    @Test func badUpdatesAreRefusedWithAMessage() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let dispatcher = APIDispatcher(agent: RPCRelayTests.clientRuntime(), seed: 1)
        func put(_ body: String) async throws -> (Int, String) {
            try await AgentLocalEndpointTests.call(dispatcher, group.next(), "PUT", "/v1/coordinate/update", body)
        }
        #expect(try await put("{").0 == 400)
        #expect(try await put(#"{"Coord": {}}"#) == (400, "Missing node name"))
        let short = try await put(#"{"Node": "n1", "Coord": {"Vec": [1, 2]}}"#)
        #expect(short.0 == 400 && short.1.hasPrefix("rejected bad coordinate"))
        let text = try await put(#"{"Node": "n1", "Coord": {"Vec": [1,2,3,4,5,6,7,"x"]}}"#)
        #expect(text.0 == 400)
        #expect(try await AgentLocalEndpointTests.call(dispatcher, group.next(), "GET", "/v1/coordinate/update").0 == 405)
        // A good update on a client goes on to a server; with none known, the answer says so.
        let good = try await put(#"{"Node": "n1", "Coord": {"Vec": [0,0,0,0,0,0,0,0], "Error": 1.5, "Height": 0.00001}}"#)
        #expect(good.0 == 500 && good.1 == "No known Consul servers")
        try await group.shutdownGracefully()
    }

    @Test func batcherKeepsTheNewestPerNodeAndRefusesPastItsLimit() throws {
        let batcher = CoordinateBatcher()
        try batcher.enqueue(NodeCoordinate(node: "a", segment: "", coord: Self.coord(1)))
        try batcher.enqueue(NodeCoordinate(node: "A", segment: "", coord: Self.coord(2)))
        #expect(batcher.takeBatches() == [[NodeCoordinate(node: "A", segment: "", coord: Self.coord(2))]])
        for n in 0..<(CoordinateBatcher.batchSize * CoordinateBatcher.maxBatches) {
            try batcher.enqueue(NodeCoordinate(node: "n\(n)", segment: "", coord: Self.coord(1)))
        }
        #expect(throws: APIError.self) { try batcher.enqueue(NodeCoordinate(node: "late", segment: "", coord: Self.coord(1))) }
        #expect(batcher.takeBatches().map(\.count) == Array(repeating: CoordinateBatcher.batchSize, count: CoordinateBatcher.maxBatches))
    }
}
