import Foundation
import Simulation
import Testing
import TestSupport

/// Three `consul-sim raft-node` processes on 127.0.0.1-3: real TCP, real WAL with fsync, real
/// SIGKILL. Every wait is a bounded poll; nothing is timed.
@Suite(.serialized) struct RaftProcessClusterTests {
    struct Server {
        var id: String
        var host: String
        var raftPort: Int
        var clientPort: Int
        var process: Process?
    }

    let root = NSTemporaryDirectory() + "raft-cluster-" + UUID().uuidString
    /// Every wait loop also stops here, so a broken cluster fails the test instead of hanging it.
    let deadline = ContinuousClock.now + .seconds(120)
    var expired: Bool { ContinuousClock.now >= deadline }
    let simulator = buildProductsDirectory() + "/consul-sim"

    func start(_ server: inout Server, peers: String) throws {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: simulator)
        child.arguments = [
            "raft-node", "--id", server.id, "--dir", root + "/" + server.id, "--bind", "\(server.host):\(server.raftPort)",
            "--client", "\(server.host):\(server.clientPort)", "--peers", peers, "--election-ms", "300",
            "--snapshot-every", "20", "--trailing", "5",
        ]
        let output = Pipe()
        child.standardOutput = output
        _ = FileManager.default.createFile(atPath: root + "/" + server.id + ".log", contents: nil)
        child.standardError = FileHandle(forWritingAtPath: root + "/" + server.id + ".log")
        try child.run()
        server.process = child
        let ready = LineReader(fd: output.fileHandleForReading.fileDescriptor).next(timeoutMilliseconds: 10_000)
        #expect(ready == "ready", "\(server.id) did not start: \(log(of: server))")
    }

    func log(of server: Server) -> String {
        (try? String(contentsOfFile: root + "/" + server.id + ".log", encoding: .utf8)) ?? ""
    }

    /// `STATUS` split into words, or nil when the server does not answer.
    func status(_ server: Server) -> [String]? {
        guard let client = LineClient(host: server.host, port: server.clientPort, timeoutMilliseconds: 2_000),
              let answer = client.request("STATUS")
        else { return nil }
        let words = answer.split(separator: " ").map(String.init)
        return words.count == 8 ? words : nil
    }

    /// The server that says it leads, polled every 50 ms, at most `attempts` times.
    func leader(among servers: [Server], attempts: Int = 200) -> Server? {
        for _ in 0..<attempts where !expired {
            for server in servers where status(server)?[1] == "leader" { return server }
            usleep(50_000)
        }
        return nil
    }

    /// Writes through the leader, retrying (bounded) while leadership moves; true once acknowledged.
    func put(_ key: String, _ value: String, servers: [Server]) -> Bool {
        for _ in 0..<100 where !expired {
            if let current = leader(among: servers, attempts: 40),
               let client = LineClient(host: current.host, port: current.clientPort),
               client.request("PUT \(key) \(value)") == "OK" {
                return true
            }
            usleep(50_000)
        }
        return false
    }

    @Test func killedLeaderIsReplacedAndCatchesUpBySnapshot() throws {
        try #require(FileManager.default.isExecutableFile(atPath: simulator), "build consul-sim first (swift build --build-tests)")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var servers: [Server] = []
        for number in 1...3 {
            let host = "127.0.0.\(number)"
            let raftPort = try #require(ReusablePorts.next(host: host))
            let clientPort = try #require(ReusablePorts.next(host: host))
            servers.append(Server(id: "n\(number)", host: host, raftPort: raftPort, clientPort: clientPort))
        }
        defer {
            // SIGKILL: the children may inherit a blocked SIGTERM from the test runner.
            for server in servers where server.process?.isRunning == true { kill(server.process!.processIdentifier, SIGKILL) }
            for server in servers { server.process?.waitUntilExit() }
            try? FileManager.default.removeItem(atPath: root)
        }
        let peers = servers.map { "\($0.id)=\($0.host):\($0.raftPort)" }.joined(separator: ",")
        for index in servers.indices { try start(&servers[index], peers: peers) }

        // Elect and replicate.
        var acknowledged: [String: String] = [:]
        for n in 1...10 {
            #expect(put("k\(n)", "v\(n)", servers: servers))
            acknowledged["k\(n)"] = "v\(n)"
        }

        // kill -9 the leader; the other two elect a new one and keep every acknowledged write.
        let first = try #require(leader(among: servers))
        let victim = try #require(servers.firstIndex { $0.id == first.id })
        let lastBeforeKill = try #require(Int(status(servers[victim])?[6] ?? ""))
        kill(servers[victim].process!.processIdentifier, SIGKILL)
        servers[victim].process!.waitUntilExit()
        let survivors = servers.enumerated().filter { $0.offset != victim }.map(\.element)
        let second = try #require(leader(among: survivors))
        #expect(second.id != first.id)
        // Enough writes that the survivors snapshot and compact past what the victim has.
        for n in 11...70 {
            #expect(put("k\(n)", "v\(n)", servers: survivors))
            acknowledged["k\(n)"] = "v\(n)"
        }
        let reader = try #require(LineClient(host: second.host, port: second.clientPort))
        for (key, value) in acknowledged {
            #expect(reader.request("GET \(key)") == "VALUE \(value)", "lost acknowledged write \(key)")
        }

        // The victim restarts and catches up, through a snapshot: the leader's log (its snapshot
        // point minus the 5 trailing entries kept) no longer reaches back to what the victim has.
        let leaderStatus = try #require(status(second))
        let target = try #require(Int(leaderStatus[4]))
        let leaderSnapshot = try #require(Int(leaderStatus[7]))
        #expect(leaderSnapshot - 5 > lastBeforeKill + 1, "the leader still has the log the victim needs: \(leaderStatus)")
        servers[victim].process = nil
        try start(&servers[victim], peers: peers)
        var caughtUp: [String]?
        for _ in 0..<200 where !expired {
            if let words = status(servers[victim]), let applied = Int(words[5]), applied >= target {
                caughtUp = words
                break
            }
            usleep(50_000)
        }
        try #require(caughtUp != nil, "restarted \(servers[victim].id) did not catch up: \(log(of: servers[victim]))")
        let local = try #require(LineClient(host: servers[victim].host, port: servers[victim].clientPort))
        for (key, value) in acknowledged {
            #expect(local.request("LOCAL \(key)") == "VALUE \(value)")
        }
    }
}
