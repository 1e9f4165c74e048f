/// The version this build reports wherever Consul reports one (`consul version`, `/v1/agent/self`,
/// gossip `build` tags). It is the Consul release whose CLI, API and wire behaviour we follow, so
/// clients that check versions treat us as that release; `revision` says which implementation it is.
package enum ConsulVersion {
    /// Plain `MAJOR.MINOR.PATCH` so that PEP 440 and semver parsers (py-consul, tooling) accept it.
    package static let version = "1.21.0"
    package static let prerelease = ""
    package static let revision = "swift-edition"

    /// Serf/memberlist protocol versions, as Consul prints them.
    package static let protocolDefault = 2
    package static let protocolMin = 2
    package static let protocolMax = 3

    package static var humanVersion: String { "v" + version + (prerelease.isEmpty ? "" : "-" + prerelease) }
}
