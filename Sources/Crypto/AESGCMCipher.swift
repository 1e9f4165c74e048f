import COpenSSL
import Synchronization

/// AES-GCM under one fixed key, through OpenSSL's EVP interface.
///
/// The key schedule is computed once: each message only sets its nonce on a pre-keyed context, which
/// is what keeps per-packet cost near `openssl speed` (see bench/crypto). The two contexts are not
/// thread-safe in OpenSSL, so they sit behind a mutex; gossip seals from one event loop, so it is
/// uncontended in practice.
// @unchecked: the two OpenSSL contexts are only touched while `lock` is held.
final class AESGCMCipher: @unchecked Sendable {
    static let nonceSize = 12
    static let tagSize = 16

    private let sealContext: OpaquePointer
    private let openContext: OpaquePointer
    private let lock = Mutex<Void>(())

    /// `key` must be 16, 24 or 32 bytes (callers validate through `GossipKey`).
    init(key: [UInt8]) throws(OpenSSLError) {
        let cipher: OpaquePointer?
        switch key.count {
        case 16: cipher = EVP_aes_128_gcm()
        case 24: cipher = EVP_aes_192_gcm()
        case 32: cipher = EVP_aes_256_gcm()
        default: throw OpenSSLError(operation: "AES-GCM key setup", detail: "unsupported key length \(key.count)")
        }
        guard let cipher, let sealContext = EVP_CIPHER_CTX_new() else {
            throw OpenSSLError.capture("EVP_CIPHER_CTX_new")
        }
        guard let openContext = EVP_CIPHER_CTX_new() else {
            EVP_CIPHER_CTX_free(sealContext)
            throw OpenSSLError.capture("EVP_CIPHER_CTX_new")
        }
        let ready = key.withUnsafeBufferPointer { keyBytes -> Bool in
            EVP_EncryptInit_ex(sealContext, cipher, nil, nil, nil) == 1
                && EVP_CIPHER_CTX_ctrl(sealContext, EVP_CTRL_GCM_SET_IVLEN, Int32(Self.nonceSize), nil) == 1
                && EVP_EncryptInit_ex(sealContext, nil, nil, keyBytes.baseAddress, nil) == 1
                && EVP_DecryptInit_ex(openContext, cipher, nil, nil, nil) == 1
                && EVP_CIPHER_CTX_ctrl(openContext, EVP_CTRL_GCM_SET_IVLEN, Int32(Self.nonceSize), nil) == 1
                && EVP_DecryptInit_ex(openContext, nil, nil, keyBytes.baseAddress, nil) == 1
        }
        guard ready else {
            EVP_CIPHER_CTX_free(sealContext)
            EVP_CIPHER_CTX_free(openContext)
            throw OpenSSLError.capture("AES-GCM key setup")
        }
        self.sealContext = sealContext
        self.openContext = openContext
    }

    deinit {
        EVP_CIPHER_CTX_free(sealContext)
        EVP_CIPHER_CTX_free(openContext)
    }

    /// Encrypts `plaintext` into `ciphertext` (same length) and writes the 16-byte tag into `tag`.
    func seal(
        nonce: UnsafeRawBufferPointer,
        plaintext: UnsafeRawBufferPointer,
        additionalData: UnsafeRawBufferPointer,
        ciphertext: UnsafeMutableRawBufferPointer,
        tag: UnsafeMutableRawBufferPointer
    ) throws(OpenSSLError) {
        precondition(nonce.count == Self.nonceSize && tag.count == Self.tagSize && ciphertext.count == plaintext.count)
        let ok = lock.withLock { _ -> Bool in
            let context = sealContext
            var written: Int32 = 0
            guard EVP_EncryptInit_ex(context, nil, nil, nil, bytes(nonce)) == 1 else { return false }
            if additionalData.count > 0 {
                guard EVP_EncryptUpdate(context, nil, &written, bytes(additionalData), Int32(additionalData.count)) == 1
                else { return false }
            }
            if plaintext.count > 0 {
                guard EVP_EncryptUpdate(context, mutableBytes(ciphertext), &written, bytes(plaintext), Int32(plaintext.count)) == 1
                else { return false }
            }
            // GCM is a stream mode: Final emits no bytes, it only completes the tag.
            guard finish(context, EVP_EncryptFinal_ex) else { return false }
            return EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, Int32(Self.tagSize), tag.baseAddress) == 1
        }
        if !ok { throw OpenSSLError.capture("AES-GCM seal") }
    }

    /// Decrypts and authenticates. Returns false when the tag does not verify (wrong key or any
    /// modified bit); `plaintext` then holds garbage the caller must discard.
    func open(
        nonce: UnsafeRawBufferPointer,
        ciphertext: UnsafeRawBufferPointer,
        tag: UnsafeRawBufferPointer,
        additionalData: UnsafeRawBufferPointer,
        plaintext: UnsafeMutableRawBufferPointer
    ) -> Bool {
        precondition(nonce.count == Self.nonceSize && tag.count == Self.tagSize && ciphertext.count == plaintext.count)
        return lock.withLock { _ -> Bool in
            let context = openContext
            var written: Int32 = 0
            guard EVP_DecryptInit_ex(context, nil, nil, nil, bytes(nonce)) == 1 else { return false }
            if additionalData.count > 0 {
                guard EVP_DecryptUpdate(context, nil, &written, bytes(additionalData), Int32(additionalData.count)) == 1
                else { return false }
            }
            if ciphertext.count > 0 {
                guard EVP_DecryptUpdate(context, mutableBytes(plaintext), &written, bytes(ciphertext), Int32(ciphertext.count)) == 1
                else { return false }
            }
            // OpenSSL only reads the expected tag; the pointer is not written through.
            guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, Int32(Self.tagSize), UnsafeMutableRawPointer(mutating: tag.baseAddress)) == 1
            else { return false }
            let verified = finish(context, EVP_DecryptFinal_ex)
            // A failed verification leaves nothing worth reporting in the error queue; clear it so
            // it cannot be mistaken for the cause of a later failure.
            if !verified { ERR_clear_error() }
            return verified
        }
    }
}

/// Runs an EVP `Final` step. GCM writes no bytes there, but OpenSSL still wants an output buffer.
private func finish(
    _ context: OpaquePointer,
    _ final: (OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<Int32>?) -> Int32
) -> Bool {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { scratch in
        var written: Int32 = 0
        return final(context, scratch.baseAddress, &written) == 1
    }
}

private func bytes(_ buffer: UnsafeRawBufferPointer) -> UnsafePointer<UInt8>? {
    buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
}

private func mutableBytes(_ buffer: UnsafeMutableRawBufferPointer) -> UnsafeMutablePointer<UInt8>? {
    buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
}
