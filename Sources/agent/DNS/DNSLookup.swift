import ConsulCore

/// What an answer will hold before it is encoded. Each answer carries the ADDITIONAL records that
/// exist for it (an SRV target's address, an NS target's glue), so trimming an answer also drops
/// what only it needed and never leaves ADDITIONAL records for answers that were cut.
struct DNSAnswerPlan: Equatable {
    struct Entry: Equatable {
        var record: DNSRecord
        /// The target's address (SRV, NS): kept apart from `additional` so the common answer
        /// needs no array per record.
        var glue: DNSRecord?
        var additional: [DNSRecord] = []
        /// Entries with the same key share their ADDITIONAL records (written once): the SRV target.
        var key: String?
    }

    var code: DNSResponseCode
    var answers: [Entry] = []
    /// Whether the answers are shuffled for each response (service instances are; Consul spreads
    /// load this way). Shuffling and the answer cap are applied when the plan is encoded, so a
    /// plan depends only on the catalog and can be compiled once per catalog generation.
    var shuffle = false
    var authority: [DNSRecord] = []
    /// ADDITIONAL records not tied to one answer; dropped first when the answer must be trimmed.
    var additional: [DNSRecord] = []
}

/// One question being answered: the name as asked, lower-cased, its type, and the domain (ours or
/// the alt domain) the answer speaks in. Internal lookups (a CNAME target in our domain) use their
/// own question.
struct DNSQuestion {
    var name: String
    var originalName: String
    var type: UInt16
    var domain: String
}

/// The name forms of Consul's DNS interface, answered from one catalog snapshot.
struct DNSLookup<Catalog: DNSCatalogView> {
    enum Outcome {
        case plan(DNSAnswerPlan)
        case otherDatacenter(String)
    }

    /// Depth of CNAME targets inside our own domain that are resolved into the answer (Consul's 3).
    static var maxCNAMEDepth: Int { 3 }
    /// The most NS records (servers) in an answer, as Consul.
    static var maxNameservers: Int { 3 }
    /// The service Consul servers register themselves as; its instances are the name servers.
    static var serverServiceName: String { "consul" }

    /// The resolver (a class) rather than a copy of its settings: one reference per lookup.
    let resolver: DNSResolver
    let catalog: Catalog
    let serial: UInt32

    // MARK: Dispatch

    func answer(_ question: DNSQuestion, labels: [Substring], random: inout SeededRandom) -> Outcome {
        switch question.type {
        case DNSType.soa.rawValue:
            var plan = DNSAnswerPlan(code: .noError)
            plan.answers = [.init(record: soaRecord(question.domain))]
            for server in nameservers(question.domain, random: &random) {
                plan.authority.append(server.record)
                plan.additional += server.additional
            }
            return .plan(plan)
        case DNSType.ns.rawValue:
            return .plan(DNSAnswerPlan(code: .noError, answers: nameservers(question.domain, random: &random)))
        case DNSType.axfr.rawValue, DNSType.ixfr.rawValue:
            return .plan(DNSAnswerPlan(code: .notImplemented))
        default:
            return dispatch(question, labels: labels, depth: Self.maxCNAMEDepth, random: &random)
        }
    }

    /// Finds the kind label (`service`, `node`, `addr`, ...) from the right, as Consul does; for SRV
    /// an `_label` also starts an RFC 2782 service name without `.service`.
    private func dispatch(_ question: DNSQuestion, labels: [Substring], depth: Int, random: inout SeededRandom) -> Outcome {
        var index = labels.count - 1
        while index >= 0 {
            let label = labels[index]
            switch label {
            case "service", "node", "addr", "query", "connect", "virtual", "ingress":
                return dispatch(kind: label, parts: labels[..<index], suffixes: labels[(index + 1)...], question, depth: depth, random: &random)
            default:
                if question.type == DNSType.srv.rawValue, label.utf8.first == UInt8(ascii: "_") {
                    return dispatch(kind: "service", parts: labels[...index], suffixes: labels[(index + 1)...], question, depth: depth, random: &random)
                }
            }
            index -= 1
        }
        return .plan(nameError(question))
    }

