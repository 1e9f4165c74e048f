import Foundation
import Testing
@testable import ConsulAgent

/// Go's `flag` package semantics, which Consul's command lines depend on.
@Suite struct FlagSetTests {
    struct Options {
        var verbose = false
        var name: String?
        var count: Int?
        var items: [String] = []
        var wait: Duration?
    }

    var flags: FlagSet<Options> {
        var flags = FlagSet<Options>(commandName: "test")
        flags.bool("verbose", \.verbose, usage: "be loud")
        flags.string("name", \.name, usage: "a name")
        flags.int("count", \.count, usage: "a count")
        flags.repeated("item", \.items, usage: "an item")
        flags.duration("wait", \.wait, usage: "a wait")
        return flags
    }

    func parse(_ arguments: [String]) throws(FlagError) -> (Options, [String]) {
        var options = Options()
        let rest = try flags.parse(arguments, into: &options)
        return (options, rest)
    }

    @Test func valueFormsAreEquivalent() throws {
        for arguments in [["-name", "web"], ["-name=web"], ["--name", "web"], ["--name=web"]] {
            let (options, rest) = try parse(arguments)
            #expect(options.name == "web")
            #expect(rest.isEmpty)
        }
    }

    @Test func booleansTakeNoSeparateValue() throws {
        #expect(try parse(["-verbose"]).0.verbose)
        #expect(try parse(["--verbose=true"]).0.verbose)
        #expect(try !parse(["-verbose=false"]).0.verbose)
        #expect(try parse(["-verbose=T"]).0.verbose)
        // As in Go, "-verbose false" sets verbose and leaves "false" as the first positional argument.
        let (options, rest) = try parse(["-verbose", "false", "-name", "x"])
        #expect(options.verbose)
        #expect(options.name == nil)
        #expect(rest == ["false", "-name", "x"])
        #expect(throws: FlagError.invalidValue(flag: "verbose", value: "yes", reason: "parse error")) { try parse(["-verbose=yes"]) }
    }

    @Test func parsingStopsAtFirstPositionalOrDoubleDash() throws {
        #expect(try parse(["-name", "a", "key", "-count", "3"]).1 == ["key", "-count", "3"])
        #expect(try parse(["--", "-name", "a"]).1 == ["-name", "a"])
        #expect(try parse(["-", "-name"]).1 == ["-", "-name"])
    }

    @Test func valueMayLookLikeAFlag() throws {
        #expect(try parse(["-name", "-weird"]).0.name == "-weird")
        #expect(try parse(["-name="]).0.name == "")
    }

    @Test func repeatedFlagsKeepOrderAndLastScalarWins() throws {
        let (options, _) = try parse(["-item", "a", "-item=b", "--item", "c", "-name", "x", "-name", "y"])
        #expect(options.items == ["a", "b", "c"])
        #expect(options.name == "y")
    }

    @Test func integersAsGoReadsThem() throws {
        #expect(try parse(["-count", "42"]).0.count == 42)
        #expect(try parse(["-count=-3"]).0.count == -3)
        #expect(try parse(["-count=0x1f"]).0.count == 31)
        #expect(try parse(["-count=010"]).0.count == 8)
        for bad in ["x", "1.5", "--1", "", "0x"] {
            #expect(throws: FlagError.invalidValue(flag: "count", value: bad, reason: "parse error")) { try parse(["-count", bad]) }
        }
    }

    @Test func durations() throws {
        #expect(try parse(["-wait", "1m30s"]).0.wait == .seconds(90))
        #expect(throws: FlagError.invalidValue(flag: "wait", value: "5", reason: "time: missing unit in duration \"5\"")) {
            try parse(["-wait", "5"])
        }
    }

    @Test func errorsUseGosWording() {
        #expect(throws: FlagError.notDefined("bogus")) { try parse(["-bogus"]) }
        #expect(FlagError.notDefined("bogus").description == "flag provided but not defined: -bogus")
        #expect(throws: FlagError.missingValue("name")) { try parse(["-name"]) }
        #expect(FlagError.missingValue("name").description == "flag needs an argument: -name")
        #expect(throws: FlagError.badSyntax("---name")) { try parse(["---name"]) }
        #expect(throws: FlagError.badSyntax("-=x")) { try parse(["-=x"]) }
        #expect(throws: FlagError.helpRequested) { try parse(["-h"]) }
        #expect(throws: FlagError.helpRequested) { try parse(["--help"]) }
    }

    @Test func usageListsFlagsSorted() {
        let usage = flags.usage
        let names = ["-count=<int>", "-item=<value>", "-name=<value>", "-verbose", "-wait=<duration>"]
        var position = usage.startIndex
        for name in names {
            let found = usage.range(of: name, range: position..<usage.endIndex)
            #expect(found != nil, "missing \(name)")
            if let found { position = found.upperBound }
        }
    }
}
