import ConsulCore

// The bodies of memberlist's messages, one struct per Go struct in memberlist 0.2.2 net.go, with
// the same field names and integer widths. Each is written as a map with its fields sorted by
// name (go-msgpack's order) and `omitempty` fields left out when zero; byte-slice fields that are
// empty are written as nil (a Go nil slice), which every Go decoder treats like an empty one.

/// `ping`: a direct probe. `node` names the intended target so a restarted agent with a new name
/// ignores probes meant for its predecessor; the `source*` fields say where to send the ack.
package struct PingMessage: MessagePackStruct, Hashable, Sendable {
    package var seqNo: UInt32
    package var node: String
    package var sourceAddr: [UInt8]
    package var sourcePort: UInt16
    package var sourceNode: String

    package init(seqNo: UInt32, node: String, sourceAddr: [UInt8] = [], sourcePort: UInt16 = 0, sourceNode: String = "") {
        self.seqNo = seqNo
        self.node = node
        self.sourceAddr = sourceAddr
        self.sourcePort = sourcePort
        self.sourceNode = sourceNode
    }

    package func write(to writer: inout MessagePackWriter) {
        let optional = [!sourceAddr.isEmpty, !sourceNode.isEmpty, sourcePort != 0].filter { $0 }.count
        writer.writeMapHeader(2 + optional)
        writer.writeKey("Node"); writer.writeString(node)
        writer.writeKey("SeqNo"); writer.writeUInt(seqNo)
        if !sourceAddr.isEmpty { writer.writeKey("SourceAddr"); writer.writeRaw(sourceAddr) }
        if !sourceNode.isEmpty { writer.writeKey("SourceNode"); writer.writeString(sourceNode) }
        if sourcePort != 0 { writer.writeKey("SourcePort"); writer.writeUInt(sourcePort) }
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(seqNo: 0, node: "")
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "SeqNo": seqNo = try reader.readInteger()
            case "Node": node = try reader.readString()
            case "SourceAddr": sourceAddr = try reader.readBytes()
            case "SourcePort": sourcePort = try reader.readInteger()
            case "SourceNode": sourceNode = try reader.readString()
            default: try reader.skipValue()
            }
        }
    }
}

/// `indirectPingReq`: asks a peer to probe `target:port` (named `node`) for us; `nack` requests a
/// nack if the target stays silent (protocol 4+).
package struct IndirectPingMessage: MessagePackStruct, Hashable, Sendable {
    package var seqNo: UInt32
    package var target: [UInt8]
    package var port: UInt16
    package var node: String
    package var nack: Bool
    package var sourceAddr: [UInt8]
    package var sourcePort: UInt16
    package var sourceNode: String

    package init(
        seqNo: UInt32, target: [UInt8], port: UInt16, node: String, nack: Bool,
        sourceAddr: [UInt8] = [], sourcePort: UInt16 = 0, sourceNode: String = ""
    ) {
        self.seqNo = seqNo
        self.target = target
        self.port = port
        self.node = node
        self.nack = nack
        self.sourceAddr = sourceAddr
        self.sourcePort = sourcePort
        self.sourceNode = sourceNode
    }

    package func write(to writer: inout MessagePackWriter) {
        let optional = [!sourceAddr.isEmpty, !sourceNode.isEmpty, sourcePort != 0].filter { $0 }.count
        writer.writeMapHeader(5 + optional)
        writer.writeKey("Nack"); writer.writeBool(nack)
        writer.writeKey("Node"); writer.writeString(node)
        writer.writeKey("Port"); writer.writeUInt(port)
        writer.writeKey("SeqNo"); writer.writeUInt(seqNo)
        if !sourceAddr.isEmpty { writer.writeKey("SourceAddr"); writer.writeRaw(sourceAddr) }
        if !sourceNode.isEmpty { writer.writeKey("SourceNode"); writer.writeString(sourceNode) }
        if sourcePort != 0 { writer.writeKey("SourcePort"); writer.writeUInt(sourcePort) }
        writer.writeKey("Target"); writer.writeBytesField(target)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(seqNo: 0, target: [], port: 0, node: "", nack: false)
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "SeqNo": seqNo = try reader.readInteger()
            case "Target": target = try reader.readBytes()
            case "Port": port = try reader.readInteger()
            case "Node": node = try reader.readString()
            case "Nack": nack = try reader.readBool()
            case "SourceAddr": sourceAddr = try reader.readBytes()
            case "SourcePort": sourcePort = try reader.readInteger()
            case "SourceNode": sourceNode = try reader.readString()
            default: try reader.skipValue()
            }
        }
    }
}

