#if canImport(Glibc)
import Glibc
#endif

/// Host-name lookups through the system resolver, for the rare places an operator may give a
/// name instead of an address (`consul join`, `retry_join`). It blocks: call it from a task,
/// never from an event loop.
enum HostNames {
    static func ipv4Addresses(of host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(list) }
        var result: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ai_next }
            guard let octets = ipv4Octets(entry.pointee.ai_addr) else { continue }
            let text = octets.map(String.init).joined(separator: ".")
            if !result.contains(text) { result.append(text) }
        }
        return result
    }

    /// The four bytes of an IPv4 socket address; nil for any other family.
    static func ipv4Octets(_ address: UnsafeMutablePointer<sockaddr>?) -> [UInt8]? {
        guard let address, address.pointee.sa_family == sa_family_t(AF_INET) else { return nil }
        return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
            withUnsafeBytes(of: pointer.pointee.sin_addr.s_addr) { Array($0) }
        }
    }
}
