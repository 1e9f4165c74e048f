import ConsulCore

/// Definitions written as the HTTP API's registration bodies (`consul services register` reads a
/// config file and sends the service in this shape).
enum DefinitionJSON {
    static func service(_ service: ServiceDefinition) -> [UInt8] {
        var writer = JSONWriter()
        writer.object { w in
            if !service.id.isEmpty { w.field("ID") { $0.string(service.id) } }
            w.field("Name") { $0.string(service.name) }
            w.field("Tags") { $0.strings(service.tags) }
            w.field("Address") { $0.string(service.address) }
            w.field("Port") { $0.int(service.port) }
            w.field("Meta") { $0.stringMap(service.meta) }
            w.field("Weights") { CatalogJSON.weights(service.weights, into: &$0) }
            w.field("EnableTagOverride") { $0.bool(service.enableTagOverride) }
            if !service.checks.isEmpty {
                w.field("Checks") { list in list.array { for check in service.checks { Self.check(check, into: &$0) } } }
            }
        }
        return writer.bytes
    }

    static func check(_ check: CheckDefinition, into writer: inout JSONWriter) {
        writer.object { w in
            if !check.id.isEmpty { w.field("CheckID") { $0.string(check.id) } }
            if !check.name.isEmpty { w.field("Name") { $0.string(check.name) } }
            if !check.serviceID.isEmpty { w.field("ServiceID") { $0.string(check.serviceID) } }
            if !check.notes.isEmpty { w.field("Notes") { $0.string(check.notes) } }
            w.field("Status") { $0.string(check.initialStatus.rawValue) }
            switch check.kind {
            case .http(let probe):
                w.field("HTTP") { $0.string(probe.url) }
                w.field("Method") { $0.string(probe.method) }
                if !probe.body.isEmpty { w.field("Body") { $0.string(probe.body) } }
                if !probe.headers.isEmpty {
                    w.field("Header") { h in h.object { o in for (name, values) in probe.headers { o.field(dynamic: name) { $0.strings(values) } } } }
                }
                w.field("TLSSkipVerify") { $0.bool(probe.tlsSkipVerify) }
                if !probe.tlsServerName.isEmpty { w.field("TLSServerName") { $0.string(probe.tlsServerName) } }
            case .tcp(let address): w.field("TCP") { $0.string(address) }
            case .udp(let address): w.field("UDP") { $0.string(address) }
            case .ttl(let ttl): w.field("TTL") { $0.string(GoDuration.format(ttl)) }
            case .script(let args): w.field("Args") { $0.strings(args) }
            case .alias(let target):
                if !target.node.isEmpty { w.field("AliasNode") { $0.string(target.node) } }
                if !target.serviceID.isEmpty { w.field("AliasService") { $0.string(target.serviceID) } }
            }
            if let interval = check.interval { w.field("Interval") { $0.string(GoDuration.format(interval)) } }
            if let timeout = check.timeout { w.field("Timeout") { $0.string(GoDuration.format(timeout)) } }
            if check.successBeforePassing > 0 { w.field("SuccessBeforePassing") { $0.int(check.successBeforePassing) } }
            if check.failuresBeforeWarning > 0 { w.field("FailuresBeforeWarning") { $0.int(check.failuresBeforeWarning) } }
            if check.failuresBeforeCritical > 0 { w.field("FailuresBeforeCritical") { $0.int(check.failuresBeforeCritical) } }
            if let after = check.deregisterCriticalServiceAfter {
                w.field("DeregisterCriticalServiceAfter") { $0.string(GoDuration.format(after)) }
            }
        }
    }
}
