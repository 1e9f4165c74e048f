import ConsulCrypto
import ConsulTLS

/// `consul tls ca create` and `consul tls cert create`: a CA and agent certificates for TLS on the
/// RPC port and HTTPS, written to the current directory. Existing files are never overwritten.
enum TLSCommand {
    static let help = """
        Usage: consul tls <subcommand> <subcommand> [options]

          Builtin helpers for creating CAs and certificates:

            consul tls ca create
            consul tls cert create -server -dc dc1
            consul tls cert create -client -dc dc1
            consul tls cert create -cli -dc dc1

        """

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        run(arguments, io: io, directory: ".")
    }

    /// `directory` is where files are read and written (Consul uses the working directory).
    static func run(_ arguments: [String], io: CommandIO, directory: String) -> Int32 {
        switch Array(arguments.prefix(2)) {
        case ["ca", "create"]: return createCA(Array(arguments.dropFirst(2)), io: io, directory: directory)
        case ["cert", "create"]: return createCertificate(Array(arguments.dropFirst(2)), io: io, directory: directory)
        default:
            if arguments.first == "-h" || arguments.first == "--help" {
                io.err(help)
                return 0
            }
            io.err(help)
            return 1
        }
    }

    // MARK: ca create

    struct CAFlags {
        var domain: String? = nil
        var days: Int? = nil
        var nameConstraint = false
        var additionalNameConstraints: [String] = []
        var commonName: String? = nil
    }

    static var caFlagSet: FlagSet<CAFlags> {
        var f = FlagSet<CAFlags>(commandName: "tls ca create")
        f.string("domain", \.domain, usage: "Domain of Consul cluster. Only used in combination with -name-constraint. Defaults to consul.")
        f.int("days", \.days, usage: "Provide number of days the CA is valid for from now on. Defaults to 5 years.")
        f.bool("name-constraint", \.nameConstraint, usage: "Add name constraints for the CA: certificates for other DNS names than -domain, localhost and -additional-name-constraint are rejected by verifiers that honour them.")
        f.repeated("additional-name-constraint", \.additionalNameConstraints, usage: "Add name constraints for the CA. Can be used multiple times. Only used in combination with -name-constraint.")
        f.string("common-name", \.commonName, usage: "Common Name of CA. Defaults to Consul Agent CA.")
        return f
    }

    static func createCA(_ arguments: [String], io: CommandIO, directory: String) -> Int32 {
        var flags = CAFlags()
        switch parseFlags(caFlagSet, arguments, into: &flags, help: "Usage: consul tls ca create [options]\n\n  Create a new Consul CA.\n", io: io) {
        case .exit(let code): return code
        case .parsed(let rest) where !rest.isEmpty:
            io.errorLine("==> Unexpected arguments: \(rest.joined(separator: " "))")
            return 1
        case .parsed: break
        }
        var options = AgentCertificates.CAOptions()
        options.domain = flags.domain ?? options.domain
        options.days = flags.days ?? options.days
        options.nameConstraint = flags.nameConstraint
        options.additionalNameConstraints = flags.additionalNameConstraints
        options.commonName = flags.commonName
        let certificateFile = "\(options.domain)-agent-ca.pem"
        let keyFile = "\(options.domain)-agent-ca-key.pem"
        for file in [certificateFile, keyFile] where NewFile.exists(path(directory, file)) {
            io.errorLine("==> \(file) already exists; refusing to overwrite it. Move it away or run in another directory.")
            return 1
        }
        do {
            let issued = try AgentCertificates.makeCA(options)
            return save(issued, certificateFile: certificateFile, keyFile: keyFile, directory: directory, io: io)
        } catch {
            io.errorLine("==> \(error.description)")
            return 1
        }
    }

    // MARK: cert create

    struct CertificateFlags {
        var server = false
        var client = false
        var cli = false
        var datacenter: String? = nil
        var domain: String? = nil
        var node: String? = nil
        var days: Int? = nil
        var additionalDNSNames: [String] = []
        var additionalIPAddresses: [String] = []
        var caFile: String? = nil
        var keyFile: String? = nil
    }

    static var certificateFlagSet: FlagSet<CertificateFlags> {
        var f = FlagSet<CertificateFlags>(commandName: "tls cert create")
        f.bool("server", \.server, usage: "Generate server certificate.")
        f.bool("client", \.client, usage: "Generate client certificate.")
        f.bool("cli", \.cli, usage: "Generate cli certificate.")
        f.string("dc", \.datacenter, usage: "Provide the datacenter. Matters only for -server certificates. Defaults to dc1.")
        f.string("domain", \.domain, usage: "Provide the domain. Matters only for -server certificates. Defaults to consul.")
        f.string("node", \.node, usage: "When generating a server cert and this is set an additional dns name is included of the form <node>.server.<datacenter>.<domain>.")
        f.int("days", \.days, usage: "Provide number of days the certificate is valid for from now on. Defaults to 1 year.")
        f.repeated("additional-dnsname", \.additionalDNSNames, usage: "Provide an additional dnsname for Subject Alternative Names. localhost is always included. This flag may be provided multiple times.")
        f.repeated("additional-ipaddress", \.additionalIPAddresses, usage: "Provide an additional ipaddress for Subject Alternative Names. 127.0.0.1 is always included. This flag may be provided multiple times.")
        f.string("ca", \.caFile, usage: "Provide path to the ca. Defaults to <domain>-agent-ca.pem.")
        f.string("key", \.keyFile, usage: "Provide path to the key. Defaults to <domain>-agent-ca-key.pem.")
        return f
    }

    static func createCertificate(_ arguments: [String], io: CommandIO, directory: String) -> Int32 {
        var flags = CertificateFlags()
        switch parseFlags(certificateFlagSet, arguments, into: &flags, help: "Usage: consul tls cert create [options]\n\n  Create a new certificate signed by the Consul CA.\n", io: io) {
        case .exit(let code): return code
        case .parsed(let rest) where !rest.isEmpty:
            io.errorLine("==> Unexpected arguments: \(rest.joined(separator: " "))")
            return 1
        case .parsed: break
        }
        let requested: [(Bool, AgentCertificates.Role)] = [(flags.server, .server), (flags.client, .client), (flags.cli, .cli)]
        let roles = requested.filter(\.0).map(\.1)
        guard roles.count == 1, let role = roles.first else {
            io.errorLine("==> Please provide exactly one of -server, -client or -cli")
            return 1
        }
        var options = AgentCertificates.CertificateOptions(role: role)
        options.datacenter = flags.datacenter ?? options.datacenter
        options.domain = flags.domain ?? options.domain
        options.node = flags.node
        options.days = flags.days ?? options.days
        options.additionalDNSNames = flags.additionalDNSNames
        options.additionalIPAddresses = flags.additionalIPAddresses
        let caFile = flags.caFile ?? "\(options.domain)-agent-ca.pem"
        let caKeyFile = flags.keyFile ?? "\(options.domain)-agent-ca-key.pem"
        guard let caCertificate = NewFile.read(path(directory, caFile)) else {
            io.errorLine("==> Cannot read the CA certificate \(caFile): create one with 'consul tls ca create' or name it with -ca")
            return 1
        }
        guard let caKey = NewFile.read(path(directory, caKeyFile)) else {
            io.errorLine("==> Cannot read the CA key \(caKeyFile): name it with -key")
            return 1
        }
        // Numbered like Consul's: the first free <dc>-<role>-<domain>-<n>.pem.
        let prefix = "\(options.datacenter)-\(role.rawValue)-\(options.domain)"
        var serial = 0
        while NewFile.exists(path(directory, "\(prefix)-\(serial).pem")) || NewFile.exists(path(directory, "\(prefix)-\(serial)-key.pem")) {
            serial += 1
        }
        do {
            let issued = try AgentCertificates.makeCertificate(options, caCertificatePEM: caCertificate, caKeyPEM: caKey)
            if role == .server {
                io.line("""
                    ==> WARNING: a server certificate lets its holder act as a server: it can read all
                        cluster state, including keys and ACL tokens. Install it only on server nodes
                        and keep it as safe as the CA key.
                    """)
            }
            io.line("==> Using \(caFile) and \(caKeyFile)")
            return save(issued, certificateFile: "\(prefix)-\(serial).pem", keyFile: "\(prefix)-\(serial)-key.pem", directory: directory, io: io)
        } catch {
            io.errorLine("==> \(error.description)")
            return 1
        }
    }

    private static func save(
        _ issued: AgentCertificates.Issued, certificateFile: String, keyFile: String, directory: String, io: CommandIO
    ) -> Int32 {
        do {
            try NewFile.create(path(directory, certificateFile), contents: issued.certificatePEM + "\n", mode: 0o644)
            io.line("==> Saved \(certificateFile)")
            // The key is readable by its owner only.
            try NewFile.create(path(directory, keyFile), contents: issued.privateKeyPEM + "\n", mode: 0o600)
            io.line("==> Saved \(keyFile)")
            return 0
        } catch {
            io.errorLine("==> \(error.description)")
            return 1
        }
    }

    /// Relative names resolve against `directory`; absolute ones (from -ca / -key) stand as given.
    private static func path(_ directory: String, _ file: String) -> String {
        file.hasPrefix("/") || directory == "." ? file : directory + "/" + file
    }
}
