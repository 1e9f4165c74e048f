import ConsulCrypto
import Foundation
import Synchronization
import Testing

/// A child process whose output is collected as it arrives; killed at the latest when the test ends.
final class ManagedProcess: Sendable {
    let name: String
    private let process: Process
    private let input: Pipe
    private let output = OutputBuffer()

    final class OutputBuffer: Sendable {
        private let text = Mutex("")
        func append(_ more: String) { text.withLock { $0 += more } }
        var value: String { text.withLock { $0 } }
    }

    init(name: String, executable: String, arguments: [String]) throws {
        self.name = name
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let input = Pipe()
        let pipe = Pipe()
        process.standardInput = input
        process.standardOutput = pipe
        process.standardError = pipe
        self.process = process
        self.input = input
        let output = self.output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { output.append(String(decoding: data, as: UTF8.self)) }
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var text: String { output.value }
    var isRunning: Bool { process.isRunning }
    var exitCode: Int32? { process.isRunning ? nil : process.terminationStatus }

    func send(_ line: String) { try? input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8)) }

    /// Waits (bounded) until the output contains `text`.
    func waitFor(_ text: String, within limit: Duration = .seconds(60)) async -> Bool {
        await eventually(within: limit) { self.text.contains(text) }
    }

    func signal(_ number: Int32) { if process.isRunning { kill(process.processIdentifier, number) } }

    func stop() {
        signal(SIGKILL)
        process.waitUntilExit()
    }
}

/// Finds (or installs, with apt-get, as CI does) HashiCorp's `serf` binary.
enum SerfBinary {
    static let path: String? = {
        if let found = locate() { return found }
        for command in ["apt-get install -y -qq serf", "apt-get update -qq && apt-get install -y -qq serf"] {
            let install = Process()
            install.executableURL = URL(fileURLWithPath: "/bin/sh")
            install.arguments = ["-c", "DEBIAN_FRONTEND=noninteractive \(command) >/dev/null 2>&1"]
            guard (try? install.run()) != nil else { break }
            install.waitUntilExit()
            if let found = locate() { return found }
        }
        return nil
    }()

    private static func locate() -> String? {
        ["/usr/bin/serf", "/usr/local/bin/serf"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// Our node runner (`consul-sim gossip-node`), built with the tests.
enum NodeRunner {
    static let path: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/consul-sim").path
    }()
}

/// Real serf agents and our nodes in one encrypted pool on 127.x.y.z loopback addresses.
@Suite(.serialized) struct SerfInteropTests {
    @Test(.enabled(if: SerfBinary.path != nil, "HashiCorp serf is not installed and `apt-get install serf` failed; serf interop not tested"))
    func mixedPoolWithRealSerf() async throws {
        let serf = try #require(SerfBinary.path)
        #expect(FileManager.default.isExecutableFile(atPath: NodeRunner.path), "build consul-sim first")
        // A subnet of 127/8 of our own, so parallel runs on this host do not collide.
        let subnet = "127.\(Int.random(in: 100...250)).\(Int.random(in: 1...250))"
        let key = GossipKey.generate().base64
        var processes: [ManagedProcess] = []
        defer { for process in processes { process.stop() } }

        func serfAgent(_ name: String, host: Int, join: Int?) throws -> ManagedProcess {
            var arguments = [
                "agent", "-node=\(name)", "-bind=\(subnet).\(host):7946", "-rpc-addr=\(subnet).\(host):7373",
                "-encrypt=\(key)", "-profile=lan", "-log-level=debug",
            ]
            if let join { arguments.append("-join=\(subnet).\(join):7946") }
            let process = try ManagedProcess(name: name, executable: serf, arguments: arguments)
            processes.append(process)
            return process
        }
        func ourNode(_ name: String, host: Int, join: Int, key: String) throws -> ManagedProcess {
            let process = try ManagedProcess(name: name, executable: NodeRunner.path, arguments: [
                "gossip-node", "--name", name, "--bind", "\(subnet).\(host):7946", "--join", "\(subnet).\(join):7946",
                "--encrypt", key, "--profile", "lan", "--exit-on-eof",
            ])
            processes.append(process)
            return process
        }
        func serfMembers(_ host: Int) -> [String: String] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: serf)
            process.arguments = ["members", "-rpc-addr=\(subnet).\(host):7373", "-format=json"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return [:] }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let members = json["members"] as? [[String: Any]] else { return [:] }
            var statuses: [String: String] = [:]
            for member in members {
                if let name = member["name"] as? String, let status = member["status"] as? String { statuses[name] = status }
            }
            return statuses
        }

        let s1 = try serfAgent("serf-1", host: 1, join: nil)
        #expect(await s1.waitFor("Serf agent running"))
        let s2 = try serfAgent("serf-2", host: 2, join: 1)
        #expect(await s2.waitFor("Serf agent running"))
        let ours1 = try ourNode("ours-1", host: 11, join: 1, key: key)
        #expect(await ours1.waitFor("joined 1"), "\(ours1.text)")
        let ours2 = try ourNode("ours-2", host: 12, join: 11, key: key)
        #expect(await ours2.waitFor("joined 1"), "\(ours2.text)")

        // Each side lists the other as alive.
        let everyone = ["serf-1", "serf-2", "ours-1", "ours-2"]
        #expect(await eventually { let members = serfMembers(1); return everyone.allSatisfy { members[$0] == "alive" } }, "\(serfMembers(1))")
        #expect(await eventually { let members = serfMembers(2); return everyone.allSatisfy { members[$0] == "alive" } })
        ours1.send("members")
        #expect(await ours1.waitFor("member serf-2 \(subnet).2:7946 alive"), "\(ours1.text)")
        #expect(await ours1.waitFor("member serf-1 \(subnet).1:7946 alive"))

        // A user event from serf reaches ours, and one from ours reaches serf.
        let fire = Process()
        fire.executableURL = URL(fileURLWithPath: serf)
        fire.arguments = ["event", "-rpc-addr=\(subnet).2:7373", "from-serf", "payload-1"]
        try fire.run()
        fire.waitUntilExit()
        #expect(await ours1.waitFor("user-event from-serf payload-1"), "\(ours1.text)")
        #expect(await ours2.waitFor("user-event from-serf payload-1"))
        ours2.send("event from-ours payload-2")
        #expect(await s1.waitFor("Received event: user-event: from-ours"))
        #expect(await s2.waitFor("Received event: user-event: from-ours"))

        // Killed abruptly (SIGKILL): serf marks it failed.
        ours2.signal(SIGKILL)
        #expect(await eventually { serfMembers(1)["ours-2"] == "failed" }, "\(serfMembers(1))")

        // Graceful leave: serf marks it left.
        ours1.send("leave")
        #expect(await ours1.waitFor("left"), "ours-1 did not finish its leave:\n\(ours1.text)\nserf-1 sees: \(serfMembers(1))")
        #expect(await eventually { serfMembers(1)["ours-1"] == "left" && serfMembers(2)["ours-1"] == "left" }, "\(serfMembers(1))")

        // A node of ours with another key is refused, and says why.
        let stranger = try ourNode("stranger", host: 13, join: 1, key: GossipKey.generate().base64)
        #expect(await stranger.waitFor("join-failed: Failed to join \(subnet).1: No installed keys could decrypt the message"), "\(stranger.text)")
        #expect(await eventually { stranger.exitCode == 1 })
        #expect(serfMembers(1)["stranger"] == nil)
    }
}
