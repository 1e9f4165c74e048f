import ConsulCore

/// One gossip encryption key: 16, 24 or 32 raw bytes (AES-128, -192 or -256), written as base64.
///
/// This is what `consul keygen` prints and what `encrypt`, `keyring -install` and the keyring files
/// carry. The AES key schedule is prepared when the key is created, so encrypting with it later
/// cannot fail on a bad length.
public struct GossipKey: Sendable, Hashable, CustomStringConvertible {
    public static let allowedSizes = [16, 24, 32]
    /// The size `consul keygen` produces (AES-256).
    public static let generatedSize = 32

    public let bytes: [UInt8]
    let cipher: AESGCMCipher

    /// Parses a base64 key as operators paste it (surrounding whitespace is ignored).
    public init(base64 text: String) throws(GossipKeyError) {
        let trimmed = text.trimmingASCIIWhitespace()
        guard !trimmed.isEmpty else { throw .empty }
        guard let decoded = Base64.decode(trimmed) else { throw .notBase64 }
        try self.init(bytes: decoded)
    }

    public init(bytes: [UInt8]) throws(GossipKeyError) {
        guard Self.allowedSizes.contains(bytes.count) else { throw .wrongSize(bytes.count) }
        self.bytes = bytes
        do {
            cipher = try AESGCMCipher(key: bytes)
        } catch {
            throw .openSSL(error)
        }
    }

    /// A fresh random key of `generatedSize` bytes from OpenSSL's CSPRNG.
    public static func generate() -> GossipKey {
        // 32 bytes is an allowed size and cipher setup only fails if OpenSSL itself is broken.
        do {
            return try GossipKey(bytes: SecureRandom.bytes(generatedSize))
        } catch {
            fatalError("cannot set up AES-256-GCM with OpenSSL: \(error)")
        }
    }

    public var base64: String { Base64.encode(bytes) }

    /// "AES-256" etc., for log lines that say which cipher is in use.
    public var algorithm: String { "AES-\(bytes.count * 8)-GCM" }

    public var description: String { base64 }

    public static func == (lhs: GossipKey, rhs: GossipKey) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}

public enum GossipKeyError: Error, Equatable, CustomStringConvertible {
    case empty
    case notBase64
    case wrongSize(Int)
    case openSSL(OpenSSLError)

    public var description: String {
        switch self {
        case .empty:
            return "gossip encryption key is empty; generate one with 'consul keygen'"
        case .notBase64:
            return "gossip encryption key is not valid base64; generate one with 'consul keygen'"
        case .wrongSize(let size):
            return "gossip encryption key must be 16, 24 or 32 bytes once base64-decoded (AES-128/192/256), got \(size) bytes"
        case .openSSL(let error):
            return "cannot use gossip encryption key: \(error)"
        }
    }
}

extension String {
    func trimmingASCIIWhitespace() -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return self[first...last]
    }
}
