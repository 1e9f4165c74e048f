import COpenSSL

/// Cryptographically secure random bytes from OpenSSL's `RAND_bytes` (seeded by the kernel).
///
/// Used for gossip keys and AES-GCM nonces. Never use `ConsulCore.SeededRandom` for these: it is
/// deterministic by design.
public enum SecureRandom {
    /// `count` fresh random bytes. A failing system CSPRNG is not recoverable: continuing would
    /// hand out predictable keys or repeat nonces, so it stops the process with the reason.
    public static func bytes(_ count: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: count)
        fill(&output)
        return output
    }

    public static func fill(_ buffer: inout [UInt8]) {
        guard !buffer.isEmpty else { return }
        let status = buffer.withUnsafeMutableBytes { raw in
            RAND_bytes(raw.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(raw.count))
        }
        if status != 1 {
            fatalError("\(OpenSSLError.capture("RAND_bytes")): refusing to continue without secure randomness")
        }
    }

    /// Fills raw memory in place (the nonce slot of an outgoing message).
    static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        if RAND_bytes(base.assumingMemoryBound(to: UInt8.self), Int32(buffer.count)) != 1 {
            fatalError("\(OpenSSLError.capture("RAND_bytes")): refusing to continue without secure randomness")
        }
    }
}
