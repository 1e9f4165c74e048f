import Dispatch
import Foundation
import Synchronization

/// Runs an agent in this process until a signal ends it, printing Consul's banner and log lines.
enum AgentProcess {
    /// `reload`: loads the configuration again (SIGHUP, `consul reload`); nil: the agent cannot reload.
    static func run(
        _ loaded: LoadedAgentConfig, io: CommandIO,
        reload: (@Sendable () throws(AgentConfigError) -> LoadedAgentConfig)? = nil
    ) -> Int32 {
        let config = loaded.config
        let logger = AgentLogger(level: AgentLogger.Level(config.logLevel) ?? .info, json: config.logJSON, write: io.out)
        let result = Mutex<Result<Agent, Agent.StartFailure>?>(nil)
        let started = DispatchSemaphore(value: 0)
        io.line("==> Starting Consul agent...")
        Task {
            do throws(Agent.StartFailure) {
                let agent = try await Agent.start(config: config, logger: logger)
                result.withLock { $0 = .success(agent) }
            } catch {
                result.withLock { $0 = .failure(error) }
            }
            started.signal()
        }
        started.wait()
        let agent: Agent
        switch result.withLock({ $0 })! {
        case .failure(let failure):
            io.errorLine("==> \(failure.description)")
            return 1
        case .success(let running):
            agent = running
        }
        io.out(banner(agent.runtime))

        if let reload {
            agent.runtime.onReload { await Self.reload(agent, load: reload) }
        }
        let stop = DispatchSemaphore(value: 0)
        let signalName = Mutex<String?>(nil)
        var sources: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGINT, "interrupt"), (SIGTERM, "terminated"), (SIGHUP, "hangup")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                io.line("==> Caught signal: \(name)")
                if number == SIGHUP {
                    Task {
                        if case let problem?? = await agent.runtime.requestReload() {
                            io.errorLine("==> Failed to reload configs: \(problem)")
                        } else {
                            io.line("==> Reload complete")
                        }
                    }
                    return
                }
                let first = signalName.withLock { current -> Bool in
                    defer { current = current ?? name }
                    return current == nil
                }
                if first { stop.signal() } else { exit(1) }
            }
            source.resume()
            sources.append(source)
        }
        agent.runtime.onLeave {
            let first = signalName.withLock { current -> Bool in
                defer { current = current ?? "leave" }
                return current == nil
            }
            if first {
                agent.logger.info("agent", "graceful leave requested over the HTTP API")
                stop.signal()
            }
        }
        stop.wait()
        // Consul: `consul leave` always leaves; SIGINT leaves unless skip_leave_on_interrupt
        // (the default for servers); SIGTERM leaves only with leave_on_terminate (clients' default).
        let leave: Bool
        switch signalName.withLock({ $0 }) {
        case "interrupt": leave = !config.effectiveSkipLeaveOnInterrupt
        case "terminated": leave = config.effectiveLeaveOnTerminate
        default: leave = true
        }
        io.line(leave ? "==> Gracefully shutting down agent..." : "==> Shutting down agent without leaving the cluster...")
        let finished = DispatchSemaphore(value: 0)
        Task {
            await agent.shutdown(leave: leave)
            finished.signal()
        }
        finished.wait()
        io.line("==> Consul agent stopped")
        _ = sources
        return 0
    }

    /// Consul's reload: loads the config files again (here, off any event loop) and applies what
    /// Consul lets a reload change (`Agent.reload(to:)`). A configuration that does not load or
    /// validate changes nothing; its problem is logged and returned.
    static func reload(_ agent: Agent, load: @Sendable () throws(AgentConfigError) -> LoadedAgentConfig) async -> String? {
        agent.logger.info("agent", "Reloading configuration...")
        do {
            let loaded = try load()
            try agent.reload(to: loaded.config)
            return nil
        } catch let error as AgentConfigError {
            agent.logger.error("agent", "Failed to reload configs", ["error": error.description])
            return error.description
        } catch {
            agent.logger.error("agent", "Failed to reload configs", ["error": "\(error)"])
            return "\(error)"
        }
    }

    /// The `Key: value` block of Consul's start-up banner. (Configuration warnings were printed
    /// once already, before the agent started, as Consul does.)
    static func banner(_ runtime: AgentRuntime) -> String {
        let config = runtime.config
        let tls = config.tls.effectiveHTTPS
        let rpc = config.tls.effectiveInternalRPC
        func line(_ key: String, _ value: String) -> String {
            String(repeating: " ", count: max(0, 22 - key.count)) + key + ": " + value + "\n"
        }
        var text = ""
        text += line("Version", "'\(ConsulVersion.humanVersion)'")
        text += line("Build Date", "'unknown'")
        text += line("Node ID", "'\(runtime.nodeID)'")
        text += line("Node name", "'\(runtime.nodeName)'")
        text += line("Datacenter", "'\(config.datacenter)' (Segment: '\(config.server ? "<all>" : "")')")
        text += line("Server", "\(config.server) (Bootstrap: \(config.bootstrap))")
        text += line("Client Addr", "[\(config.clientAddrs.joined(separator: " "))] (HTTP: \(config.ports.http), HTTPS: \(config.ports.https), gRPC: -1, gRPC-TLS: -1, DNS: \(config.ports.dns))")
        text += line("Cluster Addr", "\(runtime.advertiseAddress) (LAN: \(config.ports.serfLAN), WAN: \(config.ports.serfWAN))")
        text += line("Gossip Encryption", String(runtime.lan?.encrypted ?? (config.encrypt != nil)))
        text += line("Auto-Encrypt-TLS", "false")
        text += line("ACL Enabled", String(config.acl.enabled))
        text += line("ACL Default Policy", config.acl.defaultPolicy)
        text += line("HTTPS TLS", "Verify Incoming: \(tls.verifyIncoming ?? false), Verify Outgoing: \(tls.verifyOutgoing ?? false), Min Version: \(tls.tlsMinVersion ?? "TLSv1_2")")
        text += line("Internal RPC TLS", "Verify Incoming: \(rpc.verifyIncoming ?? false), Verify Outgoing: \(rpc.verifyOutgoing ?? false) (Verify Hostname: \(rpc.verifyServerHostname ?? false)), Min Version: \(rpc.tlsMinVersion ?? "TLSv1_2")")
        text += "\n==> Log data will now stream in as it occurs:\n\n"
        return text
    }
}
