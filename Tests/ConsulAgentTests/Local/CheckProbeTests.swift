@testable import ConsulAgent
import ConsulCore
import ConsulCrypto
import ConsulTLS
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// HTTP(S) probes against small servers made in the test: TLS verification, `tls_skip_verify`,
/// `tls_server_name`, and which part of a long body the output keeps.
@Suite(.serialized) struct CheckProbeTests {
    /// Answers every request with `status` and `body`, then closes (HTTP/1.1, written by hand).
    final class FixedResponder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let status: String
        let body: [UInt8]
        private var seen: [UInt8] = []

        init(status: String, body: [UInt8]) {
            self.status = status
            self.body = body
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            seen += buffer.readBytes(length: buffer.readableBytes) ?? []
            guard seen.count >= 4, String(decoding: seen, as: UTF8.self).contains("\r\n\r\n") else { return }
            seen = []
            var out = context.channel.allocator.buffer(capacity: body.count + 128)
            out.writeString("HTTP/1.1 \(status)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n")
            out.writeBytes(body)
            context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in context.close(promise: nil) }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    /// A listener on 127.0.0.145 (an ephemeral port), with TLS when `tls` is given.
    static func serve(_ group: any EventLoopGroup, tls: NIOSSLContext?, status: String = "200 OK", body: [UInt8]) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.addHandler(FixedResponder(status: status, body: body))
                }
            }
            .bind(host: "127.0.0.145", port: 0).get()
    }

    /// A CA and a server certificate for 127.0.0.145 and `web.example`, from our own `consul tls` code.
    static func certificates() throws -> (ca: NIOSSLCertificate, server: NIOSSLContext) {
        let ca = try AgentCertificates.makeCA(AgentCertificates.CAOptions())
        var options = AgentCertificates.CertificateOptions(role: .server)
        options.additionalDNSNames = ["web.example"]
        options.additionalIPAddresses = ["127.0.0.145"]
        let issued = try AgentCertificates.makeCertificate(options, caCertificatePEM: ca.certificatePEM, caKeyPEM: ca.privateKeyPEM)
        let configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(issued.certificatePEM.utf8), format: .pem))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(issued.privateKeyPEM.utf8), format: .pem)))
        return (try NIOSSLCertificate(bytes: Array(ca.certificatePEM.utf8), format: .pem), try NIOSSLContext(configuration: configuration))
    }

    static func probe(_ url: String, skipVerify: Bool = false, serverName: String = "") -> CheckDefinition.HTTPProbe {
        var probe = CheckDefinition.HTTPProbe(url: url)
        probe.tlsSkipVerify = skipVerify
        probe.tlsServerName = serverName
        return probe
    }

    @Test func httpsChecksVerifyUnlessToldNotTo() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (ca, serverContext) = try Self.certificates()
        let server = try await Self.serve(group, tls: serverContext, body: Array("healthy".utf8))
        let url = "https://127.0.0.145:\(server.localAddress!.port!)/health"

        let untrusting = CheckProbes(group: group, limiter: ProbeLimiter())
        let skipped = await untrusting.http(Self.probe(url, skipVerify: true), timeout: .seconds(5))
        #expect(skipped == ProbeResult(status: .passing, output: "HTTP GET \(url): 200 OK Output: healthy"))
        let refused = await untrusting.http(Self.probe(url), timeout: .seconds(5))
        #expect(refused.status == .critical)
        #expect(refused.output.hasPrefix("Get \"\(url)\": tls: failed to verify certificate"), "\(refused.output)")

        // Trusting the CA (as `enable_agent_tls_for_checks` does with the agent's CA): the IP is
        // checked against the certificate's IP addresses, a `tls_server_name` against its DNS names.
        let trusting = CheckProbes(group: group, limiter: ProbeLimiter(), tls: CheckTLS(extraAuthorities: [ca]))
        #expect(await trusting.http(Self.probe(url), timeout: .seconds(5)).status == .passing)
        #expect(await trusting.http(Self.probe(url, serverName: "web.example"), timeout: .seconds(5)).status == .passing)
        let wrongName = await trusting.http(Self.probe(url, serverName: "db.example"), timeout: .seconds(5))
        #expect(wrongName.status == .critical, "\(wrongName.output)")
        #expect(wrongName.output.contains("tls: "), "\(wrongName.output)")

        // Plain HTTP to the TLS port fails cleanly rather than hanging.
        let plain = await untrusting.http(Self.probe("http://127.0.0.145:\(server.localAddress!.port!)/"), timeout: .seconds(2))
        #expect(plain.status == .critical)

        try await server.close()
        try await group.shutdownGracefully()
    }

    @Test func tlsServerNameIsReadFromDefinitions() throws {
        let parser = DefinitionParser(strict: true)
        let value = try JSONConfigParser.parseValue(
            bytes: Array(#"{"name": "s", "http": "https://127.0.0.1/", "tls_server_name": "web.example", "tls_skip_verify": true, "interval": "5s"}"#.utf8),
            file: "test")
        let check = try parser.check(value)
        guard case .http(let probe) = check.kind else { Issue.record("not an HTTP check"); return }
        #expect(probe.tlsServerName == "web.example" && probe.tlsSkipVerify)
        #expect(String(decoding: DefinitionJSON.service(ServiceDefinition(name: "s", checks: [check])), as: UTF8.self).contains(#""TLSServerName":"web.example""#))
    }

    @Test func longOutputKeepsItsLastFourKiB() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let body = Array(repeating: UInt8(ascii: "x"), count: 20_000) + Array("the end".utf8)
        let server = try await Self.serve(group, tls: nil, status: "503 Service Unavailable", body: body)
        let url = "http://127.0.0.145:\(server.localAddress!.port!)/"
        let result = await CheckProbes(group: group, limiter: ProbeLimiter()).http(Self.probe(url), timeout: .seconds(5))
        let prefix = "HTTP GET \(url): 503 Service Unavailable Output: "
        #expect(result.status == .critical)
        #expect(result.output.hasPrefix(prefix) && result.output.hasSuffix("xthe end"))
        #expect(result.output.utf8.count == prefix.utf8.count + CheckStatusRules.outputMaxBytes)
        try await server.close()
        try await group.shutdownGracefully()

        let script = await ScriptProbe.run(["/bin/sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done; echo last; exit 1"], timeout: .seconds(20))
        #expect(script.status == .warning)
        #expect(script.output.hasSuffix("line1999\nlast\n") && script.output.utf8.count == CheckStatusRules.outputMaxBytes)
    }

    /// At the timeout the script's whole process group goes, children included.
    @Test func scriptTimeoutKillsTheProcessGroup() async throws {
        let directory = NSTemporaryDirectory() + "consul-script-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pidFile = directory + "/child"
        let result = await ScriptProbe.run(["/bin/sh", "-c", "sleep 60 & echo $! > \(pidFile); wait"], timeout: .seconds(1))
        #expect(result == ProbeResult(status: .critical, output: "Timed out (1s) running check"))
        let text = try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let child = try #require(pid_t(text))
        // The orphaned `sleep` is reaped by init once killed; give that a bounded moment.
        var gone = false
        for _ in 0..<100 where !gone {
            gone = kill(child, 0) != 0
            if !gone { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(gone, "the script's child \(child) outlived the timeout")
        if !gone { kill(child, SIGKILL) }

        let quick = await ScriptProbe.run(["true"], timeout: .seconds(5))
        #expect(quick == ProbeResult(status: .passing, output: ""))
        let missing = await ScriptProbe.run(["/nonexistent/check"], timeout: .seconds(5))
        #expect(missing.status == .critical && missing.output.hasPrefix("Failed to invoke: /nonexistent/check"))
    }

    /// API registrations on disk as Consul lays them out, read back, and removed when they go.
    @Test func definitionStoreWritesReadsAndRemoves() async throws {
        let directory = NSTemporaryDirectory() + "consul-defs-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = DefinitionStore(dataDir: directory, logger: nil)
        #expect(store.load() == DefinitionStore.Contents())

        var service = ServiceDefinition(name: "web", tags: ["v1"], address: "10.0.0.1", port: 80, meta: ["a": "b"])
        service.id = "web1"
        service.weights = ServiceWeights(passing: 3, warning: 1)
        var http = CheckDefinition(id: "service:web1", name: "http", serviceID: "web1", kind: .http(Self.probe("https://10.0.0.1/", skipVerify: true, serverName: "web")), interval: .seconds(10))
        http.deregisterCriticalServiceAfter = .seconds(90)
        let alias = CheckDefinition(id: "alias", name: "alias", kind: .alias(.init(node: "n2", serviceID: "db")))
        let contents = DefinitionStore.Contents(services: ["web1": service], checks: ["service:web1": http, "alias": alias])
        #expect(await store.written(through: store.submit(contents)))
        // Nothing new: the same number, already written.
        #expect(store.submit(contents) == 1)
        #expect(await store.written(through: 1))
        #expect(FileManager.default.fileExists(atPath: directory + "/services/" + DefinitionStore.fileName("web1")))
        #expect(DefinitionStore.fileName("web1") == "e694aa37abf20c91a442da4841aeccdf")
        #expect(FileManager.default.fileExists(atPath: directory + "/checks/" + DefinitionStore.fileName("alias")))
        #expect(DefinitionStore(dataDir: directory, logger: nil).load() == contents)

        // A torn or foreign file is skipped, not fatal.
        try Array("{not json".utf8).withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: directory + "/checks/junk")) }
        #expect(DefinitionStore(dataDir: directory, logger: nil).load() == contents)
        try FileManager.default.removeItem(atPath: directory + "/checks/junk")

        #expect(await store.written(through: store.submit(DefinitionStore.Contents(services: [:], checks: ["alias": alias]))))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/services").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/checks") == [DefinitionStore.fileName("alias")])
    }

    /// A write that fails is reported to whoever waits for it (the registration then answers 500).
    @Test func definitionStoreReportsAFailedWrite() async throws {
        let file = NSTemporaryDirectory() + "consul-defs-file-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        // The data dir is inside a regular file: no directory can be made there.
        let store = DefinitionStore(dataDir: file + "/data", logger: nil)
        let service = ServiceDefinition(name: "web", tags: [], address: "", port: 80, meta: [:])
        #expect(await store.written(through: store.submit(DefinitionStore.Contents(services: ["web": service]))) == false)
        // The same registration again, once the data dir can be made: written this time.
        try FileManager.default.removeItem(atPath: file)
        try FileManager.default.createDirectory(atPath: file, withIntermediateDirectories: true)
        #expect(await store.written(through: store.submit(DefinitionStore.Contents(services: ["web": service]))))
        #expect(FileManager.default.fileExists(atPath: file + "/data/services/" + DefinitionStore.fileName("web")))
    }
}
