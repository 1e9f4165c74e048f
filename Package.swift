// swift-tools-version:6.1
// The module graph is described in ARCHITECTURE.md (shared/); keep the two in step.
import PackageDescription

let package = Package(
    name: "consul-swift",
    platforms: [.macOS(.v15)],
    products: [
        // --- raft: begin ---
        .executable(name: "consul-sim", targets: ["consul-sim"]),
        // --- raft: end ---
    ],
    dependencies: [
    ],
    targets: [
        // Pure building blocks shared by every core: seeded randomness, time, limits. No I/O.
        .target(name: "ConsulCore"),

        .testTarget(name: "ConsulCoreTests", dependencies: ["ConsulCore"]),

        // --- raft: begin ---
        // Raft consensus: the pure RaftCore state machine, WAL and snapshot store, wire codec, RaftNode shell.
        .target(name: "Raft", dependencies: ["ConsulCore"]),
        // Deterministic simulation (test support, not shipped): simulated network/disk/clock, checkers, workload.
        .target(name: "Simulation", dependencies: ["Raft", "ConsulCore"]),
        // `consul-sim raft --seed S --count N`: runs simulation seeds; thin, subcommands live in Simulation.
        .executableTarget(name: "consul-sim", dependencies: ["Simulation"]),
        .testTarget(name: "RaftTests", dependencies: ["Raft", "ConsulCore"]),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "Raft", "ConsulCore"]),
        // --- raft: end ---
    ],
    swiftLanguageModes: [.v6]
)
