@testable import ConsulAgent
import ConsulCrypto
import ConsulTLS
import Foundation
import NIOCore
import NIOPosix
import Testing

/// Certificates for one test, made the way operators make them: `consul tls ca create` and
/// `consul tls cert create` in a temporary directory; an expired certificate, which the CLI
/// cannot make (`-days` must be positive), through the library with a start date in the past.
final class TestPKI: @unchecked Sendable {
    let dir: String

    init(additionalServerIP: String? = nil) throws {
        dir = NSTemporaryDirectory() + "consul-tls-" + UUID().uuidString.lowercased()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var serverArguments = "-server -dc dc1"
        if let additionalServerIP { serverArguments += " -additional-ipaddress \(additionalServerIP)" }
        for command in ["ca create", "cert create \(serverArguments)", "cert create -client -dc dc1", "cert create -cli -dc dc1"] {
            let (code, output) = try AgentProcessHarness.run("/bin/sh", ["-c", "cd '\(dir)' && '\(AgentProcessHarness.consulPath)' tls \(command) 2>&1"])
            guard code == 0 else { throw HarnessError("consul tls \(command) failed: \(output)") }
        }
    }

    var ca: String { dir + "/consul-agent-ca.pem" }
    var serverCert: String { dir + "/dc1-server-consul-0.pem" }
    var serverKey: String { dir + "/dc1-server-consul-0-key.pem" }
    var clientCert: String { dir + "/dc1-client-consul-0.pem" }
    var clientKey: String { dir + "/dc1-client-consul-0-key.pem" }
    var cliCert: String { dir + "/dc1-cli-consul-0.pem" }
    var cliKey: String { dir + "/dc1-cli-consul-0-key.pem" }

    /// A client certificate signed by our CA whose validity ended ten days ago.
    func expiredClientCertificate() throws -> (cert: String, key: String) {
        let caPEM = try String(contentsOfFile: ca, encoding: .utf8)
        let caKeyPEM = try String(contentsOfFile: dir + "/consul-agent-ca-key.pem", encoding: .utf8)
        var options = AgentCertificates.CertificateOptions(role: .client)
        options.days = 1
        let issued = try AgentCertificates.makeCertificate(options, caCertificatePEM: caPEM, caKeyPEM: caKeyPEM, now: Date().addingTimeInterval(-11 * 86_400))
        return try write(issued, name: "expired")
    }

    private func write(_ issued: AgentCertificates.Issued, name: String) throws -> (cert: String, key: String) {
        let cert = dir + "/\(name).pem", key = dir + "/\(name)-key.pem"
        try issued.certificatePEM.write(toFile: cert, atomically: true, encoding: .utf8)
        try issued.privateKeyPEM.write(toFile: key, atomically: true, encoding: .utf8)
        return (cert, key)
    }

    /// The `tls` block of an agent: defaults with verify_incoming/outgoing, internal_rpc with
    /// verify_server_hostname. `cert` nil: no certificate of its own.
    func agentHCL(cert: String?, key: String?, ca: String? = nil, verifyIncoming: Bool = true, extra: String = "") -> String {
        var defaults = "ca_file = \"\(ca ?? self.ca)\" verify_outgoing = true verify_incoming = \(verifyIncoming)"
        if let cert, let key { defaults += " cert_file = \"\(cert)\" key_file = \"\(key)\"" }
        return "tls { defaults { \(defaults) } internal_rpc { verify_server_hostname = true } \(extra) }"
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }
}

/// TLS on the wire with real `consul` processes on 127.0.0.121–139: a datacenter with
/// verify_incoming, verify_outgoing and verify_server_hostname; each way in that must be refused
/// (no certificate, another CA, a client certificate posing as a server, an expired certificate,
/// plaintext); HTTPS with the CLI and curl; certificate files that cannot be used.
@Suite(.serialized) struct TLSEndToEndTests {
    static func cli(_ arguments: [String], _ environment: [String: String] = [:]) -> (code: Int32, out: String, err: String) {
        let result = (try? AgentProcessHarness.cli(arguments, environment: environment)) ?? (-1, "", "cannot run consul")
        return (result.0, result.1, result.2)
    }

    static func log(_ cluster: LocalCluster, _ name: String) -> String {
        cluster.nodes[name]?.process?.log ?? ""
    }

