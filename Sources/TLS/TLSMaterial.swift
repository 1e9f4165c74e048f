import Foundation
import NIOSSL
import X509

/// The files one TLS stanza names (Consul's `ca_file`, `ca_path`, `cert_file`, `key_file`).
package struct TLSFiles: Sendable, Equatable {
    package var caFile: String?
    package var caPath: String?
    package var certFile: String?
    package var keyFile: String?

    package init(caFile: String? = nil, caPath: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.caPath = caPath
        self.certFile = certFile
        self.keyFile = keyFile
    }
}

/// A certificate, key or CA file that cannot be used; the message names the file and the key
/// that pointed at it, so the operator knows which line of which config to fix.
package struct TLSMaterialError: Error, Sendable, Equatable, CustomStringConvertible {
    package var description: String

    package init(_ description: String) { self.description = description }
}

/// The certificates and key of one TLS stanza, read and checked once when the agent starts (the
/// only time these files are read, so no event loop ever waits on a disk).
package struct TLSMaterial: Sendable {
    /// The agent's own certificate first, then any intermediates from the same file.
    package let certificateChain: [NIOSSLCertificate]
    package let privateKey: NIOSSLPrivateKey?
    /// The CAs peers' certificates must chain to: `ca_file`, then every file of `ca_path`.
    package let authorities: [NIOSSLCertificate]
    /// The same CAs read by swift-certificates, to explain a rejected certificate in words.
    let authorityCertificates: [Certificate]
    package let files: TLSFiles

    package var hasCertificate: Bool { !certificateChain.isEmpty && privateKey != nil }
    package var hasAuthorities: Bool { !authorities.isEmpty }

    /// Reads the files `files` names; any that is missing, unreadable or not what it should be
    /// fails the whole load with a message naming it.
    package static func load(_ files: TLSFiles) throws(TLSMaterialError) -> TLSMaterial {
        var authorities: [NIOSSLCertificate] = []
        if let caFile = files.caFile {
            authorities += try certificates(in: caFile, key: "ca_file")
        }
        if let caPath = files.caPath {
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: caPath).sorted()
            } catch {
                throw TLSMaterialError("ca_path \(caPath): cannot list the directory: \(reason(error))")
            }
            for name in names where name.hasSuffix(".pem") || name.hasSuffix(".crt") {
                authorities += try certificates(in: caPath + "/" + name, key: "ca_path")
            }
            if authorities.isEmpty { throw TLSMaterialError("ca_path \(caPath): no .pem or .crt certificate in the directory") }
        }
        var chain: [NIOSSLCertificate] = []
        var key: NIOSSLPrivateKey?
        if let certFile = files.certFile {
            chain = try certificates(in: certFile, key: "cert_file")
        }
        if let keyFile = files.keyFile {
            let bytes = try read(keyFile, key: "key_file")
            do {
                key = try NIOSSLPrivateKey(bytes: bytes, format: .pem)
            } catch {
                throw TLSMaterialError("key_file \(keyFile): not a PEM private key (\(error))")
            }
            // A key that does not belong to the certificate would only show up as a failed handshake
            // with every peer; say so at start instead.
            if let certFile = files.certFile, let leaf = chain.first,
               let certificate = try? Certificate(derEncoded: leaf.toDERBytes()),
               let parsedKey = try? Certificate.PrivateKey(pemEncoded: String(decoding: bytes, as: UTF8.self)),
               parsedKey.publicKey != certificate.publicKey
            {
                throw TLSMaterialError("key_file \(keyFile) does not belong to the certificate in cert_file \(certFile)")
            }
        }
        let parsedAuthorities = authorities.compactMap { try? Certificate(derEncoded: $0.toDERBytes()) }
        return TLSMaterial(certificateChain: chain, privateKey: key, authorities: authorities, authorityCertificates: parsedAuthorities, files: files)
    }

    private static func read(_ path: String, key: String) throws(TLSMaterialError) -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw TLSMaterialError("\(key) \(path): no such file") }
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw TLSMaterialError("\(key) \(path): cannot read the file: \(reason(error))")
        }
    }

    private static func certificates(in path: String, key: String) throws(TLSMaterialError) -> [NIOSSLCertificate] {
        let bytes = try read(path, key: key)
        let found: [NIOSSLCertificate]
        do {
            found = try NIOSSLCertificate.fromPEMBytes(bytes)
        } catch {
            throw TLSMaterialError("\(key) \(path): not a PEM certificate (\(error))")
        }
        guard !found.isEmpty else { throw TLSMaterialError("\(key) \(path): no PEM certificate in the file") }
        return found
    }

    private static func reason(_ error: any Error) -> String {
        (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
    }

    // MARK: - NIOSSL configurations

    /// For a listener: our certificate; with `requireClientCertificate`, a client must present one
    /// that chains to our CAs (Consul's `verify_incoming`), otherwise none is asked for.
    package func serverConfiguration(requireClientCertificate: Bool, minimumVersion: TLSVersion) throws(TLSMaterialError) -> TLSConfiguration {
        guard let privateKey, !certificateChain.isEmpty else {
            throw TLSMaterialError("a TLS listener needs cert_file and key_file")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificateChain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = minimumVersion
        if requireClientCertificate {
            guard hasAuthorities else { throw TLSMaterialError("verify_incoming needs ca_file or ca_path") }
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(authorities)
        } else {
            configuration.certificateVerification = .none
        }
        return configuration
    }

    /// For outgoing connections: our certificate if we have one (servers that verify incoming
    /// connections ask for it), the peer's checked against our CAs when `verify`, and its name
    /// too when `verifyHostname` (the name is given per connection).
    package func clientConfiguration(verify: Bool, verifyHostname: Bool, minimumVersion: TLSVersion) throws(TLSMaterialError) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = minimumVersion
        if let privateKey, !certificateChain.isEmpty {
            configuration.certificateChain = certificateChain.map { .certificate($0) }
            configuration.privateKey = .privateKey(privateKey)
        }
        if verify {
            guard hasAuthorities else { throw TLSMaterialError("verify_outgoing needs ca_file or ca_path") }
            configuration.trustRoots = .certificates(authorities)
            configuration.certificateVerification = verifyHostname ? .fullVerification : .noHostnameVerification
        } else {
            configuration.certificateVerification = .none
        }
        return configuration
    }

    // MARK: - Explaining a rejected certificate

    /// Why a certificate a peer presented did not verify against our CAs, in the words an operator
    /// looks for: expired, not yet valid, or signed by a CA we do not trust. BoringSSL only says
    /// "certificate verify failed"; this looks at the certificate itself (it verifies nothing: the
    /// TLS library already decided).
    package func explainRejection(of peer: NIOSSLCertificate?, now: Date = Date()) -> String {
        guard let peer else { return "the peer presented no certificate" }
        guard let certificate = try? Certificate(derEncoded: peer.toDERBytes()) else {
            return "the peer's certificate cannot be parsed"
        }
        let subject = certificate.subject.description
        if now > certificate.notValidAfter {
            return "certificate has expired (\(subject), not valid after \(certificate.notValidAfter))"
        }
        if now < certificate.notValidBefore {
            return "certificate is not yet valid (\(subject), not valid before \(certificate.notValidBefore))"
        }
        let signedByOurs = authorityCertificates.contains { authority in
            authority.subject == certificate.issuer && authority.publicKey.isValidSignature(certificate.signature, for: certificate)
        }
        if !signedByOurs {
            return "certificate signed by unknown authority (\(subject), issuer \(certificate.issuer))"
        }
        return "certificate verify failed (\(subject))"
    }

    /// The DNS names a certificate is for (its subject alternative names), to compare with
    /// `server.<dc>.<domain>`.
    package static func dnsNames(of certificate: NIOSSLCertificate) -> [String] {
        guard let parsed = try? Certificate(derEncoded: certificate.toDERBytes()),
              let names = try? parsed.extensions.subjectAlternativeNames
        else { return [] }
        return names.compactMap { name in
            if case .dnsName(let dns) = name { return dns }
            return nil
        }
    }
}

extension TLSVersion {
    /// Consul's `tls_min_version` names (`TLSv1_2`, and the older `tls12`); nil for others.
    package init?(consulName: String) {
        switch consulName {
        case "TLSv1_0", "tls10": self = .tlsv1
        case "TLSv1_1", "tls11": self = .tlsv11
        case "TLSv1_2", "tls12": self = .tlsv12
        case "TLSv1_3", "tls13": self = .tlsv13
        default: return nil
        }
    }
}