    private func dispatch(
        kind: Substring, parts: ArraySlice<Substring>, suffixes: ArraySlice<Substring>, _ question: DNSQuestion, depth: Int,
        random: inout SeededRandom
    ) -> Outcome {
        switch kind {
        case "service":
            guard !parts.isEmpty, let datacenter = datacenter(from: suffixes) else { return .plan(nameError(question)) }
            guard isLocal(datacenter) else { return .otherDatacenter(datacenter) }
            let service: Substring
            var tag: Substring?
            if parts.count == 2, parts.first!.hasPrefix("_"), parts.last!.hasPrefix("_") {
                // RFC 2782: _name._tag; `_tcp` means no tag filter.
                service = parts.first!.dropFirst()
                let rfcTag = parts.last!.dropFirst()
                if rfcTag != "tcp" { tag = rfcTag }
            } else {
                // [tag.]name, where the tag may itself contain dots.
                service = parts.last!
                if parts.count > 1 { tag = Substring(parts.dropLast().joined(separator: ".")) }
            }
            return .plan(serviceLookup(String(service), tag: tag, datacenter: datacenter, question, depth: depth, random: &random))
        case "node":
            guard !parts.isEmpty, let datacenter = datacenter(from: suffixes) else { return .plan(nameError(question)) }
            guard isLocal(datacenter) else { return .otherDatacenter(datacenter) }
            return .plan(nodeLookup(parts.joined(separator: "."), question, depth: depth, random: &random))
        case "addr":
            // <hex>.addr[.<dc>].<domain>: the datacenter does not matter, the address is in the name.
            guard parts.count == 1, let address = DNSAddress.fromHex(parts.first!) else { return .plan(nameError(question)) }
            var plan = DNSAnswerPlan(code: .noError)
            let matches =
                question.type == DNSType.any.rawValue || question.type == (address.isV4 ? DNSType.a : DNSType.aaaa).rawValue
            let record = DNSRecord(name: question.originalName, ttl: resolver.settings.nodeTTL, data: .address(address))
            // Consul puts the address in ADDITIONAL when another type was asked.
            if matches { plan.answers = [.init(record: record)] } else { plan.additional = [record] }
            return .plan(plan)
        case "query":
            guard !parts.isEmpty, let datacenter = datacenter(from: suffixes) else { return .plan(nameError(question)) }
            // Other datacenters' queries go where `.service.` lookups for them go.
            guard isLocal(datacenter) else { return .otherDatacenter(datacenter) }
            return .plan(queryLookup(parts.joined(separator: "."), datacenter: datacenter, question, depth: depth, random: &random))
        default:
            // Connect, virtual IPs and ingress are not served: no such name.
            return .plan(nameError(question))
        }
    }

    /// The datacenter named by the labels after the kind: none (ours), `<dc>`, or `<dc>.dc`.
    private func datacenter(from suffixes: ArraySlice<Substring>) -> String? {
        switch suffixes.count {
        case 0: return resolver.settings.datacenter
        case 1: return String(suffixes.first!)
        case 2 where suffixes.last! == "dc": return String(suffixes.first!)
        default: return nil
        }
    }

    private func isLocal(_ datacenter: String) -> Bool {
        datacenter == resolver.settings.datacenter || datacenter.equalsIgnoringASCIICase(resolver.settings.datacenter)
    }

    // MARK: Services

    private func serviceLookup(
        _ service: String, tag: Substring?, datacenter: String, _ question: DNSQuestion, depth: Int,
        random: inout SeededRandom
    ) -> DNSAnswerPlan {
        let instances = catalog.dnsServiceInstances(named: service)
        var picked: [Int] = []
        picked.reserveCapacity(instances.count)
        for index in instances.indices where isHealthy(instances[index].health) {
            if let tag, !instances[index].tags.contains(where: { $0.equalsIgnoringASCIICase(tag) }) { continue }
            picked.append(index)
        }
        return instancePlan(instances, picked, ttl: resolver.settings.serviceTTL(service), shuffle: true, datacenter: datacenter, question, depth: depth, random: &random)
    }

    /// `<name>.query[.<dc>].<domain>`: the prepared query's instances, chosen by the query's own
    /// rules (its OnlyPassing, not the agent's `only_passing`), with its DNS TTL when it sets one.
    private func queryLookup(_ name: String, datacenter: String, _ question: DNSQuestion, depth: Int, random: inout SeededRandom) -> DNSAnswerPlan {
        guard let answer = catalog.dnsPreparedQuery(name) else { return nameError(question) }
        let ttl = answer.ttl ?? resolver.settings.serviceTTL(answer.service)
        return instancePlan(
            answer.instances, Array(answer.instances.indices), ttl: ttl, shuffle: !answer.ordered, datacenter: datacenter, question,
            depth: depth, random: &random)
    }

