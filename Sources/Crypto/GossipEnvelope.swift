/// Memberlist's encryption envelope, byte for byte:
///
///     [version: 1 byte][nonce: 12 bytes][ciphertext][GCM tag: 16 bytes]
///
/// Version 1 (what serf and Consul send) encrypts the message as is; version 0, from memberlist
/// protocol 1, PKCS#7-pads it to a 16-byte multiple first. Both are read. The additional
/// authenticated data is empty for UDP packets and is the 5-byte `[10][length u32 BE]` stream
/// header for TCP, so a stream header cannot be altered without detection.
public enum GossipEnvelope {
    public enum Version: UInt8, Sendable {
        case padded = 0
        case unpadded = 1
    }

    public static let headerSize = 1 + AESGCMCipher.nonceSize
    public static let tagSize = AESGCMCipher.tagSize
    static let paddingBlockSize = 16

    /// Bytes the envelope adds to a plaintext of `length` bytes: 29 for version 1.
    public static func overhead(version: Version = .unpadded, plaintextLength length: Int) -> Int {
        let padding = version == .padded ? paddingBlockSize - length % paddingBlockSize : 0
        return headerSize + padding + tagSize
    }
}

/// Why a received envelope was rejected. Messages follow memberlist's, which operators search for.
public enum GossipDecryptError: Error, Equatable, CustomStringConvertible {
    case emptyPayload
    case unsupportedVersion(UInt8)
    case payloadTooSmall(Int)
    case noKeyCouldDecrypt
    case badPadding

    public var description: String {
        switch self {
        case .emptyPayload: return "Cannot decrypt empty payload"
        case .unsupportedVersion(let version): return "Unsupported encryption version \(version)"
        case .payloadTooSmall(let size): return "Payload is too small to decrypt: \(size)"
        case .noKeyCouldDecrypt: return "No installed keys could decrypt the message"
        case .badPadding: return "Decrypted payload has invalid PKCS7 padding"
        }
    }
}

extension Keyring {
    /// Seals `plaintext` with the primary key and a fresh random nonce.
    public func encrypt(
        _ plaintext: [UInt8],
        additionalData: [UInt8] = [],
        version: GossipEnvelope.Version = .unpadded
    ) -> [UInt8] {
        encrypt(plaintext, additionalData: additionalData, version: version, nonce: nil)
    }

    /// `nonce` is for known-answer tests only; nil draws one from OpenSSL.
    package func encrypt(
        _ plaintext: [UInt8],
        additionalData: [UInt8],
        version: GossipEnvelope.Version,
        nonce: [UInt8]?
    ) -> [UInt8] {
        var body = plaintext
        if version == .padded {
            let padding = GossipEnvelope.paddingBlockSize - plaintext.count % GossipEnvelope.paddingBlockSize
            body.append(contentsOf: repeatElement(UInt8(padding), count: padding))
        }
        let total = GossipEnvelope.headerSize + body.count + GossipEnvelope.tagSize
        var output = [UInt8](repeating: 0, count: total)
        output.withUnsafeMutableBytes { out in
            out[0] = version.rawValue
            let nonceSlot = UnsafeMutableRawBufferPointer(rebasing: out[1..<GossipEnvelope.headerSize])
            if let nonce {
                precondition(nonce.count == AESGCMCipher.nonceSize, "a GCM nonce is 12 bytes")
                nonce.withUnsafeBytes { nonceSlot.copyMemory(from: $0) }
            } else {
                NoncePool.shared.fill(nonceSlot)
            }
            let ciphertext = UnsafeMutableRawBufferPointer(rebasing: out[GossipEnvelope.headerSize..<(total - GossipEnvelope.tagSize)])
            let tag = UnsafeMutableRawBufferPointer(rebasing: out[(total - GossipEnvelope.tagSize)...])
            body.withUnsafeBytes { plain in
                additionalData.withUnsafeBytes { aad in
                    do {
                        try primaryKey.cipher.seal(
                            nonce: UnsafeRawBufferPointer(nonceSlot), plaintext: plain,
                            additionalData: aad, ciphertext: ciphertext, tag: tag)
                    } catch {
                        // Sealing with a prepared key only fails if OpenSSL itself is broken; sending
                        // plaintext or a half-sealed packet instead would be worse than stopping.
                        fatalError("gossip encryption failed: \(error)")
                    }
                }
            }
        }
        return output
    }

    /// Opens an envelope, trying every installed key in order (primary first).
    public func decrypt(_ message: [UInt8], additionalData: [UInt8] = []) throws(GossipDecryptError) -> [UInt8] {
        guard let first = message.first else { throw .emptyPayload }
        guard let version = GossipEnvelope.Version(rawValue: first) else { throw .unsupportedVersion(first) }
        let minimum = GossipEnvelope.overhead(version: version, plaintextLength: 0)
        // Version 0 always carries at least one padding byte; a shorter body cannot be valid.
        guard message.count >= (version == .padded ? minimum : GossipEnvelope.headerSize + GossipEnvelope.tagSize) else {
            throw .payloadTooSmall(message.count)
        }
        let bodyLength = message.count - GossipEnvelope.headerSize - GossipEnvelope.tagSize
        var plaintext = [UInt8](repeating: 0, count: bodyLength)
        let opened = message.withUnsafeBytes { raw -> Bool in
            let nonce = UnsafeRawBufferPointer(rebasing: raw[1..<GossipEnvelope.headerSize])
            let ciphertext = UnsafeRawBufferPointer(rebasing: raw[GossipEnvelope.headerSize..<(message.count - GossipEnvelope.tagSize)])
            let tag = UnsafeRawBufferPointer(rebasing: raw[(message.count - GossipEnvelope.tagSize)...])
            return additionalData.withUnsafeBytes { aad in
                plaintext.withUnsafeMutableBytes { plain in
                    keys.contains { key in
                        key.cipher.open(nonce: nonce, ciphertext: ciphertext, tag: tag, additionalData: aad, plaintext: plain)
                    }
                }
            }
        }
        guard opened else { throw .noKeyCouldDecrypt }
        if version == .padded {
            // The version byte is outside the AEAD in memberlist's format, so a version-1 message
            // relabelled as 0 still authenticates. A genuine version-0 body is always a whole number
            // of blocks with consistent padding; checking both rejects relabelled messages (and a
            // broken sender's, on which memberlist's own decoder would slice out of range).
            guard plaintext.count % GossipEnvelope.paddingBlockSize == 0,
                  let padding = plaintext.last, padding >= 1, Int(padding) <= GossipEnvelope.paddingBlockSize,
                  Int(padding) <= plaintext.count,
                  plaintext.suffix(Int(padding)).allSatisfy({ $0 == padding })
            else { throw .badPadding }
            plaintext.removeLast(Int(padding))
        }
        return plaintext
    }
}
