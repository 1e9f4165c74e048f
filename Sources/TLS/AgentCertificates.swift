import Crypto
import Foundation
import SwiftASN1
import X509

/// The certificate authority and agent certificates that `consul tls ca create` and
/// `consul tls cert create` write, with the names Consul's TLS checks look for:
/// servers carry `server.<dc>.<domain>` (what `verify_server_hostname` demands), clients
/// `client.<dc>.<domain>`, the CLI `cli.client.<dc>.<domain>`; every certificate also names
/// `localhost` and 127.0.0.1 and allows both serverAuth and clientAuth, because agents use one
/// certificate in both directions. Keys are ECDSA P-256.
package enum AgentCertificates {
    package enum Role: String, Sendable {
        case server, client, cli
    }

    /// A certificate and its private key, both PEM-encoded (the key as PKCS#8).
    package struct Issued: Sendable {
        package let certificatePEM: String
        package let privateKeyPEM: String
    }

    package struct CAOptions: Sendable {
        package var domain = "consul"
        package var days = 1825
        package var nameConstraint = false
        package var additionalNameConstraints: [String] = []
        package var commonName: String?
        package init() {}
    }

    package struct CertificateOptions: Sendable {
        package var role: Role
        package var datacenter = "dc1"
        package var domain = "consul"
        package var node: String?
        package var days = 365
        package var additionalDNSNames: [String] = []
        package var additionalIPAddresses: [String] = []
        package init(role: Role) { self.role = role }
    }

    /// Certificates start a minute in the past so that a peer whose clock is slightly behind
    /// still accepts them at once.
    static let clockSkewAllowance: TimeInterval = 60

    package static func makeCA(_ options: CAOptions, now: Date = Date()) throws(CertificateToolError) -> Issued {
        guard options.days > 0 else { throw .invalidOption("-days must be a positive number of days") }
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let serial = Certificate.SerialNumber()
        let commonName = options.commonName ?? "Consul Agent CA \(serialDecimal(serial))"
        do {
            let name = try DistinguishedName { CommonName(commonName) }
            let keyIdentifier = SubjectKeyIdentifier(hash: publicKey)
            let certificate = try Certificate(
                version: .v3,
                serialNumber: serial,
                publicKey: publicKey,
                notValidBefore: now - clockSkewAllowance,
                notValidAfter: now + TimeInterval(options.days) * 86_400,
                issuer: name,
                subject: name,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                    Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                    keyIdentifier
                    AuthorityKeyIdentifier(keyIdentifier: keyIdentifier.keyIdentifier)
                    if options.nameConstraint {
                        Critical(NameConstraints(
                            permittedDNSDomains: [options.domain, "localhost"] + options.additionalNameConstraints))
                    }
                },
                issuerPrivateKey: Certificate.PrivateKey(key))
            return Issued(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation)
        } catch {
            throw .generation("creating the CA certificate", String(describing: error))
        }
    }

    /// Signs a new agent certificate with the CA whose PEM certificate and key are given.
    package static func makeCertificate(
        _ options: CertificateOptions, caCertificatePEM: String, caKeyPEM: String, now: Date = Date()
    ) throws(CertificateToolError) -> Issued {
        guard options.days > 0 else { throw .invalidOption("-days must be a positive number of days") }
        if options.node != nil && options.role != .server { throw .invalidOption("-node requires -server") }
        let caCertificate: Certificate
        let caKey: P256.Signing.PrivateKey
        do {
            caCertificate = try Certificate(pemEncoded: caCertificatePEM)
        } catch {
            throw .unreadableCA("certificate", String(describing: error))
        }
        do {
            caKey = try P256.Signing.PrivateKey(pemRepresentation: caKeyPEM)
        } catch {
            throw .unreadableCA("private key (an ECDSA P-256 key is expected)", String(describing: error))
        }
        guard caCertificate.publicKey == Certificate.PublicKey(caKey.publicKey) else {
            throw .unreadableCA("key", "the CA key does not belong to the CA certificate")
        }

        let commonName = commonName(for: options)
        var dnsNames = [commonName, "localhost"]
        if let node = options.node { dnsNames.append("\(node).server.\(options.datacenter).\(options.domain)") }
        dnsNames += options.additionalDNSNames
        var ipAddresses: [[UInt8]] = [[127, 0, 0, 1]]
        for text in options.additionalIPAddresses {
            guard let bytes = IPAddressBytes.parse(text) else { throw .invalidOption("-additional-ipaddress \(text) is not an IP address") }
            ipAddresses.append(bytes)
        }
        let subjectAlternativeNames = SubjectAlternativeNames(
            dnsNames.map { GeneralName.dnsName($0) } + ipAddresses.map { GeneralName.ipAddress(ASN1OctetString(contentBytes: $0[...])) })

        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        do {
            let authorityKey = try caCertificate.extensions.subjectKeyIdentifier?.keyIdentifier
                ?? SubjectKeyIdentifier(hash: caCertificate.publicKey).keyIdentifier
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: publicKey,
                notValidBefore: now - clockSkewAllowance,
                notValidAfter: now + TimeInterval(options.days) * 86_400,
                issuer: caCertificate.subject,
                subject: try DistinguishedName { CommonName(commonName) },
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                    try ExtendedKeyUsage([.serverAuth, .clientAuth])
                    SubjectKeyIdentifier(hash: publicKey)
                    AuthorityKeyIdentifier(keyIdentifier: authorityKey)
                    subjectAlternativeNames
                },
                issuerPrivateKey: Certificate.PrivateKey(caKey))
            return Issued(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation)
        } catch {
            throw .generation("signing the \(options.role.rawValue) certificate", String(describing: error))
        }
    }

    /// The name the certificate is for, which the other side's hostname check compares against.
    package static func commonName(for options: CertificateOptions) -> String {
        switch options.role {
        case .server: return "server.\(options.datacenter).\(options.domain)"
        case .client: return "client.\(options.datacenter).\(options.domain)"
        case .cli: return "cli.client.\(options.datacenter).\(options.domain)"
        }
    }

    private static func serialDecimal(_ serial: Certificate.SerialNumber) -> String {
        // Consul names its CA after the serial number; a decimal rendering of the low 8 bytes keeps
        // the name short while unique in practice.
        let tail = serial.bytes.suffix(8)
        let value = tail.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return String(value)
    }
}

package enum CertificateToolError: Error, Equatable, CustomStringConvertible {
    case invalidOption(String)
    case unreadableCA(String, String)
    case generation(String, String)

    package var description: String {
        switch self {
        case .invalidOption(let message): return message
        case .unreadableCA(let part, let reason): return "cannot use the CA \(part): \(reason)"
        case .generation(let step, let reason): return "failed \(step): \(reason)"
        }
    }
}

/// IPv4 and IPv6 text to the bytes an X.509 IP SAN holds, via the C library's `inet_pton`.
enum IPAddressBytes {
    static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}
