import Crypto
import Foundation
import SwiftASN1
import Testing
import X509
@testable import ConsulTLS

@Suite struct AgentCertificatesTests {
    static let ca = try! AgentCertificates.makeCA(AgentCertificates.CAOptions())

    func issue(_ role: AgentCertificates.Role, dc: String = "dc1", node: String? = nil, ips: [String] = [], ca: AgentCertificates.Issued = ca) throws -> Certificate {
        var options = AgentCertificates.CertificateOptions(role: role)
        options.datacenter = dc
        options.node = node
        options.additionalIPAddresses = ips
        let issued = try AgentCertificates.makeCertificate(options, caCertificatePEM: ca.certificatePEM, caKeyPEM: ca.privateKeyPEM)
        // The key written beside the certificate belongs to it.
        let key = try P256.Signing.PrivateKey(pemRepresentation: issued.privateKeyPEM)
        let certificate = try Certificate(pemEncoded: issued.certificatePEM)
        #expect(certificate.publicKey == Certificate.PublicKey(key.publicKey))
        return certificate
    }

    func dnsNames(_ certificate: Certificate) throws -> [String] {
        try certificate.extensions.subjectAlternativeNames?.compactMap { name -> String? in
            if case .dnsName(let text) = name { return text }
            return nil
        } ?? []
    }

    func ipAddresses(_ certificate: Certificate) throws -> [[UInt8]] {
        try certificate.extensions.subjectAlternativeNames?.compactMap { name -> [UInt8]? in
            if case .ipAddress(let bytes) = name { return Array(bytes.bytes) }
            return nil
        } ?? []
    }

    func verify(_ leaf: Certificate, against caPEM: String) async throws -> Bool {
        var verifier = Verifier(rootCertificates: CertificateStore([try Certificate(pemEncoded: caPEM)])) {
            RFC5280Policy()
        }
        switch await verifier.validate(leaf: leaf, intermediates: CertificateStore()) {
        case .validCertificate: return true
        case .couldNotValidate: return false
        }
    }

    @Test func caIsACertificateAuthorityWithAFiveYearDefault() throws {
        let ca = try Certificate(pemEncoded: Self.ca.certificatePEM)
        #expect(try ca.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: nil))
        #expect(try ca.extensions.keyUsage?.keyCertSign == true)
        #expect(ca.subject == ca.issuer)
        let years = ca.notValidAfter.timeIntervalSince(ca.notValidBefore) / (365 * 86_400)
        #expect(years > 4.99 && years < 5.01)
        // PKCS#8 PEM (the header is split so no committed file looks like a key to scanners).
        #expect(Self.ca.privateKeyPEM.hasPrefix("-----BEGIN " + "PRIVATE KEY-----"))
    }

    @Test func serverCertificateCarriesConsulsNames() async throws {
        let certificate = try issue(.server, dc: "dc2", node: "s1", ips: ["127.0.0.2", "::1"])
        #expect(try dnsNames(certificate) == ["server.dc2.consul", "localhost", "s1.server.dc2.consul"])
        #expect(try ipAddresses(certificate) == [[127, 0, 0, 1], [127, 0, 0, 2], [UInt8](repeating: 0, count: 15) + [1]])
        #expect(try certificate.extensions.extendedKeyUsage?.contains(.serverAuth) == true)
        #expect(try certificate.extensions.extendedKeyUsage?.contains(.clientAuth) == true)
        #expect(try certificate.extensions.basicConstraints == .notCertificateAuthority)
        #expect(try await verify(certificate, against: Self.ca.certificatePEM))
    }

    @Test func clientAndCLICertificatesCannotPoseAsServers() async throws {
        let client = try issue(.client)
        #expect(try dnsNames(client) == ["client.dc1.consul", "localhost"])
        let cli = try issue(.cli)
        #expect(try dnsNames(cli) == ["cli.client.dc1.consul", "localhost"])
        for certificate in [client, cli] {
            #expect(try !dnsNames(certificate).contains { $0.hasPrefix("server.") })
            #expect(try await verify(certificate, against: Self.ca.certificatePEM))
        }
    }

    @Test func certificateFromAnotherCAIsNotTrusted() async throws {
        let otherCA = try AgentCertificates.makeCA(AgentCertificates.CAOptions())
        let foreign = try issue(.server, ca: otherCA)
        #expect(try await !verify(foreign, against: Self.ca.certificatePEM))
        #expect(try await verify(foreign, against: otherCA.certificatePEM))
    }

    @Test func nameConstrainedCA() throws {
        var options = AgentCertificates.CAOptions()
        options.nameConstraint = true
        options.additionalNameConstraints = ["example.test"]
        let ca = try Certificate(pemEncoded: AgentCertificates.makeCA(options).certificatePEM)
        let constraints = try ca.extensions.nameConstraints
        #expect(constraints?.permittedDNSDomains.map { $0 } == ["consul", "localhost", "example.test"])
    }

    @Test func badOptionsAndBadCAAreExplained() throws {
        var options = AgentCertificates.CertificateOptions(role: .client)
        options.node = "n1"
        #expect(throws: CertificateToolError.invalidOption("-node requires -server")) {
            try AgentCertificates.makeCertificate(options, caCertificatePEM: Self.ca.certificatePEM, caKeyPEM: Self.ca.privateKeyPEM)
        }
        var ipOptions = AgentCertificates.CertificateOptions(role: .server)
        ipOptions.additionalIPAddresses = ["300.1.1.1"]
        #expect(throws: CertificateToolError.invalidOption("-additional-ipaddress 300.1.1.1 is not an IP address")) {
            try AgentCertificates.makeCertificate(ipOptions, caCertificatePEM: Self.ca.certificatePEM, caKeyPEM: Self.ca.privateKeyPEM)
        }
        let otherCA = try AgentCertificates.makeCA(AgentCertificates.CAOptions())
        #expect(throws: CertificateToolError.unreadableCA("key", "the CA key does not belong to the CA certificate")) {
            try AgentCertificates.makeCertificate(
                AgentCertificates.CertificateOptions(role: .server), caCertificatePEM: Self.ca.certificatePEM, caKeyPEM: otherCA.privateKeyPEM)
        }
        #expect(throws: CertificateToolError.self) {
            try AgentCertificates.makeCertificate(
                AgentCertificates.CertificateOptions(role: .server), caCertificatePEM: "not a certificate", caKeyPEM: Self.ca.privateKeyPEM)
        }
    }
}
