import Testing
@testable import ConsulAgent
@testable import ConsulCore

@Suite struct DNSResolverTests {
    static let serial: UInt32 = 1_700_000_000

    /// n1..n3 with `web` (passing, warning, critical), `api` with its own address, `db` on a node
    /// registered by hostname, two servers (the `consul` service), an IPv6 node.
    static var catalog: DNSTestCatalog {
        var catalog = DNSTestCatalog()
        let n1 = DNSTestCatalog.node("n1", "10.0.0.1", meta: [("rack", "a"), ("rfc1035-note", "hello")])
        let n2 = DNSTestCatalog.node("n2", "10.0.0.2")
        let n3 = DNSTestCatalog.node("n3", "10.0.0.3")
        catalog.add(n1, services: [
            DNSTestCatalog.instance("web", on: n1, port: 10000, tags: ["primary", "v1"]),
            DNSTestCatalog.instance("api", on: n1, address: "192.168.1.5", port: 9000),
            DNSTestCatalog.instance("consul", on: n1, port: 8300),
        ])
        catalog.add(n2, services: [
            DNSTestCatalog.instance("web", on: n2, port: 10000, health: .warning, weights: (10, 3)),
            DNSTestCatalog.instance("consul", on: n2, port: 8300),
            DNSTestCatalog.instance("down", on: n2, health: .critical),
        ])
        catalog.add(n3, services: [DNSTestCatalog.instance("web", on: n3, port: 10000, health: .critical)])
        let v6 = DNSTestCatalog.node("n6", "2001:db8::6")
        catalog.add(v6, services: [DNSTestCatalog.instance("six", on: v6, port: 6)])
        let external = DNSTestCatalog.node("ext", "db.example.com")
        catalog.add(external, services: [DNSTestCatalog.instance("db", on: external, port: 5432)])
        catalog.add(DNSTestCatalog.node("alias", "n1.node.consul"))
        return catalog
    }

    static func resolve(
        _ name: String, _ type: DNSType, edns: UInt16? = nil, transport: DNSTransport = .udp,
        settings: DNSResolverSettings = DNSResolverSettings(), catalog: DNSTestCatalog = catalog, seed: UInt64 = 1
    ) -> DNSResolution {
        var random = SeededRandom(seed: seed)
        return DNSResolver(settings: settings).resolve(
            DNSTestQuery.packet(name, type, edns: edns), transport: transport, catalog: catalog, serial: serial, random: &random)
    }

    static func ask(
        _ name: String, _ type: DNSType, edns: UInt16? = nil, transport: DNSTransport = .udp,
        settings: DNSResolverSettings = DNSResolverSettings(), catalog: DNSTestCatalog = catalog, seed: UInt64 = 1
    ) throws -> DNSTestResponse {
        let resolution = resolve(name, type, edns: edns, transport: transport, settings: settings, catalog: catalog, seed: seed)
        guard case .respond(let bytes, let code) = resolution else {
            Issue.record("expected an answer, got \(resolution)")
            throw DNSParseError.noQuestion
        }
        let response = try DNSTestResponse(bytes)
        #expect(response.code == code.rawValue)
        #expect(response.id == 0xBEEF)
        return response
    }

    static let soa = DNSTestResponse.Data.soa(
        primary: "ns.consul", mailbox: "hostmaster.consul", serial: serial, refresh: 3600, retry: 600, expire: 86400, minimum: 0)

    // MARK: Nodes

    @Test func nodeLookupAnswersItsAddressWithMetaInAdditional() throws {
        for name in ["n1.node.consul", "n1.node.dc1.consul", "n1.node.dc1.dc.consul", "N1.Node.DC1.Consul"] {
            let response = try Self.ask(name, .a)
            #expect(response.code == 0 && response.authoritative && !response.recursionAvailable)
            #expect(response.question == name)
            #expect(response.answers == [.init(name: name, type: 1, ttl: 0, data: .a("10.0.0.1"))])
            #expect(response.extra.map(\.data) == [.txt(["rack=a"]), .txt(["hello"])])
        }
        // Without the additional meta option, A answers carry no TXT.
        var settings = DNSResolverSettings()
        settings.nodeMetaTXT = false
        #expect(try Self.ask("n1.node.consul", .a, settings: settings).extra.isEmpty)
    }

