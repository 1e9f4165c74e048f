import ConsulCore

// Serf's messages (serf 0.9.4 serf/messages.go and friends). They ride inside memberlist user
// messages as `[serf type][msgpack body]`; query payloads and responses reuse the same framing for
// key management and conflict resolution. Fields are written in go-msgpack order (sorted by name).

/// The first byte of a serf message (`messageType` in serf/messages.go).
package enum SerfMessageType: UInt8, Sendable, CaseIterable {
    case leave = 0
    case join = 1
    case pushPull = 2
    case userEvent = 3
    case query = 4
    case queryResponse = 5
    case conflictResponse = 6
    case keyRequest = 7
    case keyResponse = 8
    case relay = 9
}

/// Serf's built-in queries (serf/internal_query.go). Their names carry the `_serf_` prefix;
/// key-management ones carry `[7][keyRequest]` payloads and are answered with
/// `[8][nodeKeyResponse]`, the conflict query carries a node name and is answered with
/// `[6][Member or nil]`.
package enum SerfInternalQuery: String, Sendable, CaseIterable {
    case ping = "_serf_ping"
    case conflict = "_serf_conflict"
    case installKey = "_serf_install-key"
    case useKey = "_serf_use-key"
    case removeKey = "_serf_remove-key"
    case listKeys = "_serf_list-keys"

    /// Queries whose name starts with this are handled by serf itself, not delivered to users.
    package static let prefix = "_serf_"
}

/// Serf's Lamport clocks are Go `uint64`s.
package typealias LamportTime = UInt64

/// `messageJoin`: `node` joined at membership time `lamportTime`.
package struct SerfJoinMessage: MessagePackStruct, Hashable, Sendable {
    package var lamportTime: LamportTime
    package var node: String

    package init(lamportTime: LamportTime, node: String) {
        self.lamportTime = lamportTime
        self.node = node
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(2)
        writer.writeKey("LTime"); writer.writeUInt(lamportTime)
        writer.writeKey("Node"); writer.writeString(node)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(lamportTime: 0, node: "")
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "LTime": lamportTime = try reader.readInteger()
            case "Node": node = try reader.readString()
            default: try reader.skipValue()
            }
        }
    }
}

/// `messageLeave`: `node` intends to leave; `prune` asks members to forget it at once (force-leave -prune).
package struct SerfLeaveMessage: MessagePackStruct, Hashable, Sendable {
    package var lamportTime: LamportTime
    package var node: String
    package var prune: Bool

    package init(lamportTime: LamportTime, node: String, prune: Bool = false) {
        self.lamportTime = lamportTime
        self.node = node
        self.prune = prune
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(3)
        writer.writeKey("LTime"); writer.writeUInt(lamportTime)
        writer.writeKey("Node"); writer.writeString(node)
        writer.writeKey("Prune"); writer.writeBool(prune)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(lamportTime: 0, node: "")
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "LTime": lamportTime = try reader.readInteger()
            case "Node": node = try reader.readString()
            case "Prune": prune = try reader.readBool()
            default: try reader.skipValue()
            }
        }
    }
}

/// `messageUserEvent`: a user event; `canCoalesce` (`CC`) lets receivers merge same-named events.
package struct SerfUserEventMessage: MessagePackStruct, Hashable, Sendable {
    package var lamportTime: LamportTime
    package var name: String
    package var payload: [UInt8]
    package var canCoalesce: Bool

    package init(lamportTime: LamportTime, name: String, payload: [UInt8], canCoalesce: Bool) {
        self.lamportTime = lamportTime
        self.name = name
        self.payload = payload
        self.canCoalesce = canCoalesce
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(4)
        writer.writeKey("CC"); writer.writeBool(canCoalesce)
        writer.writeKey("LTime"); writer.writeUInt(lamportTime)
        writer.writeKey("Name"); writer.writeString(name)
        writer.writeKey("Payload"); writer.writeBytesField(payload)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(lamportTime: 0, name: "", payload: [], canCoalesce: false)
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "LTime": lamportTime = try reader.readInteger()
            case "Name": name = try reader.readString()
            case "Payload": payload = try reader.readBytes()
            case "CC": canCoalesce = try reader.readBool()
            default: try reader.skipValue()
            }
        }
    }
}

