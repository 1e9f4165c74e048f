import ConsulCore
import ConsulCrypto
import Foundation
import NIOCore
import NIOPosix
import Raft

/// A running agent: the state store and Raft (servers), the HTTP API, and the background duties
/// that keep the cluster view and the catalog's record of this node current.
final class Agent: Sendable {
    let runtime: AgentRuntime
    let logger: AgentLogger
    private let group: MultiThreadedEventLoopGroup
    private let httpServers: [HTTPServer]
    private let dnsServer: DNSServer?
    private let background: Task<Void, Never>
    /// A `-dev` agent keeps its Raft data here and removes it on shutdown (Consul's dev mode is in memory).
    private let temporaryDirectory: String?

    private init(
        runtime: AgentRuntime, logger: AgentLogger, group: MultiThreadedEventLoopGroup, httpServers: [HTTPServer], dnsServer: DNSServer?,
        background: Task<Void, Never>, temporaryDirectory: String?
    ) {
        self.dnsServer = dnsServer
        self.runtime = runtime
        self.logger = logger
        self.group = group
        self.httpServers = httpServers
        self.background = background
        self.temporaryDirectory = temporaryDirectory
    }

    struct StartFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// Everything the banner reports, known once the agent is up.
    var httpPorts: [Int] { httpServers.compactMap(\.port) }

    static func start(config: AgentConfig, logger: AgentLogger) async throws(StartFailure) -> Agent {
        let address: String
        do {
            address = try AddressResolver.advertiseAddress(config)
        } catch {
            throw StartFailure(description: "\(error)")
        }

        var temporaryDirectory: String?
        let dataPath: String
        if config.dev {
            let path = NSTemporaryDirectory() + "consul-dev-" + UUID().uuidString.lowercased()
            temporaryDirectory = path
            dataPath = path
        } else if let configured = config.dataDir {
            dataPath = configured
        } else {
            throw StartFailure(description: "data_dir cannot be empty")
        }
        do throws(StartFailure) {
            return try await start(config: config, logger: logger, address: address, dataPath: dataPath, temporaryDirectory: temporaryDirectory)
        } catch {
            if let temporaryDirectory { try? FileManager.default.removeItem(atPath: temporaryDirectory) }
            throw error
        }
    }

    private static func start(
        config: AgentConfig, logger: AgentLogger, address: String, dataPath: String, temporaryDirectory: String?
    ) async throws(StartFailure) -> Agent {
        let nodeID: String
        let dataDir: AgentDataDir
        do {
            dataDir = try AgentDataDir(path: dataPath)
            nodeID = try dataDir.nodeID(configured: config.nodeID)
            if config.server { try dataDir.prepareRaftDirectory() }
        } catch {
            throw StartFailure(description: error.description)
        }
        let nodeName = config.nodeName ?? ProcessInfo.processInfo.hostName

        let clock = SystemMonotonicClock()
        let machine = ConsulStateMachine(datacenter: config.datacenter)
        // Raft's copy of the machine publishes into this same watch.
        let watch = machine.watch
        var raft: RaftNode<ConsulStateMachine>?
        if config.server {
            let me = ServerID(nodeID)
            // A lone bootstrapping server (or -dev) writes the first configuration itself; with
            // -bootstrap-expect the configuration comes from the servers gossip finds.
            let bootstrap = (config.bootstrap || config.bootstrapExpect == 1) ? ClusterConfiguration(voters: [me]) : nil
            var options = RaftOptions()
            if config.dev {
                options.electionTimeout = .milliseconds(50)
                options.heartbeatInterval = .milliseconds(10)
            }
            do {
                raft = try RaftNode(
                    id: me, directory: dataDir.raftDirectory, machine: machine, transport: SingleServerTransport(), clock: clock,
                    random: SeededRandom(seed: Self.randomSeed()), options: options, bootstrap: bootstrap)
            } catch {
                throw StartFailure(description: "Failed to start Raft in \(dataDir.raftDirectory): \(error)")
            }
        }
        if !config.server {
            logger.warn("agent", "this build has no gossip yet: a client agent cannot find servers and will answer 500 \"No known Consul servers\"")
        } else if config.bootstrapExpect > 1 {
            logger.warn("agent", "this build has no gossip yet: waiting for \(config.bootstrapExpect) servers cannot succeed")
        }

        let runtime = AgentRuntime(
            config: config, nodeName: nodeName, nodeID: nodeID, advertiseAddress: address, watch: watch,
            raft: raft, clock: clock)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(System.coreCount, 4)))
        let dispatcher = APIDispatcher(agent: runtime, seed: randomSeed())
        var servers: [HTTPServer] = []
        do {
            if config.ports.http > 0 {
                for host in config.clientAddrs {
                    servers.append(try await HTTPServer.start(host: host, port: config.ports.http, dispatcher: dispatcher, group: group))
                }
            }
        } catch {
            for server in servers { await server.close() }
            try? await group.shutdownGracefully()
            throw StartFailure(description: "Error starting HTTP listener on \(config.clientAddrs.joined(separator: " ")):\(config.ports.http): \(error)")
        }
        var dnsServer: DNSServer?
        if config.ports.dns > 0 {
            do {
                dnsServer = try await DNSServer.start(
                    configuration: DNSServerConfiguration(config: config), group: group, catalog: { watch.current }, seed: randomSeed())
            } catch {
                for server in servers { await server.close() }
                try? await group.shutdownGracefully()
                throw StartFailure(description: "Error starting DNS server: \(error)")
            }
        }

        await raft?.start()
        let duties = LeaderDuties(runtime: runtime, logger: logger)
        let background = Task { await duties.run() }
        return Agent(
            runtime: runtime, logger: logger, group: group, httpServers: servers, dnsServer: dnsServer, background: background,
            temporaryDirectory: temporaryDirectory)
    }

    func shutdown() async {
        background.cancel()
        for server in httpServers { await server.close() }
        await dnsServer?.stop()
        await runtime.raft?.stop()
        try? await group.shutdownGracefully()
        if let temporaryDirectory { try? FileManager.default.removeItem(atPath: temporaryDirectory) }
    }

    static func randomSeed() -> UInt64 {
        SecureRandom.bytes(8).reduce(0) { $0 << 8 | UInt64($1) }
    }
}