    @Test func nodeTXTAnyAndAAAA() throws {
        let txt = try Self.ask("n1.node.consul", .txt)
        #expect(txt.answers.map(\.data) == [.txt(["rack=a"]), .txt(["hello"])])
        let any = try Self.ask("n1.node.consul", .any)
        #expect(any.answers.map(\.data) == [.a("10.0.0.1"), .txt(["rack=a"]), .txt(["hello"])])
        let six = try Self.ask("n6.node.consul", .aaaa)
        #expect(six.answers.map(\.data) == [.aaaa([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [6])])
        // An IPv4-only node asked for AAAA: no data, SOA in AUTHORITY (RFC 2308).
        let none = try Self.ask("n2.node.consul", .aaaa)
        #expect(none.code == 0 && none.answers.isEmpty && none.authority.map(\.data) == [Self.soa])
        // Other types for a node: no data.
        #expect(try Self.ask("n2.node.consul", .srv).answers.isEmpty)
    }

    @Test func nodeWithHostnameAddressIsACNAMEFollowedInsideOurDomain() throws {
        let external = try Self.ask("ext.node.consul", .a)
        #expect(external.answers.map(\.data) == [.name("db.example.com")])
        #expect(external.answers.first?.type == DNSType.cname.rawValue)
        let alias = try Self.ask("alias.node.consul", .a, edns: 1232)
        // The target is looked up as ANY, as Consul does, so its meta comes along.
        #expect(alias.answers.map(\.data) == [.name("n1.node.consul"), .a("10.0.0.1"), .txt(["rack=a"]), .txt(["hello"])])
        #expect(alias.answers.map(\.name) == ["alias.node.consul"] + Array(repeating: "n1.node.consul", count: 3))
    }

    @Test func rfc1464QuotesTheKey() {
        #expect(DNSLookup<DNSTestCatalog>.rfc1464("a=b", "c`d") == "a`=b=c``d")
        #expect(DNSLookup<DNSTestCatalog>.rfc1464(" k ", "v") == "` k` =v")
        #expect(DNSLookup<DNSTestCatalog>.rfc1464("plain", "x=y") == "plain=x=y")
    }

    @Test func unknownNamesAreNXDOMAINWithTheSOA() throws {
        for name in ["nope.node.consul", "nope.service.consul", "consul", "x.unknownkind.consul", "n1.node.a.b.consul", "q.query.consul"] {
            let response = try Self.ask(name, .a)
            #expect(response.code == DNSResponseCode.nameError.rawValue, "\(name)")
            #expect(response.answers.isEmpty)
            #expect(response.authority == [.init(name: "consul", type: DNSType.soa.rawValue, ttl: 0, data: Self.soa)])
        }
    }

    // MARK: Services

    @Test func serviceARecordsLeaveOutCriticalInstances() throws {
        let response = try Self.ask("web.service.consul", .a)
        #expect(Set(response.answers.map(\.data)) == [.a("10.0.0.1"), .a("10.0.0.2")])
        #expect(response.answers.allSatisfy { $0.name == "web.service.consul" && $0.ttl == 0 })
        var settings = DNSResolverSettings()
        settings.onlyPassing = true
        #expect(try Self.ask("web.service.consul", .a, settings: settings).answers.map(\.data) == [.a("10.0.0.1")])
        // Every instance critical: as if the service did not exist.
        #expect(try Self.ask("down.service.consul", .a).code == DNSResponseCode.nameError.rawValue)
        // A healthy service without an address of the asked family: NOERROR, no data, SOA.
        let noV6 = try Self.ask("web.service.consul", .aaaa)
        #expect(noV6.code == 0 && noV6.answers.isEmpty && noV6.authority.map(\.data) == [Self.soa])
    }

