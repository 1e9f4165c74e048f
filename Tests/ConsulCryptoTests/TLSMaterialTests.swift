import Foundation
import NIOSSL
import Testing
@testable import ConsulTLS

/// Loading the files a TLS stanza names, and the words for a certificate a peer was refused with.
@Suite struct TLSMaterialTests {
    static let ca = try! AgentCertificates.makeCA(AgentCertificates.CAOptions())
    static let otherCA = try! AgentCertificates.makeCA(AgentCertificates.CAOptions())

    static func issue(_ role: AgentCertificates.Role, ca: AgentCertificates.Issued = ca, now: Date = Date()) throws -> AgentCertificates.Issued {
        var options = AgentCertificates.CertificateOptions(role: role)
        options.days = 1
        return try AgentCertificates.makeCertificate(options, caCertificatePEM: ca.certificatePEM, caKeyPEM: ca.privateKeyPEM, now: now)
    }

    /// Writes the files into a fresh directory and returns their paths.
    static func files(_ contents: [String: String]) throws -> [String: String] {
        let dir = NSTemporaryDirectory() + "tls-material-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var paths: [String: String] = [:]
        for (name, text) in contents {
            paths[name] = dir + "/" + name
            try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        }
        return paths
    }

    @Test func loadsACertificateKeyAndCA() throws {
        let server = try Self.issue(.server)
        let paths = try Self.files(["ca.pem": Self.ca.certificatePEM, "cert.pem": server.certificatePEM, "key.pem": server.privateKeyPEM])
        let material = try TLSMaterial.load(TLSFiles(caFile: paths["ca.pem"], certFile: paths["cert.pem"], keyFile: paths["key.pem"]))
        #expect(material.hasCertificate && material.hasAuthorities)
        #expect(TLSMaterial.dnsNames(of: material.certificateChain[0]) == ["server.dc1.consul", "localhost"])
        // Both directions make usable contexts.
        _ = try NIOSSLContext(configuration: material.serverConfiguration(requireClientCertificate: true, minimumVersion: .tlsv12))
        _ = try NIOSSLContext(configuration: material.clientConfiguration(verify: true, verifyHostname: false, minimumVersion: .tlsv13))
    }

    @Test func unusableFilesAreNamed() throws {
        let server = try Self.issue(.server), client = try Self.issue(.client)
        let paths = try Self.files(["junk.pem": "junk\n", "cert.pem": server.certificatePEM, "other-key.pem": client.privateKeyPEM])
        let cases: [(TLSFiles, String)] = [
            (TLSFiles(caFile: "/nonexistent/ca.pem"), "ca_file /nonexistent/ca.pem: no such file"),
            (TLSFiles(caFile: paths["junk.pem"]), "ca_file \(paths["junk.pem"]!): "),
            (TLSFiles(certFile: paths["junk.pem"], keyFile: paths["other-key.pem"]), "cert_file \(paths["junk.pem"]!): "),
            (TLSFiles(certFile: paths["cert.pem"], keyFile: paths["junk.pem"]), "key_file \(paths["junk.pem"]!): not a PEM private key"),
            (TLSFiles(certFile: paths["cert.pem"], keyFile: paths["other-key.pem"]), "key_file \(paths["other-key.pem"]!) does not belong to the certificate"),
            (TLSFiles(caPath: "/nonexistent-dir"), "ca_path /nonexistent-dir: cannot list the directory"),
        ]
        for (files, expected) in cases {
            #expect(throws: TLSMaterialError.self) { _ = try TLSMaterial.load(files) }
            do {
                _ = try TLSMaterial.load(files)
            } catch {
                #expect(error.description.hasPrefix(expected), "\(error.description)")
            }
        }
    }

    @Test func explainsExpiredUnknownAndMissingCertificates() throws {
        let paths = try Self.files(["ca.pem": Self.ca.certificatePEM])
        let material = try TLSMaterial.load(TLSFiles(caFile: paths["ca.pem"]))
        func certificate(_ issued: AgentCertificates.Issued) throws -> NIOSSLCertificate {
            try NIOSSLCertificate(bytes: Array(issued.certificatePEM.utf8), format: .pem)
        }
        let expired = try certificate(Self.issue(.client, now: Date().addingTimeInterval(-10 * 86_400)))
        #expect(material.explainRejection(of: expired).hasPrefix("certificate has expired (CN=client.dc1.consul"))
        let foreign = try certificate(Self.issue(.client, ca: Self.otherCA))
        #expect(material.explainRejection(of: foreign).hasPrefix("certificate signed by unknown authority (CN=client.dc1.consul"))
        let future = try certificate(Self.issue(.client, now: Date().addingTimeInterval(10 * 86_400)))
        #expect(material.explainRejection(of: future).hasPrefix("certificate is not yet valid"))
        #expect(material.explainRejection(of: nil) == "the peer presented no certificate")
    }

    @Test func consulVersionNames() {
        #expect(TLSVersion(consulName: "TLSv1_2") == .tlsv12)
        #expect(TLSVersion(consulName: "tls13") == .tlsv13)
        #expect(TLSVersion(consulName: "ssl3") == nil)
    }
}
