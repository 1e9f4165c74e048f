import Synchronization

/// A Consul server this agent knows of, as its LAN gossip tags describe it.
struct KnownServer: Sendable, Hashable {
    /// Gossip node name.
    var name: String
    /// Node ID (the Raft server ID).
    var id: String
    var datacenter: String
    /// Where its server port (RPC and Raft, 8300) listens: "ip:port".
    var rpcAddress: String
}

/// The servers of this datacenter that gossip reports alive. Gossip writes it; the RPC forwarder
/// (clients pick a server from it) and leader duties read it. Reads never wait on gossip.
final class ServerDirectory: Sendable {
    private let servers = Mutex<[KnownServer]>([])

    var current: [KnownServer] { servers.withLock { $0 } }

    func replace(with servers: [KnownServer]) {
        let sorted = servers.sorted { $0.name < $1.name }
        self.servers.withLock { $0 = sorted }
    }
}
