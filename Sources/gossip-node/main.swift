#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConsulCore
import GossipRunner

// `gossip-node`: the `consul-sim gossip-node` command as its own lean executable (Gossip, NIO and
// OpenSSL only), the one bench/gossip.sh measures. All parsing and running lives in GossipRunner.
let status = GossipNodeCommand.run(Array(CommandLine.arguments.dropFirst()), out: { print($0) }, err: { writeLine($0, to: 2) })
exit(status)
