/// Consul's JSON shapes for catalog records, shared by the catalog, health and agent endpoints.
enum CatalogJSON {
    static func node(_ node: CatalogNode, into writer: inout JSONWriter) {
        writer.object { w in
            w.field("ID") { $0.string(node.id) }
            w.field("Node") { $0.string(node.name) }
            w.field("Address") { $0.string(node.address) }
            w.field("Datacenter") { $0.string(node.datacenter) }
            w.field("TaggedAddresses") { $0.stringMap(node.taggedAddresses) }
            w.field("Meta") { $0.stringMap(node.meta) }
            w.field("CreateIndex") { $0.int(node.indexes.createIndex) }
            w.field("ModifyIndex") { $0.int(node.indexes.modifyIndex) }
        }
    }

    static func weights(_ weights: ServiceWeights, into writer: inout JSONWriter) {
        writer.object { w in
            w.field("Passing") { $0.int(weights.passing) }
            w.field("Warning") { $0.int(weights.warning) }
        }
    }

    /// A service as `/v1/catalog/node/:n` and `/v1/health/service/:s` show it; without indexes, as a
    /// catalog registration carries it (Consul's `NodeService`, also the agent's persisted files).
    static func service(_ service: CatalogService, into writer: inout JSONWriter, withIndexes: Bool = true) {
        writer.object { w in
            w.field("ID") { $0.string(service.id) }
            w.field("Service") { $0.string(service.name) }
            w.field("Tags") { $0.strings(service.tags) }
            w.field("Address") { $0.string(service.address) }
            w.field("Meta") { $0.stringMap(service.meta) }
            w.field("Port") { $0.int(service.port) }
            w.field("Weights") { weights(service.weights, into: &$0) }
            w.field("EnableTagOverride") { $0.bool(service.enableTagOverride) }
            if withIndexes {
                w.field("CreateIndex") { $0.int(service.indexes.createIndex) }
                w.field("ModifyIndex") { $0.int(service.indexes.modifyIndex) }
            }
        }
    }

    /// One row of `/v1/catalog/service/:s`: the node's fields and the service's, flattened.
    static func serviceNode(_ service: CatalogService, node: CatalogNode, into writer: inout JSONWriter) {
        writer.object { w in
            w.field("ID") { $0.string(node.id) }
            w.field("Node") { $0.string(node.name) }
            w.field("Address") { $0.string(node.address) }
            w.field("Datacenter") { $0.string(node.datacenter) }
            w.field("TaggedAddresses") { $0.stringMap(node.taggedAddresses) }
            w.field("NodeMeta") { $0.stringMap(node.meta) }
            w.field("ServiceKind") { $0.string("") }
            w.field("ServiceID") { $0.string(service.id) }
            w.field("ServiceName") { $0.string(service.name) }
            w.field("ServiceTags") { $0.strings(service.tags) }
            w.field("ServiceAddress") { $0.string(service.address) }
            w.field("ServiceWeights") { weights(service.weights, into: &$0) }
            w.field("ServiceMeta") { $0.stringMap(service.meta) }
            w.field("ServicePort") { $0.int(service.port) }
            w.field("ServiceEnableTagOverride") { $0.bool(service.enableTagOverride) }
            w.field("CreateIndex") { $0.int(service.indexes.createIndex) }
            w.field("ModifyIndex") { $0.int(service.indexes.modifyIndex) }
        }
    }

    /// A check as the catalog shows it; `agentView`: as `/v1/agent/checks` does (the agent's own
    /// copy has no Raft indexes, and shows the exposed port and definition fields).
    static func check(_ check: HealthCheck, into writer: inout JSONWriter, agentView: Bool = false) {
        writer.object { w in
            w.field("Node") { $0.string(check.node) }
            w.field("CheckID") { $0.string(check.id) }
            w.field("Name") { $0.string(check.name) }
            w.field("Status") { $0.string(check.status.rawValue) }
            w.field("Notes") { $0.string(check.notes) }
            w.field("Output") { $0.string(check.output) }
            w.field("ServiceID") { $0.string(check.serviceID) }
            w.field("ServiceName") { $0.string(check.serviceName) }
            w.field("ServiceTags") { $0.strings(check.serviceTags) }
            w.field("Type") { $0.string(check.type) }
            w.field("Interval") { $0.string(check.interval) }
            w.field("Timeout") { $0.string(check.timeout) }
            if agentView {
                w.field("ExposedPort") { $0.int(0) }
                w.field("Definition") { $0.object { _ in } }
            }
            w.field("CreateIndex") { $0.int(agentView ? 0 : check.indexes.createIndex) }
            w.field("ModifyIndex") { $0.int(agentView ? 0 : check.indexes.modifyIndex) }
        }
    }

    static func checks(_ checks: [HealthCheck], into writer: inout JSONWriter) {
        writer.array { for check in checks { CatalogJSON.check(check, into: &$0) } }
    }
}
