// swift-tools-version:6.1
// The module graph is described in ARCHITECTURE.md (shared/); keep the two in step.
import PackageDescription

let package = Package(
    name: "consul-swift",
    platforms: [.macOS(.v15)],
    products: [
    ],
    dependencies: [
    ],
    targets: [
        // Pure building blocks shared by every core: seeded randomness, time, limits. No I/O.
        .target(name: "ConsulCore"),

        .testTarget(name: "ConsulCoreTests", dependencies: ["ConsulCore"]),

        // Gossip: memberlist/serf wire codec (pure). SWIM core and NIO shell join it later.
        .target(name: "Gossip", dependencies: ["ConsulCore"]),
        .testTarget(name: "GossipTests", dependencies: ["Gossip", "ConsulCore"]),
    ],
    swiftLanguageModes: [.v6]
)