/// `ackResp`: answers a ping. Serf fills `payload` with its Vivaldi coordinate (`SerfPingPayload`).
package struct AckMessage: MessagePackStruct, Hashable, Sendable {
    package var seqNo: UInt32
    package var payload: [UInt8]

    package init(seqNo: UInt32, payload: [UInt8] = []) {
        self.seqNo = seqNo
        self.payload = payload
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(2)
        writer.writeKey("Payload"); writer.writeBytesField(payload)
        writer.writeKey("SeqNo"); writer.writeUInt(seqNo)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(seqNo: 0)
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "SeqNo": seqNo = try reader.readInteger()
            case "Payload": payload = try reader.readBytes()
            default: try reader.skipValue()
            }
        }
    }
}

/// `nackResp`: an indirect prober reporting that the target did not answer it either.
package struct NackMessage: MessagePackStruct, Hashable, Sendable {
    package var seqNo: UInt32

    package init(seqNo: UInt32) { self.seqNo = seqNo }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(1)
        writer.writeKey("SeqNo"); writer.writeUInt(seqNo)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(seqNo: 0)
        try reader.readStruct { key, reader throws(MessagePackError) in
            if key == "SeqNo" { seqNo = try reader.readInteger() } else { try reader.skipValue() }
        }
    }
}

/// `errResp`: the text of a failure the remote end hit while reading our stream.
package struct ErrorMessage: MessagePackStruct, Hashable, Sendable {
    package var error: String

    package init(error: String) { self.error = error }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(1)
        writer.writeKey("Error"); writer.writeString(error)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(error: "")
        try reader.readStruct { key, reader throws(MessagePackError) in
            if key == "Error" { error = try reader.readString() } else { try reader.skipValue() }
        }
    }
}

/// `suspect`: `from` suspects `node` at `incarnation`.
package struct SuspectMessage: MessagePackStruct, Hashable, Sendable {
    package var incarnation: UInt32
    package var node: String
    package var from: String

    package init(incarnation: UInt32, node: String, from: String) {
        self.incarnation = incarnation
        self.node = node
        self.from = from
    }

    package func write(to writer: inout MessagePackWriter) {
        writeIncarnationNodeFrom(&writer, incarnation: incarnation, node: node, from: from)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        (incarnation, node, from) = try readIncarnationNodeFrom(&reader)
    }
}

/// `dead`: `from` declares `node` dead at `incarnation`; `from == node` is a voluntary leave.
package struct DeadMessage: MessagePackStruct, Hashable, Sendable {
    package var incarnation: UInt32
    package var node: String
    package var from: String

    package init(incarnation: UInt32, node: String, from: String) {
        self.incarnation = incarnation
        self.node = node
        self.from = from
    }

    /// A node leaving on purpose announces itself dead by itself.
    package var isLeave: Bool { node == from }

    package func write(to writer: inout MessagePackWriter) {
        writeIncarnationNodeFrom(&writer, incarnation: incarnation, node: node, from: from)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        (incarnation, node, from) = try readIncarnationNodeFrom(&reader)
    }
}

private func writeIncarnationNodeFrom(_ writer: inout MessagePackWriter, incarnation: UInt32, node: String, from: String) {
    writer.writeMapHeader(3)
    writer.writeKey("From"); writer.writeString(from)
    writer.writeKey("Incarnation"); writer.writeUInt(incarnation)
    writer.writeKey("Node"); writer.writeString(node)
}

private func readIncarnationNodeFrom(_ reader: inout MessagePackReader) throws(MessagePackError) -> (UInt32, String, String) {
    var incarnation: UInt32 = 0
    var node = ""
    var from = ""
    try reader.readStruct { key, reader throws(MessagePackError) in
        switch key {
        case "Incarnation": incarnation = try reader.readInteger()
        case "Node": node = try reader.readString()
        case "From": from = try reader.readString()
        default: try reader.skipValue()
        }
    }
    return (incarnation, node, from)
}

/// `alive`: `node` is alive at `addr:port` with `incarnation`; also how a node announces itself.
/// `meta` is the delegate's node metadata (serf tags), `vsn` the six version bytes.
package struct AliveMessage: MessagePackStruct, Hashable, Sendable {
    package var incarnation: UInt32
    package var node: String
    package var addr: [UInt8]
    package var port: UInt16
    package var meta: [UInt8]
    package var vsn: [UInt8]

    package init(incarnation: UInt32, node: String, addr: [UInt8], port: UInt16, meta: [UInt8], vsn: [UInt8]) {
        self.incarnation = incarnation
        self.node = node
        self.addr = addr
        self.port = port
        self.meta = meta
        self.vsn = vsn
    }

    /// The parsed version bytes, nil for a peer that sent fewer than six.
    package var versions: ProtocolVersions? { ProtocolVersions(vsn: vsn) }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(6)
        writer.writeKey("Addr"); writer.writeBytesField(addr)
        writer.writeKey("Incarnation"); writer.writeUInt(incarnation)
        writer.writeKey("Meta"); writer.writeBytesField(meta)
        writer.writeKey("Node"); writer.writeString(node)
        writer.writeKey("Port"); writer.writeUInt(port)
        writer.writeKey("Vsn"); writer.writeBytesField(vsn)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(incarnation: 0, node: "", addr: [], port: 0, meta: [], vsn: [])
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "Incarnation": incarnation = try reader.readInteger()
            case "Node": node = try reader.readString()
            case "Addr": addr = try reader.readBytes()
            case "Port": port = try reader.readInteger()
            case "Meta": meta = try reader.readBytes()
            case "Vsn": vsn = try reader.readBytes()
            default: try reader.skipValue()
            }
        }
    }
}