    /// SRV or address answers for the `picked` instances; NXDOMAIN when none is picked.
    private func instancePlan(
        _ instances: [DNSServiceInstance], _ picked: [Int], ttl: UInt32, shuffle: Bool, datacenter: String, _ question: DNSQuestion,
        depth: Int, random: inout SeededRandom
    ) -> DNSAnswerPlan {
        guard !picked.isEmpty else { return nameError(question) }
        var plan = DNSAnswerPlan(code: .noError, shuffle: shuffle)
        if question.type == DNSType.srv.rawValue {
            plan.answers = srvEntries(instances, picked, datacenter: datacenter, ttl: ttl, question, depth: depth, random: &random)
        } else {
            plan.answers = addressEntries(instances, picked, ttl: ttl, question, depth: depth, random: &random)
        }
        if plan.answers.isEmpty { plan.authority = [soaRecord(question.domain)] }  // NODATA (RFC 2308)
        return plan
    }

    private func isHealthy(_ health: DNSHealth) -> Bool {
        resolver.settings.onlyPassing ? health == .passing : health != .critical
    }

    /// A/AAAA (or CNAME) answers, one per distinct address; a CNAME only when no instance has an
    /// address of the asked family, as Consul.
    private func addressEntries(
        _ instances: [DNSServiceInstance], _ picked: [Int], ttl: UInt32, _ question: DNSQuestion, depth: Int,
        random: inout SeededRandom
    ) -> [DNSAnswerPlan.Entry] {
        var entries: [DNSAnswerPlan.Entry] = []
        entries.reserveCapacity(min(picked.count, DNSLimits.maxAnswers))
        var seen: Set<DNSIP>?  // only for long answers; short ones compare with the entries so far
        var firstCNAME: [DNSRecord]?
        instances.withUnsafeBufferPointer { instances in
            for index in picked where entries.count < DNSLimits.maxAnswers {
                switch address(of: instances[index], question) {
                case .none:
                    continue
                case .ip(let ip):
                    guard let record = ipRecord(ip, question.type, name: question.originalName, ttl: ttl) else { continue }
                    guard Self.firstSighting(of: ip, in: entries, seen: &seen) else { continue }
                    entries.append(.init(record: record))
                case .hostname(let hostname):
                    if firstCNAME == nil {
                        firstCNAME = cname(question.originalName, to: hostname, ttl: ttl, depth: depth, random: &random)
                    }
                }
            }
        }
        if entries.isEmpty, let firstCNAME { return firstCNAME.map { .init(record: $0) } }
        return entries
    }

    private static var linearSearchLimit: Int { 32 }

    private static func firstSighting(of ip: DNSIP, in entries: [DNSAnswerPlan.Entry], seen: inout Set<DNSIP>?) -> Bool {
        if seen == nil, entries.count < linearSearchLimit {
            return !entries.contains { $0.record.data == .address(ip) }
        }
        if seen == nil {
            seen = Set(entries.compactMap { if case .address(let ip) = $0.record.data { ip } else { nil } })
        }
        return seen!.insert(ip).inserted
    }

    private enum InstanceAddress {
        case none
        case ip(DNSIP)
        case hostname(String)
    }

    /// Which address answers for an instance: its own service address, else its node's. A service
    /// address that names the very service asked for means "use the node's address" (Consul).
    private func address(of instance: DNSServiceInstance, _ question: DNSQuestion) -> InstanceAddress {
        let service = instance.serviceAddress
        if !service.isEmpty {
            if let ip = DNSAddress.parse(service) { return .ip(ip) }
            if !trimmedDot(service).equalsIgnoringASCIICase(question.name) { return .hostname(service) }
            if let ip = DNSAddress.parse(instance.node.address) { return .ip(ip) }
            return .hostname(service)
        }
        let node = instance.node.address
        if node.isEmpty { return .none }
        if let ip = DNSAddress.parse(node) { return .ip(ip) }
        return .hostname(node)
    }

    private struct SRVKey: Hashable {
        var node: String
        var address: String
        var port: Int