    @Test func tagFilterAndRFC2782Names() throws {
        #expect(try Self.ask("primary.web.service.consul", .a).answers.map(\.data) == [.a("10.0.0.1")])
        #expect(try Self.ask("PRIMARY.web.service.consul", .a).answers.map(\.data) == [.a("10.0.0.1")])
        #expect(try Self.ask("nosuchtag.web.service.consul", .a).code == DNSResponseCode.nameError.rawValue)
        for name in ["_web._tcp.service.consul", "_web._tcp.consul", "_web._tcp.service.dc1.consul", "_web._tcp.dc1.consul"] {
            let response = try Self.ask(name, .srv)
            #expect(response.answers.count == 2, "\(name)")
        }
        let tagged = try Self.ask("_web._v1.service.consul", .srv)
        #expect(tagged.answers.map(\.data) == [.srv(priority: 1, weight: 1, port: 10000, target: "n1.node.dc1.consul")])
    }

    @Test func srvAnswersCarryTargetsAndTheirAddresses() throws {
        var settings = DNSResolverSettings()
        settings.nodeMetaTXT = false
        let response = try Self.ask("web.service.consul", .srv, settings: settings)
        let srv = Set(response.answers.map(\.data))
        #expect(srv == [
            .srv(priority: 1, weight: 1, port: 10000, target: "n1.node.dc1.consul"),
            // Warning instance: its warning weight.
            .srv(priority: 1, weight: 3, port: 10000, target: "n2.node.dc1.consul"),
        ])
        #expect(Set(response.extra) == [
            .init(name: "n1.node.dc1.consul", type: 1, ttl: 0, data: .a("10.0.0.1")),
            .init(name: "n2.node.dc1.consul", type: 1, ttl: 0, data: .a("10.0.0.2")),
        ])
        // A service with its own address: the target is its hex form under .addr.
        let api = try Self.ask("api.service.consul", .srv, settings: settings)
        #expect(api.answers.map(\.data) == [.srv(priority: 1, weight: 1, port: 9000, target: "c0a80105.addr.dc1.consul")])
        #expect(api.extra == [.init(name: "c0a80105.addr.dc1.consul", type: 1, ttl: 0, data: .a("192.168.1.5"))])
        #expect(try Self.ask("api.service.consul", .a).answers.map(\.data) == [.a("192.168.1.5")])
        // A hostname target is named as it is; its address is not ours to give.
        let db = try Self.ask("db.service.consul", .srv, settings: settings)
        #expect(db.answers.map(\.data) == [.srv(priority: 1, weight: 1, port: 5432, target: "db.example.com")])
        #expect(try Self.ask("db.service.consul", .a).answers.map(\.data) == [.name("db.example.com")])
        // With node meta TXT on (the default), the node's meta follows its A record.
        let withMeta = try Self.ask("primary.web.service.consul", .srv)
        #expect(withMeta.extra.map(\.data) == [.a("10.0.0.1"), .txt(["rack=a"]), .txt(["hello"])])
    }

    @Test func answersAreShuffledDeterministicallyPerSeed() throws {
        var catalog = DNSTestCatalog()
        for index in 1...8 {
            let node = DNSTestCatalog.node("n\(index)", "10.1.0.\(index)")
            catalog.add(node, services: [DNSTestCatalog.instance("many", on: node)])
        }
        func order(_ seed: UInt64) throws -> [DNSTestResponse.Data] {
            try Self.ask("many.service.consul", .a, edns: 4096, catalog: catalog, seed: seed).answers.map(\.data)
        }
        #expect(try order(7) == order(7))
        var orders = Set<[String]>()
        for seed in UInt64(0)..<10 { orders.insert(try order(seed).map { "\($0)" }) }
        #expect(orders.count > 5)
        #expect(try Set(order(3)).count == 8)
    }

    @Test func ttlsFromNodeAndServiceSettings() throws {
        var settings = DNSResolverSettings()
        settings.nodeTTL = 30
        settings.setServiceTTLs(["*": .seconds(5), "we*": .seconds(7), "web": .seconds(9), "ap*": .seconds(11)])
        #expect(try Self.ask("n1.node.consul", .a, settings: settings).answers.map(\.ttl) == [30])
        let web = try Self.ask("web.service.consul", .srv, settings: settings)
        #expect(web.answers.allSatisfy { $0.ttl == 9 } && web.extra.allSatisfy { $0.ttl == 9 })
        #expect(try Self.ask("api.service.consul", .a, settings: settings).answers.map(\.ttl) == [11])
        #expect(try Self.ask("six.service.consul", .aaaa, settings: settings).answers.map(\.ttl) == [5])
        settings.setServiceTTLs(["w*": .seconds(1), "we*": .seconds(2)])
        #expect(settings.serviceTTL("web") == 2 && settings.serviceTTL("wx") == 1 && settings.serviceTTL("db") == 0)
    }

    // MARK: Size limits

    static func bigCatalog(_ count: Int) -> DNSTestCatalog {
        var catalog = DNSTestCatalog()
        for index in 0..<count {
            let node = DNSTestCatalog.node("node-with-a-long-name-\(index)", "10.2.\(index / 256).\(index % 256)")
            catalog.add(node, services: [DNSTestCatalog.instance("big", on: node)])
        }
        return catalog
    }

    @Test func udpAnswersAreLimitedForClassicClientsAndTCBitIsOptional() throws {
        let catalog = Self.bigCatalog(10)
        let plain = try Self.ask("big.service.consul", .a, catalog: catalog)
        #expect(plain.answers.count == 3 && !plain.truncated)
        var settings = DNSResolverSettings()
        settings.enableTruncate = true
        settings.udpAnswerLimit = 5
        let flagged = try Self.ask("big.service.consul", .a, settings: settings, catalog: catalog)
        #expect(flagged.answers.count == 5 && flagged.truncated)
        settings.udpAnswerLimit = 100  // capped at 8, as Consul
        #expect(try Self.ask("big.service.consul", .a, settings: settings, catalog: catalog).answers.count == 8)
        // EDNS clients and TCP get every answer.
        let edns = try Self.ask("big.service.consul", .a, edns: 4096, settings: settings, catalog: catalog)
        #expect(edns.answers.count == 10 && !edns.truncated && edns.opt == 4096)
        #expect(try Self.ask("big.service.consul", .a, transport: .tcp, settings: settings, catalog: catalog).answers.count == 10)
    }

    @Test func ednsBufferSizeBoundsTheAnswerAndAdditionalStaysConsistent() throws {
        let catalog = Self.bigCatalog(300)
        var settings = DNSResolverSettings()
        settings.enableTruncate = true
        settings.nodeMetaTXT = false
        let resolution = Self.resolve("big.service.consul", .srv, edns: 1232, settings: settings, catalog: catalog)
        guard case .respond(let bytes, _) = resolution else { Issue.record("no answer"); return }
        #expect(bytes.count <= 1232)
        let response = try DNSTestResponse(bytes)
        #expect(response.truncated && response.answers.count > 5 && response.answers.count < 300)
        // Exactly one address per SRV target, and none for targets that were cut.
        let targets = response.answers.compactMap { record -> String? in
            if case .srv(_, _, _, let target) = record.data { return target }
            return nil
        }
        #expect(response.extra.map(\.name) == targets)
        // TCP: everything that fits in 64 KiB; 300 SRV answers with addresses do.
        let tcp = try Self.ask("big.service.consul", .srv, transport: .tcp, settings: settings, catalog: catalog)
        #expect(tcp.answers.count == 300 && tcp.extra.count == 300 && !tcp.truncated)
        // A UDP client without EDNS gets at most 512 bytes.
        let classic = Self.resolve("big.service.consul", .srv, settings: settings, catalog: catalog)
        if case .respond(let bytes, _) = classic { #expect(bytes.count <= 512) }
    }

    @Test func tcpAnswersAreCutAtSixtyFourKiB() throws {
        let catalog = Self.bigCatalog(1200)
        let resolution = Self.resolve("big.service.consul", .srv, transport: .tcp, catalog: catalog)
        guard case .respond(let bytes, _) = resolution else { Issue.record("no answer"); return }
        #expect(bytes.count <= 65_535)
        let response = try DNSTestResponse(bytes)
        #expect(response.answers.count > 500 && response.answers.count < 1200)
    }

    // MARK: Other name forms

    /// Audit gap: IPv6 service addresses answer AAAA, and SRV points at their 32-digit `.addr.` name
    /// with the AAAA in ADDITIONAL; an IPv6 node's service gets the node's AAAA.
    @Test func ipv6ServicesAnswerAAAAAndAddrTargets() throws {
        var catalog = Self.catalog
        let n7 = DNSTestCatalog.node("n7", "10.0.0.7")
        catalog.add(n7, services: [DNSTestCatalog.instance("v6api", on: n7, address: "2001:db8::7", port: 7000)])
        let v6 = [UInt8]([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [7])
        #expect(try Self.ask("v6api.service.consul", .aaaa, catalog: catalog).answers.map(\.data) == [.aaaa(v6)])
        let srv = try Self.ask("v6api.service.consul", .srv, catalog: catalog)
        #expect(srv.answers.map(\.data) == [.srv(priority: 1, weight: 1, port: 7000, target: "20010db8000000000000000000000007.addr.dc1.consul")])
        #expect(srv.extra.map(\.data) == [.aaaa(v6)])
        #expect(try Self.ask("six.service.consul", .aaaa).answers.map(\.data) == [.aaaa([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [6])])
    }

    @Test func addrNamesDecodeTheAddress() throws {
        #expect(try Self.ask("7f000001.addr.dc1.consul", .a).answers.map(\.data) == [.a("127.0.0.1")])
        #expect(try Self.ask("7F000001.addr.consul", .any).answers.map(\.data) == [.a("127.0.0.1")])
        let v6 = try Self.ask("20010db8000000000000000000000006.addr.dc1.consul", .aaaa)
        #expect(v6.answers.map(\.data) == [.aaaa([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [6])])
        // Another type: the address rides in ADDITIONAL, as Consul.
        let other = try Self.ask("7f000001.addr.dc1.consul", .aaaa)
        #expect(other.answers.isEmpty && other.extra.map(\.data) == [.a("127.0.0.1")])
        #expect(try Self.ask("zz000001.addr.dc1.consul", .a).code == DNSResponseCode.nameError.rawValue)
        #expect(try Self.ask("7f0001.addr.dc1.consul", .a).code == DNSResponseCode.nameError.rawValue)
    }

    @Test func ptrForNodeAddresses() throws {
        let v4 = try Self.ask("1.0.0.10.in-addr.arpa", .ptr)
        #expect(v4.answers == [.init(name: "1.0.0.10.in-addr.arpa", type: DNSType.ptr.rawValue, ttl: 0, data: .name("n1.node.dc1.consul"))])
        let nibbles = "6" + String(repeating: ".0", count: 23) + ".8.b.d.0.1.0.0.2.ip6.arpa"
        #expect(try Self.ask(nibbles, .ptr).answers.map(\.data) == [.name("n6.node.dc1.consul")])
        // Unknown: NXDOMAIN without recursors, forwarded with them.
        #expect(try Self.ask("9.9.9.10.in-addr.arpa", .ptr).code == DNSResponseCode.nameError.rawValue)
        var settings = DNSResolverSettings()
        settings.recursorsConfigured = true
        guard case .forward(let query) = Self.resolve("9.9.9.10.in-addr.arpa", .ptr, settings: settings) else {
            Issue.record("expected forwarding")
            return
        }
        #expect(query.name == "9.9.9.10.in-addr.arpa")
    }

    @Test func soaAndNSForTheDomain() throws {
        var settings = DNSResolverSettings()
        settings.nodeMetaTXT = false
        let soa = try Self.ask("consul", .soa, settings: settings)
        #expect(soa.answers == [.init(name: "consul", type: DNSType.soa.rawValue, ttl: 0, data: Self.soa)])
        #expect(Set(soa.authority.map(\.data)) == [.name("n1.node.dc1.consul"), .name("n2.node.dc1.consul")])
        #expect(Set(soa.extra.map(\.data)) == [.a("10.0.0.1"), .a("10.0.0.2")])
        let ns = try Self.ask("consul", .ns, settings: settings)
        #expect(ns.answers.allSatisfy { $0.name == "consul" && $0.type == DNSType.ns.rawValue })
        #expect(Set(ns.answers.map(\.data)) == [.name("n1.node.dc1.consul"), .name("n2.node.dc1.consul")])
        #expect(Set(ns.extra.map(\.name)) == ["n1.node.dc1.consul", "n2.node.dc1.consul"])
        // At most three servers.
        var many = Self.catalog
        for index in 4...9 {
            let node = DNSTestCatalog.node("s\(index)", "10.3.0.\(index)")
            many.add(node, services: [DNSTestCatalog.instance("consul", on: node, port: 8300)])
        }
        #expect(try Self.ask("consul", .ns, settings: settings, catalog: many).answers.count == 3)
        #expect(try Self.ask("web.service.consul", .axfr).code == DNSResponseCode.notImplemented.rawValue)
    }

    @Test func altDomainIsAnsweredInItsOwnTerms() throws {
        var settings = DNSResolverSettings(domain: "consul.", altDomain: "Svc.Example.", datacenter: "dc1")
        settings.nodeMetaTXT = false
        let srv = try Self.ask("web.service.svc.example", .srv, settings: settings)
        #expect(Set(srv.extra.map(\.name)) == ["n1.node.dc1.svc.example", "n2.node.dc1.svc.example"])
        let missing = try Self.ask("nope.node.svc.example", .a, settings: settings)
        #expect(missing.authority.first?.name == "svc.example")
        if case .soa(let primary, let mailbox, _, _, _, _, _) = missing.authority.first?.data {
            #expect(primary == "ns.svc.example" && mailbox == "hostmaster.svc.example")
        } else {
            Issue.record("no SOA")
        }
        #expect(try Self.ask("n1.node.consul", .a, settings: settings).answers.count == 1)
    }

    @Test func otherDatacentersAreASeamAnsweredNXDOMAINForNow() throws {
        for name in ["web.service.dc2.consul", "n1.node.dc2.consul", "_web._tcp.service.dc2.consul", "n1.node.dc2.dc.consul"] {
            let type: DNSType = name.hasPrefix("_") ? .srv : .a
            guard case .otherDatacenter(let datacenter, let query) = Self.resolve(name, type) else {
                Issue.record("\(name) was not sent to another datacenter")
                continue
            }
            #expect(datacenter == "dc2")
            let response = try DNSTestResponse(DNSResolver(settings: DNSResolverSettings()).nameError(for: query, serial: Self.serial))
            #expect(response.code == DNSResponseCode.nameError.rawValue && response.authority.map(\.data) == [Self.soa])
        }
        // The local datacenter by any case is local.
        #expect(try Self.ask("web.service.DC1.consul", .a).answers.count == 2)
    }

    @Test func namesOutsideOurDomainsAreRefusedOrForwarded() throws {
        let refused = try Self.ask("example.com", .a, edns: 1232)
        #expect(refused.code == DNSResponseCode.refused.rawValue && !refused.authoritative && refused.opt != nil)
        #expect(try Self.ask("notconsul", .a).code == DNSResponseCode.refused.rawValue)
        var settings = DNSResolverSettings()
        settings.recursorsConfigured = true
        guard case .forward(let query) = Self.resolve("www.example.com", .a, settings: settings) else {
            Issue.record("expected forwarding")
            return
        }
        #expect(query.id == 0xBEEF && query.name == "www.example.com")
        #expect(try Self.ask("n1.node.consul", .a, settings: settings).recursionAvailable)
        let failure = try DNSTestResponse(DNSResolver(settings: settings).serverFailure(for: query))
        #expect(failure.code == DNSResponseCode.serverFailure.rawValue && failure.recursionAvailable)
    }

    // MARK: Malformed input

    @Test func malformedPacketsGetFORMERROrAreDropped() throws {
        let resolver = DNSResolver(settings: DNSResolverSettings())
        var random = SeededRandom(seed: 1)
        func resolve(_ bytes: [UInt8]) -> DNSResolution {
            resolver.resolve(bytes, transport: .udp, catalog: Self.catalog, serial: Self.serial, random: &random)
        }
        // A header and a question cut short: FORMERR, same id, RD echoed.
        let cut = Array(DNSTestQuery.packet("web.service.consul", .a).prefix(20))
        guard case .respond(let bytes, .formatError) = resolve(cut) else { Issue.record("no FORMERR"); return }
        let formerr = try DNSTestResponse(bytes)
        #expect(formerr.id == 0xBEEF && formerr.code == 1 && formerr.flags & 0x0100 != 0)
        // No question at all: FORMERR too.
        var empty = DNSTestQuery.packet("a.consul", .a)
        empty[5] = 0
        if case .respond(_, let code) = resolve(empty) { #expect(code == .formatError) } else { Issue.record("dropped") }
        // Another opcode (NOTIFY): NOTIMP.
        var notify = DNSTestQuery.packet("a.consul", .a)
        notify[2] = 0x20
        if case .respond(_, let code) = resolve(notify) { #expect(code == .notImplemented) } else { Issue.record("dropped") }
        // Less than a header, or a response: dropped.
        let tiny = resolve([1, 2, 3])
        #expect(tiny == .drop(.truncated(at: 2)))
        var response = DNSTestQuery.packet("a.consul", .a)
        response[2] |= 0x80
        let answered = resolve(response)
        #expect(answered == .drop(.notAQuery))
    }

    @Test func ednsQueriesGetAnOPTRecordBack() throws {
        #expect(try Self.ask("n1.node.consul", .a, edns: 1232).opt == 1232)
        #expect(try Self.ask("n1.node.consul", .a).opt == nil)
        // A buffer below 512 is treated as 512.
        #expect(try Self.ask("n1.node.consul", .a, edns: 100).opt == 512)
    }
}

@Suite struct DNSResolverFuzzTests {
    /// Seeded random and mutated packets through parse + resolve on both transports: no trap, and
    /// every answer is a well-formed message within its size limit that echoes the query's id.
    @Test func fuzzedPacketsAlwaysGiveWellFormedAnswersOrNone() throws {
        var random = SeededRandom(seed: 0xD25)
        let names: [(String, DNSType)] = [
            ("web.service.consul", .srv), ("web.service.consul", .a), ("a.web.service.dc1.consul", .any), ("_web._tcp.consul", .srv),
            ("n1.node.consul", .any), ("n3.node.consul", .a), ("loop.node.consul", .a), ("loop.service.consul", .srv),
            ("db.service.alt.test", .a), ("0a000001.addr.dc1.consul", .a), ("1.0.0.10.in-addr.arpa", .ptr), ("consul", .soa),
            ("alt.test", .ns), ("example.com", .a), ("web.service.dc9.consul", .a),
        ]
        let seeds = names.map { DNSTestQuery.packet($0.0, $0.1, edns: $0.0.count % 2 == 0 ? 1232 : nil) }
        var answered = 0
        var settings = DNSResolverSettings(domain: "consul", altDomain: "alt.test", datacenter: "dc1")
        settings.enableTruncate = true
        let resolver = DNSResolver(settings: settings)
        for round in 0..<6_000 {
            var bytes = seeds[round % seeds.count]
            if round % 5 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            } else if round >= seeds.count {
                for _ in 0..<Int.random(in: 1...3, using: &random) where !bytes.isEmpty {
                    let position = Int.random(in: 0..<bytes.count, using: &random)
                    switch random.next() % 4 {
                    case 0: bytes[position] = UInt8.random(in: 0...255, using: &random)
                    case 1: bytes.removeSubrange(position...)
                    case 2: bytes.insert(UInt8.random(in: 0...255, using: &random), at: position)
                    default: bytes[position] ^= 1 << UInt8(random.next() % 8)
                    }
                }
            }
            _ = DNSFuzzEntry.run(bytes)
            for transport in [DNSTransport.udp, .tcp] {
                guard case .respond(let message, _) = resolver.resolve(bytes, transport: transport, catalog: DNSFuzzEntry.catalog, serial: 1, random: &random)
                else { continue }
                answered += 1
                let response = try DNSTestResponse(message)
                #expect(response.id == UInt16(bytes[0]) << 8 | UInt16(bytes[1]))
                if transport == .udp, let query = try? DNSQuery.parse(bytes) {
                    #expect(message.count <= query.udpLimit)
                }
            }
        }
        #expect(answered > 1_000)
    }
}

@Suite struct DNSAnswerMemoTests {
    /// Catalogs with duplicates (same node and port twice), service addresses, warning weights,
    /// tags and a service big enough to be trimmed.
    static var catalog: DNSTestCatalog {
        var catalog = DNSResolverTests.catalog
        let n1 = catalog.nodes[0]
        catalog.instances.append(DNSTestCatalog.instance("web", on: n1, id: "web-again", port: 10000, tags: ["primary"]))
        catalog.instances.append(DNSTestCatalog.instance("web", on: n1, id: "web-other-port", port: 10001))
        for index in 0..<120 {
            let node = DNSTestCatalog.node("m\(index)", "10.9.\(index / 200).\(index % 200 + 1)")
            catalog.add(node, services: [
                DNSTestCatalog.instance("wide", on: node, address: index % 3 == 0 ? "192.168.\(index % 7).\(index)" : "", port: 7000 + index % 4),
                DNSTestCatalog.instance("wide", on: node, port: 7000 + index % 4, health: index % 5 == 0 ? .warning : .passing),
            ])
        }
        return catalog
    }

    /// The memoized path gives the same bytes as the general one, query after query, for every
    /// name form, type, buffer size and setting (the random draws are the same on both sides).
    @Test func compiledAnswersAreByteIdenticalToTheGeneralPath() throws {
        let plain = Self.catalog
        var memoized = plain
        memoized.generation = 7
        let names = [
            "web.service.consul", "Web.Service.DC1.consul", "primary.web.service.consul", "_web._tcp.service.consul", "api.service.consul",
            "wide.service.consul", "six.service.consul", "n1.node.consul", "n2.node.consul", "n6.node.consul", "db.service.consul",
            "nope.service.consul", "7f000001.addr.dc1.consul", "down.service.consul",
        ]
        let types: [DNSType] = [.a, .aaaa, .srv, .any, .txt]
        var compared = 0
        for variant in 0..<4 {
            var settings = DNSResolverSettings()
            settings.enableTruncate = variant % 2 == 1
            settings.nodeMetaTXT = variant < 2
            settings.udpAnswerLimit = variant + 2
            settings.setServiceTTLs(variant == 3 ? ["*": .seconds(3)] : [:])
            let resolver = DNSResolver(settings: settings)
            var memo = DNSAnswerMemo()
            for round in 0..<3 {
                for name in names {
                    for type in types {
                        for edns in [nil, 512, 1232, 4096] as [UInt16?] {
                            let packet = DNSTestQuery.packet(name, type, id: UInt16(compared & 0xFFFF), edns: edns)
                            let seed = UInt64(compared &* 31 &+ round)
                            var randomA = SeededRandom(seed: seed)
                            var randomB = SeededRandom(seed: seed)
                            let general = resolver.resolve(packet, transport: .udp, catalog: plain, serial: 9, random: &randomA)
                            let fast = resolver.resolve(packet, transport: .udp, catalog: memoized, serial: 9, random: &randomB, memo: &memo)
                            #expect(general == fast, "\(name) \(type) edns \(String(describing: edns)) variant \(variant)")
                            #expect(randomA == randomB)
                            compared += 1
                        }
                    }
                }
            }
        }
        #expect(compared == 4 * 3 * 14 * 5 * 4)
    }

    @Test func aNewGenerationIsSeenAtOnce() throws {
        var catalog = DNSResolverTests.catalog
        catalog.generation = 1
        let resolver = DNSResolver(settings: DNSResolverSettings())
        var memo = DNSAnswerMemo()
        var random = SeededRandom(seed: 1)
        func addresses() throws -> Set<DNSTestResponse.Data> {
            let resolution = resolver.resolve(
                DNSTestQuery.packet("web.service.consul", .a), transport: .udp, catalog: catalog, serial: 1, random: &random, memo: &memo)
            guard case .respond(let bytes, _) = resolution else { return [] }
            return Set(try DNSTestResponse(bytes).answers.map(\.data))
        }
        #expect(try addresses().count == 2)
        #expect(try addresses().count == 2)  // from the memo
        // n2's web instance turns critical: the next generation drops it from the very next answer.
        let index = catalog.instances.firstIndex { $0.serviceName == "web" && $0.node.name == "n2" }!
        catalog.instances[index].health = .critical
        catalog.generation = 2
        #expect(try addresses() == [.a("10.0.0.1")])
    }
}
