import Testing
@testable import ConsulCore

/// Large but legal inputs must be read in time proportional to their size: a generated config dir
/// can hold thousands of service blocks, and a hostile file must not turn into a quadratic stall.
@Suite struct ConfigScaleTests {
    @Test func manyRepeatedBlocksAndKeys() throws {
        let count = 20_000
        var hcl = ""
        for index in 0..<count {
            hcl += "services { name = \"s\(index)\" }\nchecks = [{ id = \"c\(index)\" }]\nkey \"k\(index)\" { policy = \"read\" }\n"
        }
        let config = try HCLParser.parse(hcl, file: "many.hcl")
        #expect(config["services"]?.arrayValue?.count == count)
        #expect(config["checks"]?.arrayValue?.count == count)
        #expect(config["key"]?.objectValue?.count == count)
        #expect(config.lookup(["services", .index(count - 1), "name"]) == .string("s\(count - 1)"))

        var json = "{"
        for index in 0..<count { json += "\"k\(index)\": \(index), \"dup\": \(index)," }
        json += "\"end\": true}"
        let object = try #require(try JSONConfigParser.parse(json, file: "many.json").objectValue)
        #expect(object.count == count + 2)
        #expect(object["dup"] == .integer(Int64(count - 1)))
        #expect(object.keys[1] == "dup")
    }
}
