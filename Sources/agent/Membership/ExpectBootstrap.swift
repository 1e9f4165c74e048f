import Gossip
import Raft

/// `-bootstrap-expect N`: no election until N servers of this datacenter are seen through gossip;
/// then every one of them writes the same first configuration (all N as voters), so whichever is
/// elected first, their logs agree. Pure: the caller checks that no server has a Raft log yet.
enum ExpectBootstrap {
    enum Decision: Equatable {
        /// Fewer servers than expected so far.
        case wait(seen: Int)
        /// Servers disagree on the expected count, or one runs with `-bootstrap`: Consul refuses.
        case refuse(String)
        case bootstrap(ClusterConfiguration)
    }

    static func decide(members: [SerfMemberInfo], expect: Int, datacenter: String) -> Decision {
        var servers: [KnownServer] = []
        for member in members where member.status == .alive {
            guard let server = LANPool.server(member), server.datacenter == datacenter else { continue }
            if member.tags["bootstrap"] == "1" {
                return .refuse("Member \(member.name) has bootstrap mode. Expect disabled.")
            }
            if let theirs = member.tags["expect"].flatMap(Int.init), theirs != expect {
                return .refuse("Member \(member.name) has a conflicting expect value. All nodes should expect the same number.")
            }
            servers.append(server)
        }
        guard servers.count >= expect else { return .wait(seen: servers.count) }
        return .bootstrap(ClusterConfiguration(servers: servers.map { ServerEntry(id: ServerID($0.id), suffrage: .voter, address: $0.rpcAddress) }))
    }
}
