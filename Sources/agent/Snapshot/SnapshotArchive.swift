import ConsulCore
import Crypto
import Foundation

/// A snapshot archive laid out as Consul's (`consul snapshot save`): a gzip'd tar holding
/// `meta.json` (Raft's snapshot metadata), `state.bin` and `SHA256SUMS` (sha256sum lines for
/// the other two), in that order.
///
/// `state.bin` is *this* agent's state-store snapshot data (`StateStore.writeSnapshot`), not
/// Consul's msgpack stream: archives move between agents of this implementation only; a Consul
/// archive is recognised and refused by its content, with a message saying so.
struct SnapshotArchive: Equatable, Sendable {
    struct Meta: Equatable, Sendable {
        var id: String
        var index: UInt64
        var term: UInt64
        var size: Int
        var version = 1
        /// The Raft configuration at the snapshot: (id, address, voter).
        var servers: [(id: String, address: String, voter: Bool)] = []
        var configurationIndex: UInt64 = 0

        static func == (lhs: Meta, rhs: Meta) -> Bool {
            lhs.id == rhs.id && lhs.index == rhs.index && lhs.term == rhs.term && lhs.size == rhs.size && lhs.version == rhs.version
                && lhs.servers.map(\.id) == rhs.servers.map(\.id)
        }
    }

    var meta: Meta
    var state: [UInt8]

    /// What a restore accepts: the state must fit in one Raft command (16 MiB) with room to spare.
    static let maxStateBytes = 15 * 1024 * 1024

    struct Problem: Error, CustomStringConvertible, Equatable {
        var description: String
    }

    // MARK: Writing

    func encoded() throws(Problem) -> [UInt8] {
        let metaJSON = Self.metaJSON(meta)
        let sums = "\(Self.sha256(metaJSON))  meta.json\n\(Self.sha256(state))  state.bin\n"
        var tar: [UInt8] = []
        Tar.append(name: "meta.json", contents: metaJSON, to: &tar)
        Tar.append(name: "state.bin", contents: state, to: &tar)
        Tar.append(name: "SHA256SUMS", contents: Array(sums.utf8), to: &tar)
        tar += [UInt8](repeating: 0, count: 1024)
        do {
            return try Gzip.compress(tar)
        } catch {
            throw Problem(description: error.description)
        }
    }

    static func metaJSON(_ meta: Meta) -> [UInt8] {
        var writer = JSONWriter()
        writer.object { o in
            o.field("Version") { $0.int(meta.version) }
            o.field("ID") { $0.string(meta.id) }
            o.field("Index") { $0.int(meta.index) }
            o.field("Term") { $0.int(meta.term) }
            o.field("Peers") { $0.null() }
            o.field("Configuration") { c in
                c.object { c in
                    c.field("Servers") { s in
                        s.array { a in
                            for server in meta.servers {
                                a.object { w in
                                    w.field("Suffrage") { $0.int(server.voter ? 0 : 1) }
                                    w.field("ID") { $0.string(server.id) }
                                    w.field("Address") { $0.string(server.address) }
                                }
                            }
                        }
                    }
                }
            }
            o.field("ConfigurationIndex") { $0.int(meta.configurationIndex) }
            o.field("Size") { $0.int(meta.size) }
        }
        return writer.bytes
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    // MARK: Reading

    /// Reads and verifies an archive: gzip, tar, every file present, the sums matching, the meta
    /// readable. Every problem is named.
    static func decode(_ archive: [UInt8]) throws(Problem) -> SnapshotArchive {
        let tar: [UInt8]
        do {
            tar = try Gzip.decompress(archive, limit: maxStateBytes + (1 << 20))
        } catch {
            throw Problem(description: "failed to decompress snapshot: \(error.description)")
        }
        let files = try Tar.read(tar)
        func file(_ name: String) throws(Problem) -> [UInt8] {
            guard let contents = files[name] else { throw Problem(description: "snapshot archive is missing \(name)") }
            return contents
        }
        let metaBytes = try file("meta.json"), state = try file("state.bin"), sums = try file("SHA256SUMS")
        var expected: [String: String] = [:]
        for line in String(decoding: sums, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2 else { throw Problem(description: "SHA256SUMS has a malformed line") }
            expected[String(parts[1])] = String(parts[0])
        }
        for (name, contents) in [("meta.json", metaBytes), ("state.bin", state)] {
            guard let sum = expected[name] else { throw Problem(description: "SHA256SUMS has no sum for \(name)") }
            guard sum == sha256(contents) else { throw Problem(description: "sha256 hash of \(name) does not match (the archive is corrupt)") }
        }
        let meta = try parseMeta(metaBytes)
        guard meta.size == state.count else { throw Problem(description: "meta.json says state.bin is \(meta.size) bytes, it is \(state.count)") }
        // Consul's state.bin is a msgpack stream; ours starts with the header piece's length
        // (4 bytes) and then our snapshot version byte.
        guard state.count > 4, (2...StateStore.snapshotVersion).contains(state[4]) else {
            throw Problem(description: "state.bin is not a snapshot of this implementation's state store (a HashiCorp Consul archive cannot be restored here)")
        }
        return SnapshotArchive(meta: meta, state: state)
    }

    static func parseMeta(_ bytes: [UInt8]) throws(Problem) -> Meta {
        let value: ConfigValue
        do {
            value = try JSONConfigParser.parseValue(bytes: bytes, file: "meta.json")
        } catch {
            throw Problem(description: "meta.json is not valid JSON: \(error)")
        }
        guard let id = value["ID"]?.stringValue, let index = value["Index"]?.integerValue, let term = value["Term"]?.integerValue,
              let size = value["Size"]?.integerValue, index >= 0, term >= 0, size >= 0
        else { throw Problem(description: "meta.json lacks ID, Index, Term or Size") }
        var meta = Meta(id: id, index: UInt64(index), term: UInt64(term), size: Int(size))
        meta.version = Int(value["Version"]?.integerValue ?? 1)
        for server in value["Configuration"]?["Servers"]?.arrayValue ?? [] {
            meta.servers.append((server.text("ID"), server.text("Address"), server["Suffrage"]?.integerValue ?? 0 == 0))
        }
        meta.configurationIndex = UInt64(max(value["ConfigurationIndex"]?.integerValue ?? 0, 0))
        return meta
    }
}

/// The few tar (ustar) records a snapshot needs: regular files, written and read whole.
enum Tar {
    static let block = 512
    /// An archive with more files than this is not a snapshot.
    static let maxFiles = 16

