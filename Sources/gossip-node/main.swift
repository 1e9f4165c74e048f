#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GossipRunner

// `gossip-node`: the `consul-sim gossip-node` command as its own lean executable (Gossip, NIO and
// OpenSSL only), the one bench/gossip.sh measures. All parsing and running lives in GossipRunner.
let status = GossipNodeCommand.run(Array(CommandLine.arguments.dropFirst()), out: { print($0) }, err: { line in
    var bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if written <= 0 { return }
        offset += written
    }
})
exit(status)
