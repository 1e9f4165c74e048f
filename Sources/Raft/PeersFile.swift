import ConsulCore

/// `raft/peers.json`, the file an operator writes for outage recovery (Consul's Raft protocol 3
/// format): a JSON array with one object per server that is to form the cluster,
///
///     [{"id": "<node-id>", "address": "10.0.1.8:8300", "non_voter": false}, ...]
///
/// On start, a server that finds it replaces its cluster configuration with the one listed (see
/// `RaftNode`), then deletes the file. As Go's decoder does for Consul, unknown members are
/// ignored and `non_voter` may be left out (a voter).
package enum PeersFile {
    package static let fileName = "peers.json"
    /// A recovery file is a few hundred bytes; anything near this is not one.
    package static let maxBytes = 1 << 20
    /// More servers than the configuration encoding takes.
    package static let maxServers = WALRecord.maxServers

    /// Why a peers file was refused; `description` names the file first.
    package struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        package var path: String
        package var problem: String

        package var description: String { "\(path): \(problem)" }
    }

    /// Reads the configuration `bytes` describe; `path` is used in errors only.
    package static func parse(_ bytes: [UInt8], path: String) throws(ParseError) -> ClusterConfiguration {
        func fail(_ problem: String) -> ParseError { ParseError(path: path, problem: problem) }
        guard bytes.count <= maxBytes else { throw fail("\(bytes.count) bytes, more than the limit of \(maxBytes)") }
        let document: ConfigValue
        do {
            document = try JSONConfigParser.parseValue(bytes: bytes, file: path)
        } catch {
            throw ParseError(path: path, problem: "invalid JSON at \(error.position): \(error.problem)")
        }
        guard case .array(let elements) = document else {
            throw fail("expected a JSON array of {\"id\", \"address\", \"non_voter\"} objects, found \(document.kindDescription)")
        }
        guard elements.count <= maxServers else { throw fail("\(elements.count) servers, more than the limit of \(maxServers)") }
        var servers: [ServerEntry] = []
        var addresses: Set<String> = []
        for (position, element) in elements.enumerated() {
            let item = "server \(position + 1)"
            guard case .object(let object) = element else {
                if case .string = element {
                    throw fail("\(item) is a bare address: that is the Raft protocol 2 format, which is not supported; write {\"id\": \"<node-id>\", \"address\": \"<ip>:<port>\", \"non_voter\": false}")
                }
                throw fail("\(item) is \(element.kindDescription), expected an object")
            }
            guard case .string(let id)? = object["id"], !id.isEmpty else {
                throw fail("\(item) has no \"id\" (a non-empty string: the server's node ID)")
            }
            guard case .string(let address)? = object["address"], !address.isEmpty else {
                throw fail("\(item) (\(id)) has no \"address\" (a non-empty \"host:port\" string)")
            }
            guard splitHostPort(address) != nil else {
                throw fail("\(item) (\(id)) has address \"\(address)\", expected \"host:port\"")
            }
            var suffrage = Suffrage.voter
            switch object["non_voter"] {
            case nil, .null?: break
            case .bool(let nonVoter)?: suffrage = nonVoter ? .nonvoter : .voter
            case let other?: throw fail("\(item) (\(id)) has \"non_voter\" \(other.kindDescription), expected true or false")
            }
            if servers.contains(where: { $0.id.rawValue == id }) { throw fail("id \(id) is listed twice") }
            guard addresses.insert(address).inserted else { throw fail("address \(address) is listed twice") }
            servers.append(ServerEntry(id: ServerID(id), suffrage: suffrage, address: address))
        }
        let configuration = ClusterConfiguration(servers: servers)
        guard !configuration.voters.isEmpty else { throw fail("no voter listed: a cluster needs at least one") }
        return configuration
    }
}