/// `messageQuery`: a query that responders answer point-to-point at `addr:port` (`sourceNode`).
package struct SerfQueryMessage: MessagePackStruct, Hashable, Sendable {
    /// Flag bit: the sender wants an ack from each node that receives the query.
    package static let flagAck: UInt32 = 1 << 0
    /// Flag bit: receivers must not re-broadcast the query.
    package static let flagNoBroadcast: UInt32 = 1 << 1

    package var lamportTime: LamportTime
    package var id: UInt32
    package var addr: [UInt8]
    package var port: UInt16
    package var sourceNode: String
    /// Encoded filters, each `SerfQueryFilter.encoded`.
    package var filters: [[UInt8]]
    package var flags: UInt32
    package var relayFactor: UInt8
    /// Go `time.Duration`: nanoseconds.
    package var timeoutNanoseconds: Int64
    package var name: String
    package var payload: [UInt8]

    package init(
        lamportTime: LamportTime, id: UInt32, addr: [UInt8], port: UInt16, sourceNode: String,
        filters: [[UInt8]] = [], flags: UInt32 = 0, relayFactor: UInt8 = 0, timeoutNanoseconds: Int64,
        name: String, payload: [UInt8] = []
    ) {
        self.lamportTime = lamportTime
        self.id = id
        self.addr = addr
        self.port = port
        self.sourceNode = sourceNode
        self.filters = filters
        self.flags = flags
        self.relayFactor = relayFactor
        self.timeoutNanoseconds = timeoutNanoseconds
        self.name = name
        self.payload = payload
    }

    package var wantsAck: Bool { flags & Self.flagAck != 0 }
    package var noBroadcast: Bool { flags & Self.flagNoBroadcast != 0 }

    /// The timeout as a Swift duration.
    package var timeout: Duration { .nanoseconds(timeoutNanoseconds) }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(11)
        writer.writeKey("Addr"); writer.writeBytesField(addr)
        writer.writeKey("Filters")
        if filters.isEmpty {
            writer.writeNil()
        } else {
            writer.writeArrayHeader(filters.count)
            for filter in filters { writer.writeRaw(filter) }
        }
        writer.writeKey("Flags"); writer.writeUInt(flags)
        writer.writeKey("ID"); writer.writeUInt(id)
        writer.writeKey("LTime"); writer.writeUInt(lamportTime)
        writer.writeKey("Name"); writer.writeString(name)
        writer.writeKey("Payload"); writer.writeBytesField(payload)
        writer.writeKey("Port"); writer.writeUInt(port)
        writer.writeKey("RelayFactor"); writer.writeUInt(relayFactor)
        writer.writeKey("SourceNode"); writer.writeString(sourceNode)
        writer.writeKey("Timeout"); writer.writeInt(timeoutNanoseconds)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(lamportTime: 0, id: 0, addr: [], port: 0, sourceNode: "", timeoutNanoseconds: 0, name: "")
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "LTime": lamportTime = try reader.readInteger()
            case "ID": id = try reader.readInteger()
            case "Addr": addr = try reader.readBytes()
            case "Port": port = try reader.readInteger()
            case "SourceNode": sourceNode = try reader.readString()
            case "Filters": filters = try reader.readBytesArray()
            case "Flags": flags = try reader.readInteger()
            case "RelayFactor": relayFactor = try reader.readInteger()
            case "Timeout": timeoutNanoseconds = try reader.readInteger()
            case "Name": name = try reader.readString()
            case "Payload": payload = try reader.readBytes()
            default: try reader.skipValue()
            }
        }
    }
}

/// `messageQueryResponse`: one node's answer (or ack, with `flagAck`) to query `id`.
package struct SerfQueryResponseMessage: MessagePackStruct, Hashable, Sendable {
    package var lamportTime: LamportTime
    package var id: UInt32
    package var from: String
    package var flags: UInt32
    package var payload: [UInt8]

    package init(lamportTime: LamportTime, id: UInt32, from: String, flags: UInt32 = 0, payload: [UInt8] = []) {
        self.lamportTime = lamportTime
        self.id = id
        self.from = from
        self.flags = flags
        self.payload = payload
    }

    package var isAck: Bool { flags & SerfQueryMessage.flagAck != 0 }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(5)
        writer.writeKey("Flags"); writer.writeUInt(flags)
        writer.writeKey("From"); writer.writeString(from)
        writer.writeKey("ID"); writer.writeUInt(id)
        writer.writeKey("LTime"); writer.writeUInt(lamportTime)
        writer.writeKey("Payload"); writer.writeBytesField(payload)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(lamportTime: 0, id: 0, from: "")
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "LTime": lamportTime = try reader.readInteger()
            case "ID": id = try reader.readInteger()
            case "From": from = try reader.readString()
            case "Flags": flags = try reader.readInteger()
            case "Payload": payload = try reader.readBytes()
            default: try reader.skipValue()
            }
        }
    }
}

/// `userEvent`: one event in serf's push/pull event ring.
package struct SerfUserEvent: MessagePackStruct, Hashable, Sendable {
    package var name: String
    package var payload: [UInt8]

    package init(name: String, payload: [UInt8]) {
        self.name = name
        self.payload = payload
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(2)
        writer.writeKey("Name"); writer.writeString(name)
        writer.writeKey("Payload"); writer.writeBytesField(payload)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(name: "", payload: [])
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "Name": name = try reader.readString()
            case "Payload": payload = try reader.readBytes()
            default: try reader.skipValue()
            }
        }
    }
}

