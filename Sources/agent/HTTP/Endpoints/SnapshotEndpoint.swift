import ConsulCore
import Foundation
import Raft

/// `/v1/snapshot`: GET saves the leader's state as a Consul-layout archive (`SnapshotArchive`),
/// PUT restores one through Raft. Both run on the leader, off the event loop (they compress,
/// hash and copy the whole state).
///
/// Restore is one Raft command carrying the whole state (`StateCommand.restoreState`) rather than
/// a Raft-level snapshot install: the log then orders it with every other write, each server swaps
/// its state at the same index, it is durable once committed like any write, and the next Raft
/// snapshot compacts it away. The price is that the state must fit in one log entry
/// (`SnapshotArchive.maxStateBytes`); a larger one is refused, saying so.
struct SnapshotEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest) throws(APIError) -> APIRoute {
        try APIRouter.requireMethod(request, "GET", "PUT")
        let agent = self.agent
        if request.method == "GET" {
            return .leaderOperation(.operator, access: .write) { () async throws(APIError) -> APIResponse in
                // Everything committed before the request is in the state we save.
                try await agent.consistentRead()
                let store = agent.watch.current
                let view = agent.clusterView
                var data: [UInt8] = []
                let sink = SnapshotSink { chunk throws(WALError) in data += chunk }
                store.writeSnapshot(into: sink)
                do {
                    try sink.finish()
                } catch {
                    throw .internalError("failed to write the snapshot: \(error)")
                }
                let milliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
                let meta = SnapshotArchive.Meta(
                    id: "\(view.term)-\(store.lastIndex)-\(milliseconds)", index: store.lastIndex, term: view.term, size: data.count,
                    servers: view.configuration.servers.map { ($0.id.rawValue, $0.address, $0.suffrage == .voter) },
                    configurationIndex: 0)
                let archive: [UInt8]
                do {
                    archive = try SnapshotArchive(meta: meta, state: data).encoded()
                } catch {
                    throw .internalError("failed to write the snapshot archive: \(error)")
                }
                var response = APIResponse(contentType: "application/x-gzip", body: archive)
                response.headers.append(("X-Consul-Index", String(store.lastIndex)))
                return response
            }
        }
        let body = request.body
        // A body that is not even a gzip stream (empty, a JSON file, a tarball) is refused here,
        // before it travels to the leader; the archive itself is verified there, off the event loop.
        guard Gzip.hasHeader(body) else { throw .badRequest("Error restoring snapshot: failed to decompress snapshot: \(Gzip.invalidHeader)") }
        return .leaderOperation(.operator, access: .write) { () async throws(APIError) -> APIResponse in
            let archive: SnapshotArchive
            do throws(SnapshotArchive.Problem) {
                archive = try SnapshotArchive.decode(body)
            } catch {
                throw .badRequest("Error restoring snapshot: \(error.description)")
            }
            // Checked here, so a state that would not restore never reaches the log.
            var source = SnapshotSource(archive.state)
            do {
                _ = try StateStore(snapshot: &source, datacenter: agent.datacenter)
            } catch {
                throw .badRequest("Error restoring snapshot: state.bin does not restore: \(error)")
            }
            switch try await agent.apply(.restoreState(archive.state)) {
            case .refused(let message): throw .internalError(message)
            default: return APIResponse(body: [])
            }
        }
    }
}
