import Foundation
import Testing
@testable import ConsulAgent

@Suite struct TLSCommandTests {
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "consul-tls-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func run(_ arguments: [String], in directory: String) -> (code: Int32, out: String, err: String) {
        let captured = CapturedIO()
        let code = TLSCommand.run(arguments, io: captured.io, directory: directory)
        return (code, captured.out, captured.err)
    }

    func files(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    @Test func createsCAAndNumberedCertificatesWithoutOverwriting() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let ca = run(["ca", "create"], in: directory)
        #expect(ca.code == 0)
        #expect(ca.out == "==> Saved consul-agent-ca.pem\n==> Saved consul-agent-ca-key.pem\n")
        let caBefore = try String(contentsOfFile: directory + "/consul-agent-ca.pem", encoding: .utf8)

        let again = run(["ca", "create"], in: directory)
        #expect(again.code == 1)
        #expect(again.err.contains("consul-agent-ca.pem already exists"))
        #expect(try String(contentsOfFile: directory + "/consul-agent-ca.pem", encoding: .utf8) == caBefore)

        #expect(run(["cert", "create", "-server", "-dc", "dc1"], in: directory).code == 0)
        let second = run(["cert", "create", "-server", "-dc=dc1"], in: directory)
        #expect(second.code == 0)
        #expect(second.out.contains("==> Saved dc1-server-consul-1.pem"))
        #expect(second.out.contains("WARNING"))
        #expect(run(["cert", "create", "-client"], in: directory).code == 0)
        #expect(run(["cert", "create", "-cli", "-dc", "dc2"], in: directory).code == 0)
        #expect(try files(in: directory) == [
            "consul-agent-ca-key.pem", "consul-agent-ca.pem",
            "dc1-client-consul-0-key.pem", "dc1-client-consul-0.pem",
            "dc1-server-consul-0-key.pem", "dc1-server-consul-0.pem",
            "dc1-server-consul-1-key.pem", "dc1-server-consul-1.pem",
            "dc2-cli-consul-0-key.pem", "dc2-cli-consul-0.pem",
        ])
        let keyMode = try FileManager.default.attributesOfItem(atPath: directory + "/dc1-server-consul-0-key.pem")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
    }

    @Test func certificateCreationExplainsWhatIsMissing() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let noCA = run(["cert", "create", "-server"], in: directory)
        #expect(noCA.code == 1)
        #expect(noCA.err.contains("consul tls ca create"))
        _ = run(["ca", "create"], in: directory)
        let noRole = run(["cert", "create"], in: directory)
        #expect(noRole.code == 1)
        #expect(noRole.err.contains("-server, -client or -cli"))
        let twoRoles = run(["cert", "create", "-server", "-client"], in: directory)
        #expect(twoRoles.code == 1)
        #expect(run(["cert", "create", "-client", "-node", "n1"], in: directory).err.contains("-node requires -server"))
        #expect(run(["bogus"], in: directory).code == 1)
        #expect(try files(in: directory) == ["consul-agent-ca-key.pem", "consul-agent-ca.pem"])
    }

    /// The files are what OpenSSL itself accepts: `openssl verify` walks the chain and checks the
    /// purposes we claim.
    @Test func opensslVerifiesTheChain() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = run(["ca", "create"], in: directory)
        _ = run(["cert", "create", "-server", "-dc", "dc2"], in: directory)
        for purpose in ["sslserver", "sslclient"] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["openssl", "verify", "-purpose", purpose, "-CAfile", directory + "/consul-agent-ca.pem", directory + "/dc2-server-consul-0.pem"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            process.waitUntilExit()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus == 0, "openssl verify -purpose \(purpose): \(output)")
        }
    }
}
