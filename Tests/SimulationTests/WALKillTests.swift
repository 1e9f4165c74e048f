import ConsulCore
import Foundation
import Simulation
import Testing
import Raft

/// The directory holding this test binary, where SwiftPM also puts `consul-sim`.
func buildProductsDirectory() -> String {
    URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
}

/// Reads a child's stdout line by line with a bounded wait per line.
final class LineReader {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(fd: Int32) {
        self.fd = fd
    }

    /// The next line, or nil at end of stream or after `timeoutMilliseconds` without one.
    func next(timeoutMilliseconds: Int32 = 5_000) -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pollFD, 1, timeoutMilliseconds) == 1 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { return nil }
            buffer += chunk[..<count]
        }
    }
}

@Suite struct WALKillTests {
    /// A child appends and fsyncs, printing each durable index (and each saved term); it is
    /// SIGKILLed at a seeded point, the WAL and stable store are reopened, and everything
    /// acknowledged must be there, intact, with a clean tail.
    /// The same WAL carries over from round to round, so later rounds recover earlier crashes' tails.
    @Test func acknowledgedRecordsSurviveSigkill() throws {
        let simulator = buildProductsDirectory() + "/consul-sim"
        try #require(FileManager.default.isExecutableFile(atPath: simulator), "build consul-sim first (swift build --build-tests)")
        let directory = NSTemporaryDirectory() + "raft-wal-kill-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var random = SeededRandom(seed: 20_261_122)
        var acknowledged: LogIndex = 0
        var acknowledgedTerm: Term = 0
        func record(_ line: String) {
            if line.hasPrefix("ack "), let index = LogIndex(line.dropFirst(4)) { acknowledged = max(acknowledged, index) }
            if line.hasPrefix("term "), let term = Term(line.dropFirst(5)) { acknowledgedTerm = max(acknowledgedTerm, term) }
        }
        for round in 0..<6 {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: simulator)
            child.arguments = ["wal-writer", "--dir", directory, "--records", "100000", "--seed", "\(round + 1)"]
            let output = Pipe()
            child.standardOutput = output
            try child.run()
            let reader = LineReader(fd: output.fileHandleForReading.fileDescriptor)
            // Kill after a random number of acknowledgements, a random few hundred microseconds on.
            let acks = 1 + Int(random.next() % 400)
            for _ in 0..<acks {
                guard let line = reader.next() else { break }
                record(line)
            }
            usleep(useconds_t(random.next() % 800))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            // Acknowledgements already in the pipe when the kill landed count too.
            while let line = reader.next(timeoutMilliseconds: 100) { record(line) }
            #expect(child.terminationReason == .uncaughtSignal, "round \(round): the writer ended before the kill")

            let (_, state) = try SegmentedWAL.open(directory: directory, maxSegmentBytes: WALWriterCommand.segmentBytes)
            let last = state.entries.last?.index ?? state.snapshot?.metadata.index ?? 0
            #expect(last >= acknowledged, "round \(round): acknowledged \(acknowledged), recovered only up to \(last)")
            // The term and vote: whole (the stable store replaces its file atomically), never
            // behind what was acknowledged, never behind a term written into the log.
            let hardState = try #require(try StableStore(directory: directory).load(), "round \(round): no stable state")
            #expect(hardState.term >= acknowledgedTerm, "round \(round): acknowledged term \(acknowledgedTerm), recovered \(hardState.term)")
            #expect(hardState.votedFor == ServerID("writer"))
            #expect(state.entries.allSatisfy { $0.term <= hardState.term })
            for entry in state.entries {
                #expect(entry.payload == .command(WALWriterCommand.command(at: entry.index)), "round \(round): entry \(entry.index) damaged")
            }
            if let first = state.entries.first {
                #expect(first.index <= (state.snapshot?.metadata.index ?? 0) + 1)
            }
            // Clean tail: after recovery every segment scans to its end.
            for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasPrefix("wal-") {
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
                #expect(WALRecord.scan(bytes).tail == nil, "round \(round): \(name) has a bad record after recovery")
            }
        }
        #expect(acknowledged > 0)
    }
}