        init(_ instance: DNSServiceInstance) {
            node = instance.node.name
            address = instance.serviceAddress
            port = instance.port
        }
    }

    /// SRV answers: priority 1, the instance's passing or warning weight, its port, and a target
    /// whose address goes in ADDITIONAL: `<node>.node.<dc>.<domain>` for the node's address,
    /// `<hex>.addr.<dc>.<domain>` for a service address, or the hostname itself.
    /// (Instances are read in place through the buffer, never copied: each copy would retain
    /// a dozen strings, and this runs for every SRV query.)
    private func srvEntries(
        _ instances: [DNSServiceInstance], _ picked: [Int], datacenter: String, ttl: UInt32, _ question: DNSQuestion,
        depth: Int, random: inout SeededRandom
    ) -> [DNSAnswerPlan.Entry] {
        var entries: [DNSAnswerPlan.Entry] = []
        entries.reserveCapacity(min(picked.count, DNSLimits.maxAnswers))
        var seen: Set<SRVKey>?  // only for long answers; short ones compare with earlier instances
        instances.withUnsafeBufferPointer { instances in
            for (position, index) in picked.enumerated() where entries.count < DNSLimits.maxAnswers {
                guard Self.firstSighting(of: position, picked, instances, seen: &seen) else { continue }
                let nodeName = Self.joinedName(instances[index].node.name, "node", datacenter, question.domain)
                let target: String
                var glue: DNSRecord?
                var additional: [DNSRecord] = []
                switch address(of: instances[index], question) {
                case .none:
                    continue
                case .ip(let ip):
                    let serviceAddress = instances[index].serviceAddress
                    target =
                        serviceAddress.isEmpty || DNSAddress.parse(serviceAddress) == nil
                        ? nodeName : Self.joinedName(DNSAddress.hex(ip), "addr", datacenter, question.domain)
                    glue = DNSRecord(name: target, ttl: ttl, data: .address(ip))
                case .hostname(let hostname):
                    target = trimmedDot(hostname)
                    additional = resolveInside(target, depth: depth, ttl: ttl, random: &random)
                }
                if resolver.settings.nodeMetaTXT, !instances[index].node.meta.isEmpty {
                    additional += metaTXT(instances[index].node, name: nodeName, ttl: ttl)
                }
                let weight = instances[index].health == .passing ? instances[index].weightPassing : instances[index].weightWarning
                let srv = DNSRecord(
                    name: question.originalName, ttl: ttl,
                    data: .srv(priority: 1, weight: UInt16(clamping: weight), port: UInt16(clamping: instances[index].port), target: target))
                entries.append(.init(record: srv, glue: glue, additional: additional, key: target))
            }
        }
        return entries
    }

    /// `first.second.third.fourth` written in one allocation (targets are built per answer).
    static func joinedName(_ first: String, _ second: String, _ third: String, _ fourth: String) -> String {
        let length = first.utf8.count + second.utf8.count + third.utf8.count + fourth.utf8.count + 3
        return String(unsafeUninitializedCapacity: length) { buffer in
            var index = 0
            func append(_ part: String.UTF8View) {
                if index > 0 {
                    buffer[index] = UInt8(ascii: ".")
                    index += 1
                }
                for byte in part {
                    buffer[index] = byte
                    index += 1
                }
            }
            append(first.utf8)
            append(second.utf8)
            append(third.utf8)
            append(fourth.utf8)
            return index
        }
    }

    /// Whether `picked[position]` is the first with its node, service address and port (Consul
    /// answers each such triple once). Comparing with the instances picked before it is enough:
    /// each one skipped was equal to one kept.
    private static func firstSighting(
        of position: Int, _ picked: [Int], _ instances: UnsafeBufferPointer<DNSServiceInstance>, seen: inout Set<SRVKey>?
    ) -> Bool {
        let index = picked[position]
        if seen == nil, position < linearSearchLimit {
            for earlier in picked[..<position]
            where instances[earlier].port == instances[index].port && instances[earlier].node.name == instances[index].node.name
                && instances[earlier].serviceAddress == instances[index].serviceAddress
            {
                return false
            }
            return true
        }
        if seen == nil { seen = Set(picked[..<position].map { SRVKey(instances[$0]) }) }
        return seen!.insert(SRVKey(instances[index])).inserted
    }

