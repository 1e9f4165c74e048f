import Foundation

/// `GET /v1/agent/version`, `/v1/agent/host` and `/v1/agent/metrics`: what this agent reports
/// about its build, its machine and its own counters. Answered here, never forwarded.
struct AgentInfoEndpoint {
    let agent: AgentRuntime

    func route(_ request: APIRequest, tail: Substring) throws(APIError) -> APIRoute {
        switch tail {
        case "version":
            try APIRouter.requireMethod(request, "GET")
            // Consul asks for no ACL here: the version is what any client needs first.
            return .local(.json { Self.writeVersion(into: &$0) })
        case "host":
            try APIRouter.requireMethod(request, "GET")
            let dataDir = agent.config.dataDir ?? "/"
            // Consul guards host details behind operator:read. Collected off the event loop: it
            // reads /proc files and the data dir's filesystem.
            return APIRoute(
                action: .agentOperation { () async throws(APIError) -> APIResponse in
                    .json { HostInfo.collect(dataDir: dataDir).write(into: &$0) }
                }, isWrite: false, resource: .operator, access: .read)
        case "metrics":
            try APIRouter.requireMethod(request, "GET")
            let format = request.query["format"] ?? ""
            guard format.isEmpty || format == "prometheus" else {
                throw .badRequest("Invalid format \"\(format)\": only \"prometheus\" is supported")
            }
            let snapshot = AgentMetrics.collect(agent)
            let response: APIResponse =
                format == "prometheus"
                ? APIResponse(contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(snapshot.prometheus().utf8))
                : .json { snapshot.write(into: &$0) }
            return APIRoute(action: .respond(response), isWrite: false, resource: .agent(agent.nodeName), access: .read)
        default:
            throw .notFound("/v1/agent/\(tail) is not an agent information endpoint")
        }
    }

    static func writeVersion(into writer: inout JSONWriter) {
        writer.object { w in
            // No git SHA or build date is stamped into this build: empty, as Consul leaves them
            // when unset, rather than made up.
            w.field("SHA") { $0.string("") }
            w.field("BuildDate") { $0.string("") }
            w.field("HumanVersion") { $0.string(ConsulVersion.version + (ConsulVersion.prerelease.isEmpty ? "" : "-" + ConsulVersion.prerelease)) }
            w.field("FIPS") { $0.string("") }
        }
    }
}

/// The machine this agent runs on, in the shape Consul's `/v1/agent/host` gives (gopsutil's
/// field names). Read from /proc, uname and statvfs; what cannot be read is left out.
struct HostInfo: Sendable {
    var memory: [(String, UInt64)] = []
    var usedPercent: Double?
    var cpus: [[String: String]] = []
    var hostname = ""
    var uptime: UInt64?
    var bootTime: UInt64?
    var procs: Int?
    var platform = ""
    var platformVersion = ""
    var kernelVersion = ""
    var kernelArch = ""
    var disk: DiskUsage?
    var collectionTime: Int64 = 0

    struct DiskUsage: Sendable {
        var path: String
        var fstype: String
        var total: UInt64
        var free: UInt64
        var used: UInt64
        var inodesTotal: UInt64
        var inodesFree: UInt64
    }