/// `userEvents`: the events seen at one event Lamport time.
package struct SerfUserEvents: MessagePackStruct, Hashable, Sendable {
    package var lamportTime: LamportTime
    package var events: [SerfUserEvent]

    package init(lamportTime: LamportTime, events: [SerfUserEvent]) {
        self.lamportTime = lamportTime
        self.events = events
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(2)
        writer.writeKey("Events")
        if events.isEmpty {
            writer.writeNil()
        } else {
            writer.writeArrayHeader(events.count)
            for event in events { event.write(to: &writer) }
        }
        writer.writeKey("LTime"); writer.writeUInt(lamportTime)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(lamportTime: 0, events: [])
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "LTime": lamportTime = try reader.readInteger()
            case "Events": events = try reader.readStructArray()
            default: try reader.skipValue()
            }
        }
    }
}

/// `messagePushPull`: serf's delegate state, appended to memberlist's push/pull.
package struct SerfPushPullMessage: MessagePackStruct, Hashable, Sendable {
    package var lamportTime: LamportTime
    /// Each member's membership Lamport time; written with keys sorted.
    package var statusLamportTimes: [String: LamportTime]
    package var leftMembers: [String]
    package var eventLamportTime: LamportTime
    /// The recent-event ring; empty slots are nil (serf 0.9.4 sends 512 slots).
    package var events: [SerfUserEvents?]
    package var queryLamportTime: LamportTime

    package init(
        lamportTime: LamportTime, statusLamportTimes: [String: LamportTime], leftMembers: [String],
        eventLamportTime: LamportTime, events: [SerfUserEvents?], queryLamportTime: LamportTime
    ) {
        self.lamportTime = lamportTime
        self.statusLamportTimes = statusLamportTimes
        self.leftMembers = leftMembers
        self.eventLamportTime = eventLamportTime
        self.events = events
        self.queryLamportTime = queryLamportTime
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(6)
        writer.writeKey("EventLTime"); writer.writeUInt(eventLamportTime)
        writer.writeKey("Events")
        writer.writeArrayHeader(events.count)
        for slot in events {
            if let slot { slot.write(to: &writer) } else { writer.writeNil() }
        }
        writer.writeKey("LTime"); writer.writeUInt(lamportTime)
        // Serf builds this with make([]string, 0, n): an empty array, not nil.
        writer.writeKey("LeftMembers")
        writer.writeArrayHeader(leftMembers.count)
        for member in leftMembers { writer.writeString(member) }
        writer.writeKey("QueryLTime"); writer.writeUInt(queryLamportTime)
        writer.writeKey("StatusLTimes")
        writer.writeMapHeader(statusLamportTimes.count)
        for name in statusLamportTimes.keys.sorted() {
            writer.writeString(name)
            writer.writeUInt(statusLamportTimes[name]!)
        }
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(lamportTime: 0, statusLamportTimes: [:], leftMembers: [], eventLamportTime: 0, events: [], queryLamportTime: 0)
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "LTime": lamportTime = try reader.readInteger()
            case "StatusLTimes":
                let count = try reader.readMapHeader()
                var times: [String: LamportTime] = [:]
                times.reserveCapacity(count)
                for _ in 0..<count {
                    let name = try reader.readString()
                    times[name] = try reader.readInteger()
                }
                statusLamportTimes = times
            case "LeftMembers": leftMembers = try reader.readStringArray()
            case "EventLTime": eventLamportTime = try reader.readInteger()
            case "Events":
                let count = try reader.readArrayHeader()
                var slots: [SerfUserEvents?] = []
                slots.reserveCapacity(count)
                for _ in 0..<count {
                    slots.append(try reader.readNilIfPresent() ? nil : try SerfUserEvents(from: &reader))
                }
                events = slots
            case "QueryLTime": queryLamportTime = try reader.readInteger()
            default: try reader.skipValue()
            }
        }
    }
}

/// `keyRequest`: the payload of the install/use/remove-key internal queries (after a `[7]` byte).
package struct SerfKeyRequest: MessagePackStruct, Hashable, Sendable {
    package var key: [UInt8]

    package init(key: [UInt8]) { self.key = key }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(1)
        writer.writeKey("Key"); writer.writeBytesField(key)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(key: [])
        try reader.readStruct { key, reader throws(MessagePackError) in
            if key == "Key" { self.key = try reader.readBytes() } else { try reader.skipValue() }
        }
    }
}