    // MARK: Nodes

    private func nodeLookup(_ name: String, _ question: DNSQuestion, depth: Int, random: inout SeededRandom) -> DNSAnswerPlan {
        guard let node = catalog.dnsNode(named: name) else { return nameError(question) }
        var plan = DNSAnswerPlan(code: .noError)
        let type = question.type
        let any = DNSType.any.rawValue, txt = DNSType.txt.rawValue
        guard type == any || type == txt || type == DNSType.a.rawValue || type == DNSType.aaaa.rawValue else {
            plan.authority = [soaRecord(question.domain)]
            return plan
        }
        if type != txt {
            plan.answers = nodeRecords(node, type, name: question.originalName, ttl: resolver.settings.nodeTTL, depth: depth, random: &random)
                .map { .init(record: $0) }
        }
        let meta = metaTXT(node, name: question.originalName, ttl: resolver.settings.nodeTTL)
        if type == txt || type == any {
            plan.answers += meta.map { .init(record: $0) }
        } else if resolver.settings.nodeMetaTXT {
            plan.additional = meta
        }
        if plan.answers.isEmpty { plan.authority = [soaRecord(question.domain)] }
        return plan
    }

    /// The node's address record of the asked family, or a CNAME when the node is registered with
    /// a hostname (followed inside our domain).
    private func nodeRecords(
        _ node: DNSNode, _ type: UInt16, name: String, ttl: UInt32, depth: Int, random: inout SeededRandom
    ) -> [DNSRecord] {
        if let ip = DNSAddress.parse(node.address) {
            return ipRecord(ip, type, name: name, ttl: ttl).map { [$0] } ?? []
        }
        guard !node.address.isEmpty else { return [] }
        return cname(name, to: node.address, ttl: ttl, depth: depth, random: &random)
    }

    /// Node meta as TXT: `key=value` with RFC 1464 quoting, or the bare value for `rfc1035-` keys.
    private func metaTXT(_ node: DNSNode, name: String, ttl: UInt32) -> [DNSRecord] {
        node.meta.map { entry in
            let text = entry.key.lowercasedASCII().hasPrefix("rfc1035-") ? entry.value : Self.rfc1464(entry.key, entry.value)
            return DNSRecord(name: name, ttl: ttl, data: .txt([text]))
        }
    }