/// `pushPullHeader`: how many node states follow and how many bytes of delegate state after them.
package struct PushPullHeader: MessagePackStruct, Hashable, Sendable {
    package var nodes: Int
    package var userStateLength: Int
    package var join: Bool

    package init(nodes: Int, userStateLength: Int, join: Bool) {
        self.nodes = nodes
        self.userStateLength = userStateLength
        self.join = join
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(3)
        writer.writeKey("Join"); writer.writeBool(join)
        writer.writeKey("Nodes"); writer.writeInt(nodes)
        writer.writeKey("UserStateLen"); writer.writeInt(userStateLength)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(nodes: 0, userStateLength: 0, join: false)
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "Nodes": nodes = try reader.readInteger()
            case "UserStateLen": userStateLength = try reader.readInteger()
            case "Join": join = try reader.readBool()
            default: try reader.skipValue()
            }
        }
    }
}

/// `pushNodeState`: one member as seen by the sender of a push/pull.
package struct PushNodeState: MessagePackStruct, Hashable, Sendable {
    package var name: String
    package var addr: [UInt8]
    package var port: UInt16
    package var meta: [UInt8]
    package var incarnation: UInt32
    package var state: NodeState
    package var vsn: [UInt8]

    package init(name: String, addr: [UInt8], port: UInt16, meta: [UInt8], incarnation: UInt32, state: NodeState, vsn: [UInt8]) {
        self.name = name
        self.addr = addr
        self.port = port
        self.meta = meta
        self.incarnation = incarnation
        self.state = state
        self.vsn = vsn
    }

    package var versions: ProtocolVersions? { ProtocolVersions(vsn: vsn) }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(7)
        writer.writeKey("Addr"); writer.writeBytesField(addr)
        writer.writeKey("Incarnation"); writer.writeUInt(incarnation)
        writer.writeKey("Meta"); writer.writeBytesField(meta)
        writer.writeKey("Name"); writer.writeString(name)
        writer.writeKey("Port"); writer.writeUInt(port)
        writer.writeKey("State"); writer.writeInt(state.rawValue)
        writer.writeKey("Vsn"); writer.writeBytesField(vsn)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(name: "", addr: [], port: 0, meta: [], incarnation: 0, state: .alive, vsn: [])
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "Name": name = try reader.readString()
            case "Addr": addr = try reader.readBytes()
            case "Port": port = try reader.readInteger()
            case "Meta": meta = try reader.readBytes()
            case "Incarnation": incarnation = try reader.readInteger()
            case "State": state = NodeState(rawValue: try reader.readInteger())
            case "Vsn": vsn = try reader.readBytes()
            default: try reader.skipValue()
            }
        }
    }
}

/// `userMsgHeader`: precedes a user message sent over TCP; that many raw bytes follow it.
package struct UserMessageHeader: MessagePackStruct, Hashable, Sendable {
    package var userMessageLength: Int

    package init(userMessageLength: Int) { self.userMessageLength = userMessageLength }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(1)
        writer.writeKey("UserMsgLen"); writer.writeInt(userMessageLength)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(userMessageLength: 0)
        try reader.readStruct { key, reader throws(MessagePackError) in
            if key == "UserMsgLen" { userMessageLength = try reader.readInteger() } else { try reader.skipValue() }
        }
    }
}

/// `compress`: a wrapped message compressed with `algorithm` (0 = LZW, the only one defined).
package struct CompressMessage: MessagePackStruct, Hashable, Sendable {
    package var algorithm: Int
    package var buffer: [UInt8]

    package static let lzwAlgorithm = 0

    package init(algorithm: Int, buffer: [UInt8]) {
        self.algorithm = algorithm
        self.buffer = buffer
    }

    package func write(to writer: inout MessagePackWriter) {
        writer.writeMapHeader(2)
        writer.writeKey("Algo"); writer.writeInt(algorithm)
        writer.writeKey("Buf"); writer.writeRaw(buffer)
    }

    package init(from reader: inout MessagePackReader) throws(MessagePackError) {
        self.init(algorithm: 0, buffer: [])
        try reader.readStruct { key, reader throws(MessagePackError) in
            switch key {
            case "Algo": algorithm = try reader.readInteger(UInt8.self).asInt
            case "Buf": buffer = try reader.readBytes()
            default: try reader.skipValue()
            }
        }
    }
}

extension UInt8 {
    fileprivate var asInt: Int { Int(self) }
}
