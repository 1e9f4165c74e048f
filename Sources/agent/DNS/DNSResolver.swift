import ConsulCore

/// The DNS settings the resolver needs, taken once from the agent's configuration.
struct DNSResolverSettings: Equatable, Sendable {
    /// Consul's `dns_config.soa` timers; the defaults are Consul's.
    struct SOATimers: Equatable, Sendable {
        var refresh: UInt32 = 3600
        var retry: UInt32 = 600
        var expire: UInt32 = 86400
        /// Also the TTL of the SOA record itself, as in Consul.
        var minimumTTL: UInt32 = 0
    }

    struct ServiceTTLPrefix: Equatable, Sendable {
        var prefix: String
        var ttl: UInt32
    }

    /// Lower-case, no leading or trailing dot: "consul".
    var domain: String
    var altDomain: String?
    var datacenter: String
    var nodeTTL: UInt32 = 0
    /// `service_ttl` entries without a `*`, by lower-cased service name.
    var serviceTTLExact: [String: UInt32] = [:]
    /// `service_ttl` entries ending in `*` (the key `*` alone is the empty prefix), longest first.
    var serviceTTLPrefixes: [ServiceTTLPrefix] = []
    var udpAnswerLimit = 3
    var enableTruncate = false
    var onlyPassing = false
    /// Consul's `enable_additional_node_meta_txt` (default true): node meta as TXT in ADDITIONAL.
    var nodeMetaTXT = true
    /// Whether names outside our domains go to recursors (else REFUSED); also the RA bit.
    var recursorsConfigured = false
    var soa = SOATimers()

    init(domain: String = "consul", altDomain: String? = nil, datacenter: String = "dc1") {
        self.domain = Self.normalizedDomain(domain)
        self.altDomain = altDomain.map(Self.normalizedDomain).flatMap { $0.isEmpty ? nil : $0 }
        self.datacenter = datacenter
    }

    init(config: AgentConfig) {
        self.init(domain: config.domain, altDomain: config.altDomain, datacenter: config.datacenter)
        nodeTTL = Self.seconds(config.dns.nodeTTL)
        setServiceTTLs(config.dns.serviceTTL)
        udpAnswerLimit = config.dns.udpAnswerLimit
        enableTruncate = config.dns.enableTruncate
        onlyPassing = config.dns.onlyPassing
        recursorsConfigured = !config.recursors.isEmpty
    }

    mutating func setServiceTTLs(_ ttls: [String: Duration]) {
        serviceTTLExact = [:]
        serviceTTLPrefixes = []
        for (key, duration) in ttls {
            let name = key.lowercasedASCII()
            if name.hasSuffix("*") {
                serviceTTLPrefixes.append(ServiceTTLPrefix(prefix: String(name.dropLast()), ttl: Self.seconds(duration)))
            } else {
                serviceTTLExact[name] = Self.seconds(duration)
            }
        }
        serviceTTLPrefixes.sort { ($0.prefix.utf8.count, $1.prefix) > ($1.prefix.utf8.count, $0.prefix) }
    }

    /// Consul's rule: an exact `service_ttl` entry wins, then the longest matching `prefix*`, else 0.
    func serviceTTL(_ service: String) -> UInt32 {
        if let ttl = serviceTTLExact[service] { return ttl }
        for entry in serviceTTLPrefixes where service.hasPrefix(entry.prefix) { return entry.ttl }
        return 0
    }

    static func seconds(_ duration: Duration) -> UInt32 {
        UInt32(clamping: max(0, duration.components.seconds))
    }

    static func normalizedDomain(_ domain: String) -> String {
        String(domain.lowercasedASCII().split(separator: ".", omittingEmptySubsequences: true).joined(separator: "."))
    }
}

/// How the query arrived: UDP answers are trimmed to the client's buffer, TCP only to 64 KiB.
enum DNSTransport: Sendable {
    case udp, tcp
}

/// What the server does with one packet.
enum DNSResolution: Equatable, Sendable {
    /// Send these bytes back; `code` is the response's RCODE, for the counters.
    case respond([UInt8], DNSResponseCode)
    /// A name outside our domains (or an unknown reverse name) with recursors configured: relay the
    /// packet to them and the first good answer back (`DNSResolver.serverFailure` when all fail).
    case forward(DNSQuery)
    /// A lookup in another datacenter. The seam for WAN forwarding: until then the server answers
    /// `DNSResolver.nameError(for:)`, NXDOMAIN as Consul does for a datacenter it has no path to.
    case otherDatacenter(String, DNSQuery)
    /// Nothing to answer: no readable header, or the packet is itself a response.
    case drop(DNSParseError)
}

