import COpenSSL

/// Message digests the agent needs for names, not for security.
package enum Digests {
    /// MD5 as lowercase hex: Consul names the files of persisted services and checks
    /// (`data-dir/services/<md5(id)>`) this way.
    package static func md5Hex(_ bytes: [UInt8]) -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { input in
            EVP_Digest(input.baseAddress, input.count, &digest, &length, EVP_md5(), nil)
        }
        precondition(ok == 1, "OpenSSL's MD5 failed")
        return digest.prefix(Int(length)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
