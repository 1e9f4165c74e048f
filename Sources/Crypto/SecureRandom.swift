import COpenSSL
import Synchronization

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
}

/// Random AES-GCM nonces drawn from OpenSSL in bulk.
///
/// A `RAND_bytes` call costs about a microsecond in OpenSSL 3 whatever its size (locking and
/// reseed checks), more than sealing a gossip packet itself; drawing 4 KiB at a time brings a nonce
/// down to a few nanoseconds. The nonces stay fully random (as memberlist's are), and a buffered
/// nonce is no secret: it is sent in the clear with its message.
// @unchecked: `buffer` and `offset` are only touched while `lock` is held.
final class NoncePool: @unchecked Sendable {
    static let shared = NoncePool()
    static let refillSize = 4092  // 341 nonces of 12 bytes

    private let lock = Mutex<Void>(())
    private var buffer = [UInt8](repeating: 0, count: NoncePool.refillSize)
    private var offset = NoncePool.refillSize

    /// Fills `nonce` (12 bytes for GCM) with fresh random bytes never handed out before.
    func fill(_ nonce: UnsafeMutableRawBufferPointer) {
        precondition(nonce.count <= Self.refillSize)
        lock.withLock { _ in
            if offset + nonce.count > buffer.count {
                SecureRandom.fill(&buffer)
                offset = 0
            }
            buffer.withUnsafeBytes { source in
                nonce.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + nonce.count)]))
            }
            offset += nonce.count
        }
    }
}