    static func infoStat(_ cluster: LocalCluster, _ node: String, _ key: String) -> Int {
        let info = cli(["info"] + cluster.addr(node)).out
        guard let line = info.split(separator: "\n").first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(key + " = ") }) else { return -1 }
        return Int(line.split(separator: "=").last?.trimmingCharacters(in: .whitespaces) ?? "") ?? -1
    }

    @Test func aDatacenterWithFullVerificationWorksAndAClientCertificateCannotActAsServer() throws {
        let pki = try TestPKI()
        let cluster = try LocalCluster()
        let servers = ["s1": "127.0.0.121", "s2": "127.0.0.122", "s3": "127.0.0.123"]
        let serverTLS = pki.agentHCL(cert: pki.serverCert, key: pki.serverKey)
        for (name, host) in servers.sorted(by: { $0.key < $1.key }) {
            try cluster.start(name, host: host, server: true, extra: [
                "-bootstrap-expect", "3", "-retry-join", "127.0.0.121", "-retry-interval", "200ms", "-hcl", serverTLS])
        }
        try cluster.start("c1", host: "127.0.0.124", server: false, extra: [
            "-retry-join", "127.0.0.121", "-retry-interval", "200ms", "-hcl", pki.agentHCL(cert: pki.clientCert, key: pki.clientKey)])

        // Raft over TLS: a leader is elected.
        let elected = AgentProcessHarness.eventually(40) { servers.keys.allSatisfy { cluster.leader(asking: $0) != nil } }
        #expect(elected, "no leader:\n\(cluster.logs)")
        guard elected else { return }

        // Agent RPC over TLS: the client forwards a write and a read to the servers.
        let written = AgentProcessHarness.eventually(20) { Self.cli(["kv", "put"] + cluster.addr("c1") + ["tls/key", "over-tls"]).code == 0 }
        #expect(written, "kv put through the client failed:\n\(cluster.logs)")
        let read = Self.cli(["kv", "get"] + cluster.addr("c1") + ["tls/key"])
        #expect(read.code == 0 && read.out == "over-tls\n", "kv get: \(read)")
        let allAlive = AgentProcessHarness.eventually(15) {
            Self.cli(["members"] + cluster.addr("c1")).out.components(separatedBy: "  alive  ").count == 5
        }
        #expect(allAlive, "members: \(Self.cli(["members"] + cluster.addr("c1")).out)")

        // The banner and `consul info` show the TLS state.
        let s1Log = Self.log(cluster, "s1")
        #expect(s1Log.contains("Internal RPC TLS: Verify Incoming: true, Verify Outgoing: true (Verify Hostname: true)"))
        let info = Self.cli(["info"] + cluster.addr("s1")).out
        #expect(info.contains("tls:") && info.contains("rpc_tls = enabled") && info.contains("rpc_verify_server_hostname = true"), "info:\n\(info)")
        #expect(Self.infoStat(cluster, "s1", "handshake_failures") == 0)

        // A client certificate used to pose as a server: the servers dialing it find
        // client.dc1.consul where server.dc1.consul is required, and it never gets the data.
        try cluster.start("rogue", host: "127.0.0.125", server: true, extra: [
            "-retry-join", "127.0.0.121", "-retry-interval", "200ms", "-hcl", pki.agentHCL(cert: pki.clientCert, key: pki.clientKey)])
        let rejected = AgentProcessHarness.eventually(30) {
            servers.keys.contains { name in
                let log = cluster.nodes[name]?.process?.log ?? ""
                return log.contains("server=127.0.0.125") && log.contains("certificate is valid for client.dc1.consul, localhost, not server.dc1.consul")
            }
        }
        #expect(rejected, "no server refused the rogue's certificate:\n\(cluster.logs)")
        let rogueRead = cluster.get("rogue", "/v1/kv/tls/key?stale")
        #expect(rogueRead?.status != 200, "the rogue server got replicated data: \(String(describing: rogueRead))")
        // Redialed with backoff, but the reason is logged once per peer.
        usleep(3_000_000)
        for name in servers.keys {
            let lines = (cluster.nodes[name]?.process?.log ?? "").split(separator: "\n").filter {
                $0.contains("server=127.0.0.125") && $0.contains("not server.dc1.consul")
            }
            #expect(lines.count <= 1, "\(name) logged the same failure \(lines.count) times")
        }
        // The datacenter goes on working.
        #expect(Self.cli(["kv", "put"] + cluster.addr("c1") + ["tls/after", "ok"]).code == 0)
    }

    /// One TLS server (`-bootstrap`) and one client agent whose certificate set-up is wrong in
    /// some way: the client's forwarded requests fail, and the server's log says why.
    func expectClientRefused(serverHost: String, clientHost: String, clientHCL: String, serverSays: String, pki: TestPKI) throws {
        let cluster = try LocalCluster()
        try cluster.start("srv", host: serverHost, server: true, extra: ["-bootstrap", "-hcl", pki.agentHCL(cert: pki.serverCert, key: pki.serverKey)])
        let elected = AgentProcessHarness.eventually(20) { cluster.leader(asking: "srv") != nil }
        #expect(elected, "no leader:\n\(cluster.logs)")
        guard elected else { return }
        try cluster.start("bad", host: clientHost, server: false, extra: ["-retry-join", serverHost, "-retry-interval", "200ms", "-hcl", clientHCL])
        let joined = AgentProcessHarness.eventually(15) { Self.cli(["members"] + cluster.addr("bad")).out.contains("srv ") }
        #expect(joined, "the client never saw the server:\n\(cluster.logs)")

        let put = Self.cli(["kv", "put"] + cluster.addr("bad") + ["refused", "x"])
        #expect(put.code != 0, "a write through the refused client succeeded")
        let logged = AgentProcessHarness.eventually(15) {
            _ = Self.cli(["kv", "get"] + cluster.addr("bad") + ["refused"])
            return (cluster.nodes["srv"]?.process?.log ?? "").contains(serverSays)
        }
        #expect(logged, "the server never logged \"\(serverSays)\":\n\(cluster.logs)")
        #expect(Self.infoStat(cluster, "srv", "handshake_failures") >= 1)
        // The server itself is fine.
        #expect(Self.cli(["kv", "put"] + cluster.addr("srv") + ["fine", "yes"]).code == 0)
    }

    @Test func aClientWithoutACertificateIsRefused() throws {
        let pki = try TestPKI()
        try expectClientRefused(
            serverHost: "127.0.0.126", clientHost: "127.0.0.127", clientHCL: pki.agentHCL(cert: nil, key: nil, verifyIncoming: false),
            serverSays: "the peer presented no certificate", pki: pki)
    }

    @Test func aCertificateFromAnotherCAIsRefused() throws {
        let pki = try TestPKI()
        // Made with the same commands in another directory: a CA of its own.
        let foreign = try TestPKI()
        // It trusts our CA (so it accepts the server); the server does not trust its CA.
        try expectClientRefused(
            serverHost: "127.0.0.128", clientHost: "127.0.0.129", clientHCL: pki.agentHCL(cert: foreign.clientCert, key: foreign.clientKey),
            serverSays: "certificate signed by unknown authority", pki: pki)
    }

    @Test func anExpiredCertificateIsRefused() throws {
        let pki = try TestPKI()
        let expired = try pki.expiredClientCertificate()
        try expectClientRefused(
            serverHost: "127.0.0.130", clientHost: "127.0.0.131", clientHCL: pki.agentHCL(cert: expired.cert, key: expired.key),
            serverSays: "certificate has expired", pki: pki)
    }

    /// With verify_incoming, plaintext RPC and Raft (first byte 0x00/0x01) are closed unanswered,
    /// TLS without the RPCTLS byte (openssl s_client) is not understood, and TLS with a client
    /// certificate may ask for RPC but not for Raft.
    @Test func plaintextAndNonServerRaftAreRefusedOnTheServerPort() async throws {
        let pki = try TestPKI()
        let cluster = try LocalCluster()
        let host = "127.0.0.132"
        try cluster.start("srv", host: host, server: true, extra: ["-bootstrap", "-hcl", pki.agentHCL(cert: pki.serverCert, key: pki.serverKey)])
        let elected = AgentProcessHarness.eventually(20) { cluster.leader(asking: "srv") != nil }
        #expect(elected, "no leader:\n\(cluster.logs)")
        guard elected else { return }

        for first: UInt8 in [0x00, 0x01] {
            let socket = Darwinless.socket()
            defer { close(socket) }
            try Darwinless.connect(socket, host: host, port: 8300)
            try Darwinless.send(socket, [first] + [UInt8](repeating: 0, count: 32))
            #expect(Darwinless.receiveAll(socket).isEmpty, "plaintext 0x0\(first) was answered")
        }
        #expect(Self.infoStat(cluster, "srv", "refused_plaintext") >= 1)
        let serverLog = Self.log(cluster, "srv")
        #expect(serverLog.contains("plaintext connection refused: verify_incoming requires TLS"))

        let openssl = try AgentProcessHarness.ensureTool("openssl", package: "openssl")
        let (code, output) = try AgentProcessHarness.run("/bin/sh", ["-c", "timeout 20 \(openssl) s_client -connect \(host):8300 -CAfile '\(pki.ca)' </dev/null 2>&1"])
        #expect(code != 0 && output.contains("no peer certificate available"), "openssl s_client without a certificate connected: \(output)")

        // Our own client code, as a client agent would dial: agent RPC inside TLS with a client
        // certificate is answered; without one it is not.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let events = TLSEvents(logger: LoopbackRPCServer.quietLogger)
        func rpcTLS(cert: String?, key: String?) throws -> InternalRPCTLS {
            let settings = AgentConfig.TLSSettings(caFile: pki.ca, certFile: cert, keyFile: key, verifyOutgoing: true, verifyServerHostname: true)
            return try InternalRPCTLS(settings: settings, serverName: "server.dc1.consul", events: events)
        }
        let request = RPCEndToEndTests.request("GET", "/v1/status/leader")
        let withCert = RPCClientPool(group: group, tls: try rpcTLS(cert: pki.cliCert, key: pki.cliKey))
        let answer = try await withCert.call(request, to: "\(host):8300", timeout: .seconds(10), on: group.next()).get()
        #expect(answer.status == 200)
        await withCert.shutdown()
        let withoutCert = RPCClientPool(group: group, tls: try rpcTLS(cert: nil, key: nil))
        await #expect(throws: RPCError.self) {
            _ = try await withoutCert.call(request, to: "\(host):8300", timeout: .seconds(10), on: group.next()).get()
        }
        await withoutCert.shutdown()

        // A client certificate asking for Raft inside TLS: closed, counted.
        let raftProbe = try await Self.raftOverTLSClosed(host: host, tls: try rpcTLS(cert: pki.clientCert, key: pki.clientKey), group: group)
        #expect(raftProbe, "Raft with a client certificate was not closed")
        #expect(Self.infoStat(cluster, "srv", "refused_not_server") >= 1)
        try? await group.shutdownGracefully()
    }

    /// Dials `host:8300` as a Raft peer would (RPCTLS, handshake, RPCRaft inside) and reports
    /// whether the server closed the connection within 10 s.
    static func raftOverTLSClosed(host: String, tls: InternalRPCTLS, group: any EventLoopGroup) async throws -> Bool {
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try tls.secureOutgoing(channel, peer: host) }
            }
            .connect(host: host, port: 8300).get()
        try await channel.writeAndFlush(ByteBuffer(bytes: [0x01] + [UInt8](repeating: 0, count: 16))).get()
        let closed = channel.eventLoop.scheduleTask(in: .seconds(10)) { false }
        channel.closeFuture.whenComplete { _ in closed.cancel() }
        do {
            _ = try await closed.futureResult.get()
            try? await channel.close()
            return false
        } catch {
            return true  // cancelled because the connection closed first
        }
    }

    @Test func httpsWithTheCLIAndCurl() throws {
        let host = "127.0.0.133"
        let pki = try TestPKI(additionalServerIP: host)
        let cluster = try LocalCluster()
        let https = "ports { https = 8501 } " + pki.agentHCL(cert: pki.serverCert, key: pki.serverKey, extra: "https { verify_incoming = true }")
        try cluster.start("srv", host: host, server: true, extra: ["-bootstrap", "-hcl", https])
        let elected = AgentProcessHarness.eventually(20) { cluster.leader(asking: "srv") != nil }
        #expect(elected, "no leader:\n\(cluster.logs)")
        guard elected else { return }
        let serverLog = Self.log(cluster, "srv")
        #expect(serverLog.contains("(HTTP: 8500, HTTPS: 8501,"))

        let environment = [
            "CONSUL_HTTP_ADDR": "https://\(host):8501", "CONSUL_CACERT": pki.ca,
            "CONSUL_CLIENT_CERT": pki.cliCert, "CONSUL_CLIENT_KEY": pki.cliKey,
        ]
        #expect(Self.cli(["kv", "put", "https/key", "secret"], environment).code == 0)
        let got = Self.cli(["kv", "get", "https/key"], environment)
        #expect(got.code == 0 && got.out == "secret\n", "\(got)")
        // Flags instead of the environment, and CONSUL_HTTP_SSL for an address without a scheme.
        let flags = Self.cli(["kv", "get", "-http-addr", "\(host):8501", "-ca-file", pki.ca, "-client-cert", pki.cliCert, "-client-key", pki.cliKey, "https/key"], ["CONSUL_HTTP_SSL": "true"])
        #expect(flags.code == 0 && flags.out == "secret\n", "\(flags)")
        // No client certificate: refused (verify_incoming on HTTPS).
        let noCert = Self.cli(["kv", "get", "-http-addr", "https://\(host):8501", "-ca-file", pki.ca, "https/key"])
        #expect(noCert.code != 0 && noCert.err.contains("client certificate"), "\(noCert)")
        // The wrong name: refused; CONSUL_HTTP_SSL_VERIFY=false skips the check.
        let wrongName = Self.cli(["kv", "get", "-tls-server-name", "other.example", "https/key"], environment)
        #expect(wrongName.code != 0 && wrongName.err.contains("not other.example"), "\(wrongName)")
        let unverified = Self.cli(["kv", "get", "-tls-server-name", "other.example", "https/key"], environment.merging(["CONSUL_HTTP_SSL_VERIFY": "false"]) { $1 })
        #expect(unverified.code == 0, "\(unverified)")

        let curl = try AgentProcessHarness.ensureTool("curl", package: "curl")
        let (curlCode, curlOut) = try AgentProcessHarness.run(curl, [
            "-s", "--max-time", "20", "--cacert", pki.ca, "--cert", pki.cliCert, "--key", pki.cliKey, "https://\(host):8501/v1/kv/https/key?raw"])
        #expect(curlCode == 0 && curlOut == "secret", "curl: \(curlCode) \(curlOut)")
        let (refusedCode, _) = try AgentProcessHarness.run(curl, ["-s", "--max-time", "20", "--cacert", pki.ca, "https://\(host):8501/v1/kv/https/key?raw"])
        #expect(refusedCode != 0, "curl without a client certificate was answered")
        // verify_server_hostname goes by DNS name only: this server's certificate also names the
        // address dialed (127.0.0.133), which must not stand in for server.dc2.consul.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let events = TLSEvents(logger: LoopbackRPCServer.quietLogger)
        func pool(serverName: String) throws -> RPCClientPool {
            let settings = AgentConfig.TLSSettings(caFile: pki.ca, certFile: pki.cliCert, keyFile: pki.cliKey, verifyOutgoing: true, verifyServerHostname: true)
            return RPCClientPool(group: group, tls: try InternalRPCTLS(settings: settings, serverName: serverName, events: events))
        }
        let request = RPCEndToEndTests.request("GET", "/v1/status/leader")
        let otherDC = try pool(serverName: "server.dc2.consul")
        #expect(throws: RPCError.self) { _ = try otherDC.call(request, to: "\(host):8300", timeout: .seconds(10), on: group.next()).wait() }
        #expect(events.counters["handshake_failures"] == "1")
        let sameDC = try pool(serverName: "server.dc1.consul")
        #expect(try sameDC.call(request, to: "\(host):8300", timeout: .seconds(10), on: group.next()).wait().status == 200)

        // Plain HTTP on 8500 is still there.
        #expect(cluster.get("srv", "/v1/kv/https/key?raw")?.body == "secret")
    }

    @Test func unusableCertificateFilesStopTheStartNamingTheFile() throws {
        let pki = try TestPKI()
        let garbage = pki.dir + "/garbage.pem"
        try "not a certificate\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let base = ["agent", "-dev", "-node", "badtls", "-bind", "127.0.0.134", "-client", "127.0.0.134"]
        let cases: [(hcl: String, mentions: String)] = [
            ("tls { defaults { cert_file = \"\(pki.dir)/missing.pem\" key_file = \"\(pki.serverKey)\" } }", "cert_file \(pki.dir)/missing.pem: no such file"),
            ("tls { defaults { cert_file = \"\(garbage)\" key_file = \"\(pki.serverKey)\" } }", "cert_file \(garbage)"),
            ("tls { defaults { ca_file = \"\(garbage)\" verify_outgoing = true } }", "ca_file \(garbage)"),
            ("tls { defaults { cert_file = \"\(pki.serverCert)\" key_file = \"\(pki.clientKey)\" } }", "key_file \(pki.clientKey) does not belong to the certificate"),
            ("ports { https = 8501 }", "ports.https is 8501 but no cert_file and key_file"),
        ]
        for (hcl, mentions) in cases {
            // Bounded: should one start after all, `timeout` ends it (exit 124).
            let (code, output) = try AgentProcessHarness.run("/bin/sh", [
                "-c", "exec timeout 30 \"$0\" \"$@\" 2>&1", AgentProcessHarness.consulPath] + base + ["-hcl", hcl])
            #expect(code == 1, "exit \(code) with \(hcl)")
            #expect(output.contains("Failed to configure TLS") && output.contains(mentions), "\(hcl): \(output)")
        }
    }
}