/// Consul's DNS interface as a pure function: (query bytes, catalog snapshot, settings, seeded
/// random) → response bytes or what to do instead. No clock (the SOA serial comes in), no I/O, no
/// dictionary-order output, so the same inputs always give the same bytes.
final class DNSResolver: Sendable {
    let settings: DNSResolverSettings

    init(settings: DNSResolverSettings) {
        self.settings = settings
    }

    /// Parses and answers one packet. `serial` is the SOA serial (Consul uses the current Unix time).
    /// `memo` keeps answers compiled for the catalog's generation between calls (a shell keeps
    /// one per event loop); the bytes returned are the same with or without it.
    func resolve(
        _ packet: [UInt8], transport: DNSTransport, catalog: some DNSCatalogView, serial: UInt32,
        random: inout SeededRandom, memo: inout DNSAnswerMemo
    ) -> DNSResolution {
        let query: DNSQuery
        do {
            query = try DNSQuery.parse(packet)
        } catch {
            return failure(error, packet: packet)
        }
        return resolve(query, transport: transport, catalog: catalog, serial: serial, random: &random, memo: &memo)
    }

    func resolve(
        _ packet: [UInt8], transport: DNSTransport, catalog: some DNSCatalogView, serial: UInt32,
        random: inout SeededRandom
    ) -> DNSResolution {
        var memo = DNSAnswerMemo()
        return resolve(packet, transport: transport, catalog: catalog, serial: serial, random: &random, memo: &memo)
    }

    /// FORMERR (or NOTIMP for another opcode) when a header can be read; a response, or fewer than
    /// 12 bytes, is dropped so we never answer an answer (no reflection loops between servers).
    private func failure(_ error: DNSParseError, packet: [UInt8]) -> DNSResolution {
        guard packet.count >= 12, packet[2] & 0x80 == 0 else { return .drop(error) }
        let id = UInt16(packet[0]) << 8 | UInt16(packet[1])
        let code: DNSResponseCode = if case .unsupportedOpcode = error { .notImplemented } else { .formatError }
        var response = DNSResponseWriter.errorResponse(id: id, code: code)
        response[2] |= packet[2] & 0x79  // echo opcode and RD
        return .respond(response, code)
    }

    func resolve(
        _ query: DNSQuery, transport: DNSTransport, catalog: some DNSCatalogView, serial: UInt32,
        random: inout SeededRandom, memo: inout DNSAnswerMemo
    ) -> DNSResolution {
        // The hot path: an answer already compiled for this catalog generation (only names in our
        // domains are ever compiled). Only for answers small enough that every SRV target can be
        // the target of a compression pointer.
        let generation = limit(query, transport) < DNSLimits.maxCompressionOffset ? catalog.dnsGeneration : nil
        if let generation, case .some(.some(let compiled)) = memo.answer(for: query, generation: generation) {
            return .respond(encode(compiled, query: query, transport: transport, random: &random), .noError)
        }
        let lookup = DNSLookup(resolver: self, catalog: catalog, serial: serial)
        guard let zone = Self.zone(of: query.name, settings: settings) else {
            if query.name == "arpa" || query.name.hasSuffix(".arpa") {
                let question = DNSQuestion(name: query.name, originalName: query.originalName, type: query.type, domain: settings.domain)
                if let plan = lookup.reverse(question) { return render(plan, query: query, transport: transport, random: &random) }
                if !settings.recursorsConfigured {
                    return render(lookup.nameError(question), query: query, transport: transport, random: &random)
                }
            }
            if settings.recursorsConfigured { return .forward(query) }
            return .respond(bareResponse(query, code: .refused, authoritative: false), .refused)
        }
        let question = DNSQuestion(name: query.name, originalName: query.originalName, type: query.type, domain: zone.domain)
        switch lookup.answer(question, labels: zone.labels, random: &random) {
        case .plan(let plan):
            if let generation {
                let compiled = DNSCompiledAnswer(plan, query: query, settings: settings)
                memo.store(compiled, for: query, generation: generation)
                if let compiled { return .respond(encode(compiled, query: query, transport: transport, random: &random), .noError) }
            }
            return render(plan, query: query, transport: transport, random: &random)
        case .otherDatacenter(let datacenter):
            return .otherDatacenter(datacenter, query)
        }
    }

