#if canImport(Glibc)
import Glibc
#endif

/// Consul's rule for the address an agent advertises: `advertise_addr` if set, else the bind
/// address, and for the "any" address the single private IPv4 of the host (an error if there are
/// none or several, asking the operator to choose).
enum AddressResolver {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func advertiseAddress(_ config: AgentConfig) throws(Failure) -> String {
        if let advertise = config.advertiseAddr, !advertise.isEmpty { return advertise }
        guard config.bindAddressNeedsResolution else { return config.bindAddr }
        let candidates = privateIPv4Addresses()
        switch candidates.count {
        case 1: return candidates[0]
        case 0: throw Failure(description: "No private IPv4 address found. Please configure one with 'bind' and/or 'advertise'.")
        default: throw Failure(description: "Multiple private IPv4 addresses found. Please configure one with 'bind' and/or 'advertise'.")
        }
    }

    /// RFC 1918 and RFC 6598 addresses of the host's interfaces, as Consul's go-sockaddr picks them.
    static func privateIPv4Addresses() -> [String] {
        var result: [String] = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let octets = HostNames.ipv4Octets(entry.pointee.ifa_addr) else { continue }
            let isPrivate = octets[0] == 10 || (octets[0] == 172 && (16...31).contains(octets[1])) || (octets[0] == 192 && octets[1] == 168)
                || (octets[0] == 100 && (64...127).contains(octets[1]))
            if isPrivate {
                let text = octets.map(String.init).joined(separator: ".")
                if !result.contains(text) { result.append(text) }
            }
        }
        return result
    }
}