    /// RFC 1464 attribute=value: a backquote quotes '`', '=' and leading or trailing spaces in the key.
    static func rfc1464(_ key: String, _ value: String) -> String {
        let keyBytes = Array(key.utf8)
        let leading = keyBytes.prefix(while: { $0 == 0x20 }).count
        let trailing = leading == keyBytes.count ? 0 : keyBytes.reversed().prefix(while: { $0 == 0x20 }).count
        var out: [UInt8] = []
        for (index, byte) in keyBytes.enumerated() {
            if byte == UInt8(ascii: "`") || byte == UInt8(ascii: "=") || (byte == 0x20 && (index < leading || index >= keyBytes.count - trailing)) {
                out.append(UInt8(ascii: "`"))
            }
            out.append(byte)
        }
        out.append(UInt8(ascii: "="))
        for byte in value.utf8 {
            if byte == UInt8(ascii: "`") { out.append(byte) }
            out.append(byte)
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: Name servers and SOA

    /// Up to three healthy servers (instances of the `consul` service) as NS records for the
    /// domain, named `<node>.node.<dc>.<domain>`, each with its address as glue.
    private func nameservers(_ domain: String, random: inout SeededRandom) -> [DNSAnswerPlan.Entry] {
        let instances = catalog.dnsServiceInstances(named: Self.serverServiceName)
        var picked = instances.indices.filter { isHealthy(instances[$0].health) }
        picked.shuffle(using: &random)
        var entries: [DNSAnswerPlan.Entry] = []
        for index in picked {
            let node = instances[index].node
            guard node.name.utf8.allSatisfy(Self.isHostnameByte) else { continue }
            let target = Self.joinedName(node.name, "node", node.datacenter, domain).lowercasedASCII()
            guard !entries.contains(where: { $0.key == target }) else { continue }
            let glue = nodeRecords(node, DNSType.any.rawValue, name: target, ttl: resolver.settings.nodeTTL, depth: Self.maxCNAMEDepth, random: &random)
            entries.append(.init(record: DNSRecord(name: domain, ttl: resolver.settings.nodeTTL, data: .ns(target)), additional: glue, key: target))
            if entries.count >= Self.maxNameservers { break }
        }
        return entries
    }

    private static func isHostnameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    func soaRecord(_ domain: String) -> DNSRecord {
        let timers = resolver.settings.soa
        return DNSRecord(
            name: domain, ttl: timers.minimumTTL,
            data: .soa(
                primary: "ns." + domain, mailbox: "hostmaster." + domain, serial: serial,
                refresh: timers.refresh, retry: timers.retry, expire: timers.expire, minimumTTL: timers.minimumTTL))
    }

    func nameError(_ question: DNSQuestion) -> DNSAnswerPlan {
        DNSAnswerPlan(code: .nameError, authority: [soaRecord(question.domain)])
    }

    // MARK: Reverse lookups

    /// PTR for a node's address (always in the primary domain, as Consul); nil when no node has it.
    func reverse(_ question: DNSQuestion) -> DNSAnswerPlan? {
        guard let ip = DNSAddress.fromReverseName(question.name) else { return nil }
        let nodes = catalog.dnsNodes(withAddress: DNSAddress.text(ip))
        guard let node = nodes.first(where: { DNSAddress.parse($0.address) == ip }) ?? nodes.first else { return nil }
        var plan = DNSAnswerPlan(code: .noError)
        if question.type == DNSType.ptr.rawValue || question.type == DNSType.any.rawValue {
            let target = "\(node.name).node.\(node.datacenter).\(resolver.settings.domain)"
            plan.answers = [.init(record: DNSRecord(name: question.originalName, ttl: 0, data: .ptr(target)))]
        }
        return plan
    }

    // MARK: Records

    /// An A or AAAA record for `ip` if the asked type takes that family (Consul's table: A and
    /// AAAA take their own, ANY, SRV, NS and TXT take both).
    private func ipRecord(_ ip: DNSIP, _ type: UInt16, name: String, ttl: UInt32) -> DNSRecord? {
        let both =
            type == DNSType.any.rawValue || type == DNSType.srv.rawValue || type == DNSType.ns.rawValue
            || type == DNSType.txt.rawValue
        guard both || type == (ip.isV4 ? DNSType.a : DNSType.aaaa).rawValue else { return nil }
        return DNSRecord(name: name, ttl: ttl, data: .address(ip))
    }

    private func cname(_ name: String, to target: String, ttl: UInt32, depth: Int, random: inout SeededRandom) -> [DNSRecord] {
        let target = trimmedDot(target)
        return [DNSRecord(name: name, ttl: ttl, data: .cname(target))] + resolveInside(target, depth: depth, ttl: ttl, random: &random)
    }

    /// The answers for a CNAME or SRV target that lies inside one of our domains (an ANY lookup,
    /// one level deeper); names elsewhere are left to the client.
    private func resolveInside(_ target: String, depth: Int, ttl: UInt32, random: inout SeededRandom) -> [DNSRecord] {
        guard depth > 0 else { return [] }
        let name = target.lowercasedASCII()
        guard let zone = DNSResolver.zone(of: name, settings: resolver.settings) else { return [] }
        let question = DNSQuestion(name: name, originalName: target, type: DNSType.any.rawValue, domain: zone.domain)
        guard case .plan(var plan) = dispatch(question, labels: zone.labels, depth: depth - 1, random: &random) else { return [] }
        if plan.shuffle { plan.answers.shuffle(using: &random) }
        return plan.answers.map {
            var record = $0.record
            record.ttl = ttl
            return record
        }
    }

    private func trimmedDot(_ name: String) -> String {
        name.hasSuffix(".") ? String(name.dropLast()) : name
    }
}

extension StringProtocol {
    /// ASCII case-insensitive equality (DNS names and Consul tags compare this way).
    func equalsIgnoringASCIICase(_ other: some StringProtocol) -> Bool {
        let lhs = utf8, rhs = other.utf8
        guard lhs.count == rhs.count else { return false }
        for (a, b) in zip(lhs, rhs) where a != b {
            let la = a >= 0x41 && a <= 0x5A ? a | 0x20 : a
            let lb = b >= 0x41 && b <= 0x5A ? b | 0x20 : b
            if la != lb { return false }
        }
        return true
    }
}
