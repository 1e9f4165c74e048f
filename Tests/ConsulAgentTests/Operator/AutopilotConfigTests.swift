import ConsulCore
import NIOCore
import NIOPosix
import Raft
import Testing
@testable import ConsulAgent

/// The autopilot configuration stored in the replicated state: CAS rules, snapshots, the request
/// body's parsing and the CLI's pretty output.
@Suite struct AutopilotConfigTests {
    static func settings(trailing: Int = 250) -> AgentConfig.AutopilotConfig {
        var settings = AgentConfig.AutopilotConfig()
        settings.maxTrailingLogs = trailing
        settings.lastContactThreshold = .milliseconds(300)
        return settings
    }

    @Test func casOnlyReplacesTheVersionItNamesAndKeepsCreateIndex() {
        var state = StateHarness()
        #expect(state.run(.setAutopilot(Self.settings(trailing: 1), cas: 5)) == .applied(false))
        #expect(state.store.autopilot == nil)
        #expect(state.run(.setAutopilot(Self.settings(trailing: 2), cas: 0)) == .applied(true))
        #expect(state.store.autopilot?.indexes == RaftIndexes(createIndex: 2, modifyIndex: 2))
        #expect(state.run(.setAutopilot(Self.settings(trailing: 3), cas: 0)) == .applied(false))
        #expect(state.run(.setAutopilot(Self.settings(trailing: 4), cas: nil)) == .done)
        #expect(state.store.autopilot?.settings.maxTrailingLogs == 4)
        #expect(state.store.autopilot?.indexes == RaftIndexes(createIndex: 2, modifyIndex: 4))
        #expect(state.run(.setAutopilot(Self.settings(trailing: 5), cas: 4)) == .applied(true))
        #expect(state.store.index(of: .autopilot) == 5)
    }

    @Test func commandSurvivesEncodingAndSnapshotsCarryTheSettings() throws {
        let command = StateCommand.setAutopilot(Self.settings(trailing: 9), cas: 7)
        #expect(try StateCommand.decode(command.encoded()) == command)
        var state = StateHarness()
        state.run(.setAutopilot(Self.settings(trailing: 9), cas: nil))
        let bytes = state.machine.snapshotData()
        var restored = ConsulStateMachine(datacenter: "dc1")
        try restored.restore(snapshotData: bytes)
        #expect(restored.store.autopilot == state.store.autopilot)
        #expect(restored.snapshotData() == bytes)
    }

    /// A snapshot of the previous format (version 2: five tables, no autopilot or coordinates)
    /// still restores; an unknown version does not.
    @Test func versionTwoSnapshotsRestoreAndUnknownVersionsAreRefused() throws {
        func snapshot(version: UInt8, tables: Int, counts: Int) -> [UInt8] {
            var data: [UInt8] = []
            let sink = SnapshotSink { chunk throws(WALError) in data += chunk }
            sink.write { header in
                header.u8(version)
                header.u64(7)
                header.u32(UInt32(tables))
                for _ in 0..<tables { header.u64(3) }
                for _ in 0..<counts { header.u32(0) }
            }
            try? sink.finish()
            return data
        }
        var machine = ConsulStateMachine(datacenter: "dc1")
        try machine.restore(snapshotData: snapshot(version: 2, tables: 5, counts: 5))
        #expect(machine.store.lastIndex == 7 && machine.store.index(of: .kv) == 3 && machine.store.index(of: .coordinates) == 0)
        #expect(throws: RaftNodeError.self) { try machine.restore(snapshotData: snapshot(version: 9, tables: 5, counts: 5)) }
        #expect(throws: RaftNodeError.self) { try machine.restore(snapshotData: snapshot(version: 3, tables: 5, counts: 5)) }
    }

    @Test func bodyParsingFollowsConsul() throws {
        let parsed = try AutopilotEndpoint.parse(Array(#"{"CleanupDeadServers": true, "LastContactThreshold": "1s", "MaxTrailingLogs": 9, "ServerStabilizationTime": 5000000000}"#.utf8))
        #expect(parsed.cleanupDeadServers && parsed.lastContactThreshold == .seconds(1) && parsed.maxTrailingLogs == 9)
        #expect(parsed.serverStabilizationTime == .seconds(5) && parsed.minQuorum == 0)
    }

    static func call(_ method: String, _ target: String, _ body: String) async throws -> (Int, String) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let dispatcher = APIDispatcher(agent: RPCRelayTests.clientRuntime(), seed: 1)
        let answer = try await AgentLocalEndpointTests.call(dispatcher, group.next(), method, target, body)
        try await group.shutdownGracefully()
        return answer
    }

    @Test func badBodiesAndCASAreRefusedWithAMessage() async throws {
        let path = "/v1/operator/autopilot/configuration"
        let badJSON = try await Self.call("PUT", path, "{")
        #expect(badJSON.0 == 400 && badJSON.1.hasPrefix("Error parsing autopilot config"))
        let badDuration = try await Self.call("PUT", path, #"{"LastContactThreshold": "soon"}"#)
        #expect(badDuration.0 == 400 && badDuration.1.contains(#"time: invalid duration "soon""#))
        let badType = try await Self.call("PUT", path, #"{"MaxTrailingLogs": "many"}"#)
        #expect(badType.0 == 400 && badType.1.contains("MaxTrailingLogs"))
        let negative = try await Self.call("PUT", path, #"{"MinQuorum": -1}"#)
        #expect(negative.0 == 400)
        let badCAS = try await Self.call("PUT", path + "?cas=x", "{}")
        #expect(badCAS.0 == 400 && badCAS.1.hasPrefix("Error parsing cas value"))
        #expect(try await Self.call("POST", path, "{}").0 == 405)
        #expect(try await Self.call("PUT", "/v1/operator/autopilot/state", "").0 == 405)
    }

    @Test func prettyStateListsVotersAndServers() throws {
        let json = #"{"Healthy":true,"FailureTolerance":0,"OptimisticFailureTolerance":0,"Servers":{"a1":{"ID":"a1","Name":"n1","Address":"127.0.0.1:8300","NodeStatus":"alive","Version":"1.20.0","LastContact":"0s","LastTerm":2,"LastIndex":10,"Healthy":true,"StableSince":"2024-01-01T00:00:00Z","Status":"leader","Meta":{"consul-network-segment":""},"NodeType":"voter"}},"Leader":"a1","Voters":["a1"]}"#
        let value = try JSONConfigParser.parseValue(bytes: Array(json.utf8), file: "test")
        #expect(AutopilotCommands.pretty(value) == """
            Healthy:                      true
            Failure Tolerance:            0
            Optimistic Failure Tolerance: 0
            Leader:                       a1
            Voters:
               a1

            Servers:
               a1
                  Name:            n1
                  Address:         127.0.0.1:8300
                  Version:         1.20.0
                  Status:          leader
                  Node Type:       voter
                  Node Status:     alive
                  Healthy:         true
                  Last Contact:    0s
                  Last Term:       2
                  Last Index:      10
                  Meta
                     "consul-network-segment": ""


            """)
    }
}