    static func collect(dataDir: String) -> HostInfo {
        var info = HostInfo()
        let now = Date()
        info.collectionTime = Int64(now.timeIntervalSince1970 * 1_000_000_000)
        if let text = read("/proc/meminfo") { (info.memory, info.usedPercent) = parseMeminfo(text) }
        if let text = read("/proc/cpuinfo") { info.cpus = parseCPUInfo(text) }
        if let text = read("/proc/uptime"), let seconds = Double(text.split(separator: " ").first ?? "") {
            info.uptime = UInt64(seconds)
            info.bootTime = UInt64(now.timeIntervalSince1970 - seconds)
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") {
            info.procs = entries.filter { !$0.isEmpty && $0.allSatisfy(\.isNumber) }.count
        }
        var names = utsname()
        if uname(&names) == 0 {
            info.hostname = field(&names.nodename)
            info.kernelVersion = field(&names.release)
            info.kernelArch = field(&names.machine)
        }
        if let text = read("/etc/os-release") {
            let release = parseOSRelease(text)
            info.platform = release["ID"] ?? ""
            info.platformVersion = release["VERSION_ID"] ?? ""
        }
        var stats = statvfs()
        if statvfs(dataDir, &stats) == 0 {
            let block = UInt64(stats.f_frsize)
            let total = UInt64(stats.f_blocks) * block
            let free = UInt64(stats.f_bavail) * block
            // Used as df counts it: everything not free for root either.
            let used = total - UInt64(stats.f_bfree) * block
            info.disk = DiskUsage(
                path: dataDir, fstype: read("/proc/self/mounts").map { mountType(of: dataDir, mounts: $0) } ?? "",
                total: total, free: free, used: used, inodesTotal: UInt64(stats.f_files), inodesFree: UInt64(stats.f_ffree))
        }
        return info
    }

