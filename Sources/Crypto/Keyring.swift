/// The gossip keyring: installed keys in order, the first one primary.
///
/// Memberlist's rules, which Consul operators rely on during key rotation: the primary key encrypts
/// everything sent; every installed key is tried on receive, so nodes that have installed a new key
/// but not yet switched to it still understand each other. The wire format is in `GossipEnvelope`.
public struct Keyring: Sendable, Equatable {
    /// Installed keys, primary first.
    public private(set) var keys: [GossipKey]

    public init(primary: GossipKey, secondary: [GossipKey] = []) {
        keys = [primary]
        for key in secondary where !keys.contains(key) { keys.append(key) }
    }

    /// A keyring from a list as stored in `serf/local.keyring` (primary first).
    public init(keys: [GossipKey]) throws(KeyringError) {
        guard let first = keys.first else { throw .empty }
        self.init(primary: first, secondary: Array(keys.dropFirst()))
    }

    public var primaryKey: GossipKey { keys[0] }

    /// Adds a key that can decrypt but does not yet encrypt. Installing a key twice changes nothing.
    public mutating func install(_ key: GossipKey) {
        if !keys.contains(key) { keys.append(key) }
    }

    /// Makes an installed key the primary one.
    public mutating func use(_ key: GossipKey) throws(KeyringError) {
        guard let index = keys.firstIndex(of: key) else { throw .keyNotInstalled }
        keys.remove(at: index)
        keys.insert(key, at: 0)
    }

    /// Removes a secondary key. The primary cannot be removed: that would leave this node unable
    /// to send anything the others can read. Removing a key that is not installed changes nothing.
    public mutating func remove(_ key: GossipKey) throws(KeyringError) {
        if key == primaryKey { throw .removingPrimary }
        keys.removeAll { $0 == key }
    }

    /// Base64 of every key, primary first: the keyring file's and `keyring -list`'s view.
    public var base64Keys: [String] { keys.map(\.base64) }
}

public enum KeyringError: Error, Equatable, CustomStringConvertible {
    case empty
    case keyNotInstalled
    case removingPrimary

    public var description: String {
        switch self {
        case .empty: return "the keyring has no keys"
        case .keyNotInstalled: return "Requested key is not in the keyring"
        case .removingPrimary: return "Removing the primary key is not allowed"
        }
    }
}