    static func append(name: String, contents: [UInt8], to tar: inout [UInt8]) {
        var header = [UInt8](repeating: 0, count: block)
        func put(_ text: String, at offset: Int, width: Int) {
            for (position, byte) in text.utf8.prefix(width).enumerated() { header[offset + position] = byte }
        }
        func octal(_ value: Int, width: Int) -> String {
            let digits = String(value, radix: 8)
            return String(repeating: "0", count: max(width - 1 - digits.count, 0)) + digits
        }
        put(name, at: 0, width: 100)
        put(octal(0o600, width: 8), at: 100, width: 7)
        put(octal(0, width: 8), at: 108, width: 7)
        put(octal(0, width: 8), at: 116, width: 7)
        put(octal(contents.count, width: 12), at: 124, width: 11)
        put(octal(Int(Date().timeIntervalSince1970), width: 12), at: 136, width: 11)
        put("        ", at: 148, width: 8)
        header[156] = UInt8(ascii: "0")
        put("ustar", at: 257, width: 6)
        put("00", at: 263, width: 2)
        let checksum = header.reduce(0) { $0 + Int($1) }
        put(octal(checksum, width: 7) + "\0 ", at: 148, width: 8)
        tar += header
        tar += contents
        tar += [UInt8](repeating: 0, count: (block - contents.count % block) % block)
    }

    static func read(_ tar: [UInt8]) throws(SnapshotArchive.Problem) -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        var offset = 0
        while offset + block <= tar.count {
            let header = Array(tar[offset..<offset + block])
            if header.allSatisfy({ $0 == 0 }) { break }
            let stored = Int(octal(header[148..<156]) ?? -1)
            var sum = header
            for position in 148..<156 { sum[position] = UInt8(ascii: " ") }
            guard stored == sum.reduce(0, { $0 + Int($1) }) else {
                throw SnapshotArchive.Problem(description: "tar header checksum mismatch at byte \(offset) (the archive is corrupt)")
            }
            let nameBytes = header[0..<100].prefix { $0 != 0 }
            let name = String(decoding: nameBytes, as: UTF8.self)
            guard let size = octal(header[124..<136]), size >= 0, offset + block + size <= tar.count else {
                throw SnapshotArchive.Problem(description: "tar entry \(name) is truncated")
            }
            offset += block
            if header[156] == UInt8(ascii: "0") || header[156] == 0 {
                guard files.count < maxFiles else { throw SnapshotArchive.Problem(description: "too many files in the snapshot archive") }
                files[name] = Array(tar[offset..<offset + size])
            }
            offset += (size + block - 1) / block * block
        }
        return files
    }

    private static func octal(_ field: ArraySlice<UInt8>) -> Int? {
        let text = String(decoding: field.prefix { $0 != 0 && $0 != UInt8(ascii: " ") }, as: UTF8.self)
        guard !text.isEmpty, text.count <= 12 else { return nil }
        return Int(text, radix: 8)
    }
}