    private static func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    private static func field<T>(_ value: inout T) -> String {
        withUnsafeBytes(of: &value) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// gopsutil's names for the /proc/meminfo lines it reports, in kB there and bytes here.
    private static let meminfoNames: [(String, String)] = [
        ("MemTotal", "total"), ("MemAvailable", "available"), ("MemFree", "free"), ("Active", "active"),
        ("Inactive", "inactive"), ("Buffers", "buffers"), ("Cached", "cached"), ("Dirty", "dirty"),
        ("Writeback", "writeBack"), ("Shmem", "shared"), ("Slab", "slab"), ("SReclaimable", "sreclaimable"),
        ("SUnreclaim", "sunreclaim"), ("PageTables", "pageTables"), ("SwapCached", "swapCached"),
        ("CommitLimit", "commitLimit"), ("Committed_AS", "committedAS"), ("SwapTotal", "swapTotal"), ("SwapFree", "swapFree"),
    ]

    static func parseMeminfo(_ text: String) -> ([(String, UInt64)], Double?) {
        var values: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == ":" || $0 == " " })
            guard parts.count >= 2, let number = UInt64(parts[1]) else { continue }
            values[String(parts[0])] = parts.count >= 3 && parts[2] == "kB" ? number * 1024 : number
        }
        var out: [(String, UInt64)] = []
        for (proc, name) in meminfoNames {
            guard var value = values[proc] else { continue }
            // gopsutil counts reclaimable slab as cache.
            if proc == "Cached" { value += values["SReclaimable"] ?? 0 }
            out.append((name, value))
        }
        var usedPercent: Double?
        if let total = values["MemTotal"], let free = values["MemFree"], total > 0 {
            let cached = (values["Cached"] ?? 0) + (values["SReclaimable"] ?? 0)
            let taken = free + (values["Buffers"] ?? 0) + cached
            let used = total > taken ? total - taken : 0
            out.insert(("used", used), at: min(3, out.count))
            usedPercent = Double(used) / Double(total) * 100
        }
        return (out, usedPercent)
    }

    /// One dictionary per `processor` block, keyed by /proc/cpuinfo's own names.
    static func parseCPUInfo(_ text: String) -> [[String: String]] {
        var cpus: [[String: String]] = []
        var current: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            guard let colon = line.firstIndex(of: ":") else {
                if !current.isEmpty { cpus.append(current) }
                current = [:]
                continue
            }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            current[key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if !current.isEmpty { cpus.append(current) }
        return cpus.filter { $0["processor"] != nil }
    }

    static func parseOSRelease(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            var value = line[line.index(after: equals)...]
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
            out[String(line[..<equals])] = String(value)
        }
        return out
    }

    /// The filesystem type of the longest mount point that holds `path`.
    static func mountType(of path: String, mounts: String) -> String {
        var best = ("", "")
        for line in mounts.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count >= 3 else { continue }
            let point = String(parts[1])
            let holds = point == "/" || path == point || path.hasPrefix(point + "/")
            if holds, point.count > best.0.count { best = (point, String(parts[2])) }
        }
        return best.1
    }

    func write(into writer: inout JSONWriter) {
        writer.object { w in
            w.field("Memory") { m in
                m.object { o in
                    for (name, value) in memory { o.field(dynamic: name) { $0.int(value) } }
                    if let usedPercent { o.field("usedPercent") { $0.double(usedPercent) } }
                }
            }
            w.field("CPU") { c in
                c.array { a in
                    for cpu in cpus {
                        a.object { o in
                            o.field("cpu") { $0.int(Int(cpu["processor"] ?? "") ?? 0) }
                            o.field("vendorId") { $0.string(cpu["vendor_id"] ?? "") }
                            o.field("family") { $0.string(cpu["cpu family"] ?? "") }
                            o.field("model") { $0.string(cpu["model"] ?? "") }
                            o.field("stepping") { $0.int(Int(cpu["stepping"] ?? "") ?? 0) }
                            o.field("physicalId") { $0.string(cpu["physical id"] ?? "") }
                            o.field("coreId") { $0.string(cpu["core id"] ?? "") }
                            // gopsutil reports one core per logical processor on Linux.
                            o.field("cores") { $0.int(1) }
                            o.field("modelName") { $0.string(cpu["model name"] ?? "") }
                            o.field("mhz") { $0.double(Double(cpu["cpu MHz"] ?? "") ?? 0) }
                            o.field("cacheSize") { $0.int(Int((cpu["cache size"] ?? "").split(separator: " ").first ?? "") ?? 0) }
                            o.field("flags") { $0.strings((cpu["flags"] ?? "").split(separator: " ").map(String.init)) }
                            o.field("microcode") { $0.string(cpu["microcode"] ?? "") }
                        }
                    }
                }
            }
            w.field("Host") { h in
                h.object { o in
                    o.field("hostname") { $0.string(hostname) }
                    if let uptime { o.field("uptime") { $0.int(uptime) } }
                    if let bootTime { o.field("bootTime") { $0.int(bootTime) } }
                    if let procs { o.field("procs") { $0.int(procs) } }
                    o.field("os") { $0.string("linux") }
                    o.field("platform") { $0.string(platform) }
                    o.field("platformVersion") { $0.string(platformVersion) }
                    o.field("kernelVersion") { $0.string(kernelVersion) }
                    o.field("kernelArch") { $0.string(kernelArch) }
                }
            }
            w.field("Disk") { d in
                guard let disk else { return d.null() }
                d.object { o in
                    o.field("path") { $0.string(disk.path) }
                    o.field("fstype") { $0.string(disk.fstype) }
                    o.field("total") { $0.int(disk.total) }
                    o.field("free") { $0.int(disk.free) }
                    o.field("used") { $0.int(disk.used) }
                    o.field("usedPercent") { $0.double(disk.total == 0 ? 0 : Double(disk.used) / Double(disk.total) * 100) }
                    o.field("inodesTotal") { $0.int(disk.inodesTotal) }
                    o.field("inodesUsed") { $0.int(disk.inodesTotal - min(disk.inodesFree, disk.inodesTotal)) }
                    o.field("inodesFree") { $0.int(disk.inodesFree) }
                    let inodesUsed = disk.inodesTotal - min(disk.inodesFree, disk.inodesTotal)
                    o.field("inodesUsedPercent") { $0.double(disk.inodesTotal == 0 ? 0 : Double(inodesUsed) / Double(disk.inodesTotal) * 100) }
                }
            }
            w.field("CollectionTime") { $0.int(collectionTime) }
            w.field("Errors") { $0.null() }
        }
    }
}