/// `nodeKeyResponse`: one node's answer to a key-management query (after an `[8]` byte).
package struct SerfKeyResponse: MessagePackStruct, Hashable, Sendable {
    package var result: Bool
    package var message: String
    /// Base64 keys, for list-keys.
    package var keys: [String]
    package var primaryKey: String

    package init(result: Bool, message: String = "", keys: [String] = [], primaryKey: String = "") {
        self.result = result
        self.message = message
        self.keys = keys
        self.primaryKey = primaryKey
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(4)
        writer.writeKey("Keys"); writer.writeStringArray(keys)
        writer.writeKey("Message"); writer.writeString(message)
        writer.writeKey("PrimaryKey"); writer.writeString(primaryKey)
        writer.writeKey("Result"); writer.writeBool(result)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(result: false)
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "Result": result = try reader.readBool()
            case "Message": message = try reader.readString()
            case "Keys": keys = try reader.readStringArray()
            case "PrimaryKey": primaryKey = try reader.readString()
            default: try reader.skipValue()
            }
        }
    }
}

/// serf's `Member`, as sent in a conflict-resolution response (after a `[6]` byte).
package struct SerfMember: MessagePackStruct, Hashable, Sendable {
    package var name: String
    package var addr: [UInt8]
    package var port: UInt16
    package var tags: [String: String]
    /// serf `MemberStatus`: 0 none, 1 alive, 2 leaving, 3 left, 4 failed.
    package var status: Int
    package var versions: ProtocolVersions

    package init(name: String, addr: [UInt8], port: UInt16, tags: [String: String], status: Int, versions: ProtocolVersions) {
        self.name = name
        self.addr = addr
        self.port = port
        self.tags = tags
        self.status = status
        self.versions = versions
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(11)
        writer.writeKey("Addr"); writer.writeBytesField(addr)
        writer.writeKey("DelegateCur"); writer.writeUInt(versions.delegateCurrent)
        writer.writeKey("DelegateMax"); writer.writeUInt(versions.delegateMax)
        writer.writeKey("DelegateMin"); writer.writeUInt(versions.delegateMin)
        writer.writeKey("Name"); writer.writeString(name)
        writer.writeKey("Port"); writer.writeUInt(port)
        writer.writeKey("ProtocolCur"); writer.writeUInt(versions.protocolCurrent)
        writer.writeKey("ProtocolMax"); writer.writeUInt(versions.protocolMax)
        writer.writeKey("ProtocolMin"); writer.writeUInt(versions.protocolMin)
        writer.writeKey("Status"); writer.writeInt(status)
        writer.writeKey("Tags"); writer.writeStringMap(tags)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(name: "", addr: [], port: 0, tags: [:], status: 0, versions: ProtocolVersions(vsn: [0, 0, 0, 0, 0, 0])!)
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "Name": name = try reader.readString()
            case "Addr": addr = try reader.readBytes()
            case "Port": port = try reader.readInteger()
            case "Tags": tags = try reader.readStringMap()
            case "Status": status = try reader.readInteger()
            case "ProtocolMin": versions.protocolMin = try reader.readInteger()
            case "ProtocolMax": versions.protocolMax = try reader.readInteger()
            case "ProtocolCur": versions.protocolCurrent = try reader.readInteger()
            case "DelegateMin": versions.delegateMin = try reader.readInteger()
            case "DelegateMax": versions.delegateMax = try reader.readInteger()
            case "DelegateCur": versions.delegateCurrent = try reader.readInteger()
            default: try reader.skipValue()
            }
        }
    }
}

/// `relayHeader`: where a relayed query response should be forwarded (a Go `net.UDPAddr`:
/// `{IP, Port, Zone}`; Go's `net.IPv4` gives the 16-byte form).
package struct SerfRelayHeader: MessagePackStruct, Hashable, Sendable {
    package var destinationIP: [UInt8]
    package var destinationPort: Int
    package var destinationZone: String
    package var destinationName: String

    package init(destinationIP: [UInt8], destinationPort: Int, destinationZone: String = "", destinationName: String) {
        self.destinationIP = destinationIP
        self.destinationPort = destinationPort
        self.destinationZone = destinationZone
        self.destinationName = destinationName
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(2)
        writer.writeKey("DestAddr")
        writer.writeMapHeader(3)
        writer.writeKey("IP"); writer.writeBytesField(destinationIP)
        writer.writeKey("Port"); writer.writeInt(destinationPort)
        writer.writeKey("Zone"); writer.writeString(destinationZone)
        writer.writeKey("DestName"); writer.writeString(destinationName)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(destinationIP: [], destinationPort: 0, destinationName: "")
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "DestAddr":
                try reader.readStruct { key, reader throws(MessagePackError) in
                    switch key {
                    case "IP": destinationIP = try reader.readBytes()
                    case "Port": destinationPort = try reader.readInteger()
                    case "Zone": destinationZone = try reader.readString()
                    default: try reader.skipValue()
                    }
                }
            case "DestName": destinationName = try reader.readString()
            default: try reader.skipValue()
            }
        }
    }
}