    func resolve(
        _ query: DNSQuery, transport: DNSTransport, catalog: some DNSCatalogView, serial: UInt32,
        random: inout SeededRandom
    ) -> DNSResolution {
        var memo = DNSAnswerMemo()
        return resolve(query, transport: transport, catalog: catalog, serial: serial, random: &random, memo: &memo)
    }

    /// NXDOMAIN with the SOA in AUTHORITY: the answer for names that do not exist, and for now for
    /// every lookup in another datacenter.
    func nameError(for query: DNSQuery, serial: UInt32) -> [UInt8] {
        let domain = Self.zone(of: query.name, settings: settings)?.domain ?? settings.domain
        let lookup = DNSLookup(resolver: self, catalog: DNSEmptyCatalog(), serial: serial)
        let question = DNSQuestion(name: query.name, originalName: query.originalName, type: query.type, domain: domain)
        var unused = SeededRandom(seed: 0)  // nothing to shuffle in an error
        return encode(lookup.nameError(question), query: query, transport: .udp, random: &unused)
    }

    /// SERVFAIL, for a forwarded query no recursor answered.
    func serverFailure(for query: DNSQuery) -> [UInt8] {
        bareResponse(query, code: .serverFailure, authoritative: false)
    }

    /// Which of our domains `name` is in (alt_domain answered like domain, the longer one tried
    /// first as Consul does), and the labels before it.
    static func zone(of name: String, settings: DNSResolverSettings) -> (domain: String, labels: [Substring])? {
        if let alt = settings.altDomain, alt.utf8.count > settings.domain.utf8.count, let labels = labels(of: name, before: alt) {
            return (alt, labels)
        }
        if let labels = labels(of: name, before: settings.domain) { return (settings.domain, labels) }
        if let alt = settings.altDomain, let labels = labels(of: name, before: alt) { return (alt, labels) }
        return nil
    }

    /// The labels of `name` in front of `domain`, or nil when `name` is not inside it.
    private static func labels(of name: String, before domain: String) -> [Substring]? {
        let nameBytes = name.utf8
        let domainBytes = domain.utf8
        if nameBytes.count == domainBytes.count { return nameBytes.elementsEqual(domainBytes) ? [] : nil }
        guard nameBytes.count > domainBytes.count + 1 else { return nil }
        let dot = nameBytes.index(nameBytes.endIndex, offsetBy: -(domainBytes.count + 1))
        guard nameBytes[dot] == UInt8(ascii: "."), nameBytes[nameBytes.index(after: dot)...].elementsEqual(domainBytes) else {
            return nil
        }
        return name[name.startIndex..<dot].split(separator: ".", omittingEmptySubsequences: false)
    }

    /// How many answers a response can use at most: Consul cuts UDP answers to a classic
    /// 512-byte client to `udp_answer_limit` (itself capped at 8).
    func answerCap(_ query: DNSQuery, _ transport: DNSTransport) -> Int {
        if transport == .udp, query.udpLimit <= DNSLimits.classicUDPSize {
            return max(1, min(settings.udpAnswerLimit, DNSLimits.maxUDPAnswerLimit))
        }
        return DNSLimits.maxAnswers
    }

    private func bareResponse(_ query: DNSQuery, code: DNSResponseCode, authoritative: Bool) -> [UInt8] {
        var writer = DNSResponseWriter(
            query: query, code: code, authoritative: authoritative, recursionAvailable: settings.recursorsConfigured,
            sizeLimit: DNSLimits.classicUDPSize)
        if query.ednsUDPSize != nil { writer.add(optRecord(for: query), to: .additional) }
        return writer.finish()
    }

    func optRecord(for query: DNSQuery) -> DNSRecord {
        DNSRecord(name: "", ttl: 0, data: .opt(udpPayloadSize: UInt16(clamping: query.udpLimit)))
    }
}

// MARK: Encoding and trimming

extension DNSResolver {
    func render(_ plan: DNSAnswerPlan, query: DNSQuery, transport: DNSTransport, random: inout SeededRandom) -> DNSResolution {
        .respond(encode(plan, query: query, transport: transport, random: &random), plan.code)
    }

