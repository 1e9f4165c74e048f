// swift-tools-version:6.1
// The module graph is described in ARCHITECTURE.md (shared/); keep the two in step.
import PackageDescription

let package = Package(
    name: "consul-swift",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "consul", targets: ["consul"]),
        .executable(name: "consul-bench", targets: ["consul-bench"]),
        .executable(name: "consul-sim", targets: ["consul-sim"]),
        .executable(name: "gossip-node", targets: ["gossip-node"]),
    ],
    dependencies: [
        // P-256 keys for `consul tls`; in the tests also an independent AES-GCM oracle.
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        // X.509 certificates for `consul tls ca create` / `consul tls cert create`.
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        // Sockets for the agent's HTTP API and DNS, and for the Raft and gossip transports.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // TLS on the server port (8300, agent RPC and Raft), the HTTPS API and the CLI's https:// client.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // Pure building blocks shared by every core: seeded randomness, time, limits. No I/O.
        .target(name: "ConsulCore"),
        // Test support (not shipped): ports a test can bind again after releasing them.
        .target(name: "TestSupport"),

        // OpenSSL's libcrypto/libssl from the system (Debian: libssl-dev).
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),

        // zlib from the system (Debian: zlib1g-dev): gzip for `consul snapshot` archives.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),

        // Gossip keys, keyring and the memberlist AES-GCM envelope, digests and secure randomness, all
        // through OpenSSL EVP. Nothing else: the gossip node links it, and every module linked into
        // `gossip-node` is resident memory of every node (see bench/README.md, gossip).
        .target(
            name: "ConsulCrypto",
            dependencies: ["ConsulCore", "COpenSSL"],
            path: "Sources/Crypto"
        ),

        // The CA and certificates `consul tls` creates; the TLS material (certificates, keys, CAs)
        // agents load into NIOSSL configurations.
        .target(
            name: "ConsulTLS",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Sources/TLS"
        ),

        // The agent and every CLI command.
        .target(
            name: "ConsulAgent",
            dependencies: [
                "ConsulCore", "ConsulCrypto", "ConsulTLS", "Raft", "Gossip", "CZlib",
                // SHA-256 sums in snapshot archives.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Sources/agent"
        ),

        .executableTarget(name: "consul", dependencies: ["ConsulAgent"]),

        // Micro-benchmarks driven by the scripts in bench/.
        .executableTarget(
            name: "consul-bench",
            dependencies: ["ConsulCrypto", "ConsulAgent"],
            path: "bench/Sources/consul-bench"
        ),

        .testTarget(name: "ConsulCoreTests", dependencies: ["ConsulCore"]),
        .testTarget(
            name: "ConsulCryptoTests",
            dependencies: [
                "ConsulCrypto", "ConsulTLS", "ConsulCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "ConsulAgentTests",
            dependencies: [
                "ConsulAgent", "ConsulCore", "ConsulCrypto", "ConsulTLS", "Raft", "Gossip", "TestSupport",
                // The TLS end-to-end tests speak RPCTLS on the server port themselves.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),

        // Gossip: memberlist/serf wire codec, SWIM core and serf layer (pure), NIO shell.
        .target(
            name: "Gossip",
            dependencies: [
                "ConsulCore", "ConsulCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "GossipTests", dependencies: ["Gossip", "ConsulCore", "ConsulCrypto", "TestSupport"]),
        // `gossip-node` / `consul-sim gossip-node`: one real gossip node per process (serf interop
        // tests, bench/gossip.sh), driven by lines on standard input.
        .target(
            name: "GossipRunner",
            dependencies: ["Gossip", "ConsulCore", .product(name: "NIOPosix", package: "swift-nio")]
        ),
        // The same command as a lean executable: only Gossip, NIO and OpenSSL are linked, so the
        // resident memory bench/gossip.sh measures per node is the gossip node's own.
        .executableTarget(
            name: "gossip-node", dependencies: ["GossipRunner", "ConsulCore"],
            exclude: ["gossip-node.order", "gossip-node.ld"],
            // Release builds link everything statically (Swift runtime, OpenSSL's libcrypto, glibc)
            // as serf is: no dynamic loader, no symbol lookups or relocations at start, no shared
            // library pages of which one function was wanted. And with lld, the functions a node
            // runs (gossip-node.order, made by bench/gossip-order.sh) and Swift's private functions
            // without a symbol (gossip-node.ld) are laid out together, so they fill a few pages
            // instead of one 64 KiB fault-around window each. Measured in bench/README.md.
            linkerSettings: [
                .unsafeFlags(
                    [
                        "-static-executable", "-use-ld=lld",
                        "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/gossip-node/gossip-node.order",
                        "-Xlinker", "--no-warn-symbol-ordering",
                        "-Xlinker", "-T", "-Xlinker", "\(Context.packageDirectory)/Sources/gossip-node/gossip-node.ld",
                    ], .when(platforms: [.linux], configuration: .release))
            ]
        ),

        // Raft consensus: the pure RaftCore state machine, WAL and snapshot store, wire codec, TCP transport
        // (SwiftNIO), RaftNode shell.
        .target(
            name: "Raft",
            dependencies: [
                "ConsulCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Deterministic simulation (test support, not shipped): simulated network/disk/clock, checkers, workload.
        .target(
            name: "Simulation",
            dependencies: [
                "Raft", "ConsulCore", "Gossip", "GossipRunner",
                // raft-node's client port runs on its Raft node's event loop.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // `consul-sim raft --seed S --count N`: runs simulation seeds; thin, subcommands live in Simulation.
        .executableTarget(name: "consul-sim", dependencies: ["Simulation", "ConsulCore"]),
        .testTarget(
            name: "RaftTests",
            dependencies: [
                "Raft", "ConsulCore", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "Raft", "ConsulCore", "Gossip", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
