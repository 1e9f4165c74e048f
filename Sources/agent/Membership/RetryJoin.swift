import ConsulCore

/// `-retry-join`: keeps trying the given addresses every `retry_interval` until one answers (or
/// `retry_max` attempts, 0 meaning no limit, have failed), as Consul's agent does at start.
struct RetryJoin: Sendable {
    let lan: LANPool
    let config: AgentConfig
    let logger: AgentLogger

    func run() async {
        let addresses = config.retryJoin
        guard !addresses.isEmpty else { return }
        logger.info("agent", "Joining cluster...", ["cluster": "LAN"])
        var attempt = 0
        while !Task.isCancelled {
            attempt += 1
            do throws(LANPool.JoinFailure) {
                let joined = try await lan.join(addresses, defaultPort: config.ports.serfLAN)
                logger.info("agent", "Join cluster completed. Synced with initial agents", ["cluster": "LAN", "num_agents": String(joined)])
                return
            } catch {
                if config.retryMax > 0, attempt >= config.retryMax {
                    logger.error("agent", "Join cluster failed, giving up after \(attempt) attempts", ["cluster": "LAN", "error": error.description])
                    return
                }
                logger.warn("agent", "Join cluster failed, will retry", [
                    "cluster": "LAN", "retry_interval": GoDuration.format(config.retryInterval), "error": error.description,
                ])
            }
            try? await Task.sleep(for: config.retryInterval)
        }
    }
}