    /// Writes the plan within the transport's size limit. When it does not fit, AUTHORITY and the
    /// loose ADDITIONAL records go first, then answers from the end (found by bisection, so even a
    /// TCP answer with thousands of records is encoded only a few times), each taking its own
    /// ADDITIONAL records with it. Fewer answers than planned sets TC when `enable_truncate` is on.
    /// Shuffled plans are shuffled here, then cut to the answer cap (which also counts as cut).
    func encode(_ plan: consuming DNSAnswerPlan, query: DNSQuery, transport: DNSTransport, random: inout SeededRandom) -> [UInt8] {
        let limit = limit(query, transport)
        if plan.shuffle { plan.answers.shuffle(using: &random) }
        let cap = answerCap(query, transport)
        let cut = plan.answers.count > cap
        if cut { plan.answers.removeSubrange(cap...) }
        let planned = plan.answers.count
        if var writer = attempt(plan, query: query, limit: limit, answers: planned, extras: true) {
            return writer.finish(truncated: cut && settings.enableTruncate)
        }
        if var writer = attempt(plan, query: query, limit: limit, answers: planned, extras: false) {
            return writer.finish(truncated: cut && settings.enableTruncate)
        }
        // The largest count that fits lies in [low, high): zero answers always fit.
        var low = 0
        var high = planned
        var best = attempt(plan, query: query, limit: limit, answers: 0, extras: false)
        while high - low > 1 {
            let middle = (low + high) / 2
            if let writer = attempt(plan, query: query, limit: limit, answers: middle, extras: false) {
                low = middle
                best = writer
            } else {
                high = middle
            }
        }
        guard var best else {
            // Not even the question fits (a client buffer below 512 cannot happen: udpLimit >= 512).
            return DNSResponseWriter.errorResponse(id: query.id, code: .serverFailure)
        }
        return best.finish(truncated: settings.enableTruncate)
    }

    /// The most bytes an answer may have: the client's UDP buffer, or 64 KiB over TCP.
    func limit(_ query: DNSQuery, _ transport: DNSTransport) -> Int {
        transport == .tcp ? DNSLimits.maxMessageSize : min(query.udpLimit, DNSLimits.maxUDPResponseSize)
    }

    /// One try at writing the first `answers` answers; nil when something does not fit. (Entries
    /// are read in place by index: copying one would retain every string in it.)
    private func attempt(_ plan: DNSAnswerPlan, query: DNSQuery, limit: Int, answers: Int, extras: Bool) -> DNSResponseWriter? {
        var writer = DNSResponseWriter(
            query: query, code: plan.code, authoritative: true, recursionAvailable: settings.recursorsConfigured, sizeLimit: limit)
        let entries = plan.answers
        // Where each SRV target landed, so its glue record points there without a search.
        var targets: [Int?] = []
        targets.reserveCapacity(answers)
        for index in 0..<answers {
            guard writer.add(entries[index].record, to: .answer) else { return nil }
            if case .srv = entries[index].record.data { targets.append(writer.lastTargetOffset) } else { targets.append(nil) }
        }
        if extras {
            for index in plan.authority.indices where !writer.add(plan.authority[index], to: .authority) { return nil }
        }
        var written: Set<String>?  // only for long answers; short ones compare with earlier entries
        for index in 0..<answers where entries[index].glue != nil || !entries[index].additional.isEmpty {
            if let key = entries[index].key, !Self.firstSighting(of: key, at: index, in: entries, seen: &written) { continue }
            if let glue = entries[index].glue {
                // The first entry with this target wrote it: that is where the glue's name is.
                let targetOffset: Int? =
                    if case .srv(_, _, _, let target) = entries[index].record.data, glue.name == target { targets[index] } else { nil }
                guard writer.add(glue, to: .additional, nameAt: targetOffset) else { return nil }
            }
            for record in entries[index].additional where !writer.add(record, to: .additional) { return nil }
        }
        if extras {
            for index in plan.additional.indices where !writer.add(plan.additional[index], to: .additional) { return nil }
        }
        if query.ednsUDPSize != nil, !writer.add(optRecord(for: query), to: .additional) { return nil }
        return writer
    }
}

extension DNSResolver {
    /// Whether no entry before `position` has `key`: linear for the usual handful, hashed beyond.
    fileprivate static func firstSighting(of key: String, at position: Int, in entries: [DNSAnswerPlan.Entry], seen: inout Set<String>?)
        -> Bool
    {
        if seen == nil, position < 32 {
            for index in 0..<position where entries[index].key == key { return false }
            return true
        }
        if seen == nil { seen = Set(entries[..<position].compactMap(\.key)) }
        return seen!.insert(key).inserted
    }
}

/// A catalog with nothing in it, for answers that never read one.
struct DNSEmptyCatalog: DNSCatalogView {
    func dnsNode(named name: String) -> DNSNode? { nil }
    func dnsServiceInstances(named name: String) -> [DNSServiceInstance] { [] }
    func dnsNodes(withAddress address: String) -> [DNSNode] { [] }
}
