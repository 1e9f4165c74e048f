import Testing
@testable import Raft

@Suite struct PeersFileTests {
    func parse(_ text: String) throws(PeersFile.ParseError) -> ClusterConfiguration {
        try PeersFile.parse(Array(text.utf8), path: "/data/raft/peers.json")
    }

    func problem(_ text: String) -> String? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            #expect(error.description.hasPrefix("/data/raft/peers.json: "))
            return error.problem
        }
    }

    @Test func readsConsulProtocol3Format() throws {
        let configuration = try parse("""
            [
              {"id": "adf4238a-882b-9ddc-4a9d-5b6758e4159e", "address": "10.1.0.1:8300", "non_voter": false},
              {"id": "8b6dda82-3103-11e7-93ae-92361f002671", "address": "10.1.0.2:8300"},
              {"id": "97e17742-3103-11e7-93ae-92361f002671", "address": "[fd00::3]:8300", "non_voter": true, "extra": 1}
            ]
            """)
        #expect(configuration.servers == [
            ServerEntry(id: ServerID("8b6dda82-3103-11e7-93ae-92361f002671"), suffrage: .voter, address: "10.1.0.2:8300"),
            ServerEntry(id: ServerID("97e17742-3103-11e7-93ae-92361f002671"), suffrage: .nonvoter, address: "[fd00::3]:8300"),
            ServerEntry(id: ServerID("adf4238a-882b-9ddc-4a9d-5b6758e4159e"), suffrage: .voter, address: "10.1.0.1:8300"),
        ])
        #expect(configuration.addresses[ServerID("8b6dda82-3103-11e7-93ae-92361f002671")] == "10.1.0.2:8300")
    }

    @Test func malformedFilesNameTheProblem() {
        #expect(problem(#"[{"id": "a", "address": "10.0.0.1:8300""#)?.hasPrefix("invalid JSON at 1:") == true)
        #expect(problem(#"{"id": "a"}"#)?.contains("expected a JSON array") == true)
        #expect(problem(#"["10.0.0.1:8300"]"#)?.contains("protocol 2") == true)
        #expect(problem(#"[{"address": "10.0.0.1:8300"}]"#) == #"server 1 has no "id" (a non-empty string: the server's node ID)"#)
        #expect(problem(#"[{"id": "a"}]"#)?.hasPrefix(#"server 1 (a) has no "address""#) == true)
        #expect(problem(#"[{"id": "a", "address": "10.0.0.1"}]"#)?.contains("expected \"host:port\"") == true)
        #expect(problem(#"[{"id": "a", "address": "::1:8300"}]"#)?.contains("expected \"host:port\"") == true)
        #expect(problem(#"[{"id": "a", "address": "h:1", "non_voter": "no"}]"#)?.contains("expected true or false") == true)
        #expect(problem(#"[{"id": "a", "address": "h:1"}, {"id": "a", "address": "h:2"}]"#) == "id a is listed twice")
        #expect(problem(#"[{"id": "a", "address": "h:1"}, {"id": "b", "address": "h:1"}]"#) == "address h:1 is listed twice")
        #expect(problem(#"[{"id": "a", "address": "h:1", "non_voter": true}]"#) == "no voter listed: a cluster needs at least one")
        #expect(problem("[]") == "no voter listed: a cluster needs at least one")
        #expect(problem(String(repeating: " ", count: PeersFile.maxBytes + 1))?.contains("limit") == true)
    }
}
