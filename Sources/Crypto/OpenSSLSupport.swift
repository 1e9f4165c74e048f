import COpenSSL

/// Failures of the OpenSSL library itself (not of the data it was given).
public struct OpenSSLError: Error, CustomStringConvertible, Equatable {
    public let operation: String
    public let detail: String

    /// Captures and clears OpenSSL's thread-local error queue so the next call starts clean.
    static func capture(_ operation: String) -> OpenSSLError {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return OpenSSLError(operation: operation, detail: messages.isEmpty ? "no OpenSSL error recorded" : messages.joined(separator: "; "))
    }

    public var description: String { "OpenSSL \(operation) failed: \(detail)" }
}

/// The OpenSSL version this binary runs against, for `consul version` and the agent's stats.
public enum OpenSSLLibrary {
    public static var version: String {
        guard let text = OpenSSL_version(OPENSSL_VERSION) else { return "unknown" }
        return String(cString: text)
    }
}
