import ConsulCore
import Testing

/// RE2 syntax, matched without backtracking. Expectations are Go's `regexp.MatchString` results.
@Suite struct LinearRegexTests {
    static func match(_ pattern: String, _ text: String) throws -> Bool {
        try LinearRegex(pattern).matches(text)
    }

    @Test(arguments: [
        // (pattern, text, matches)
        ("web", "my-web-1", true),
        ("^web", "my-web-1", false),
        ("^web", "web-1", true),
        ("1$", "web-1", true),
        ("^$", "", true),
        ("", "anything", true),
        ("a.c", "abc", true),
        ("a.c", "a\nc", false),
        ("(?s)a.c", "a\nc", true),
        ("^(?:db|web)-[0-9]+$", "web-12", true),
        ("^(?:db|web)-[0-9]+$", "web-", false),
        ("^(db|web)-\\d{2}$", "db-07", true),
        ("^(db|web)-\\d{2}$", "db-007", false),
        ("^a{2,3}$", "aaa", true),
        ("^a{2,3}$", "aaaa", false),
        ("^a{2,}$", "aaaaaa", true),
        ("^a{2}$", "a", false),
        ("a{,2}", "a{,2}", true),  // not a count: literal braces, as RE2
        ("x{", "x{", true),
        ("colou?r", "color", true),
        ("colou?r", "colour", true),
        ("ab+c", "ac", false),
        ("ab*c", "ac", true),
        ("ab*?c", "abbc", true),
        ("[^a-c]", "abc", false),
        ("[^a-c]", "abcd", true),
        ("[]a]", "]", true),
        ("[a-]", "-", true),
        ("[[:alpha:]]+[[:digit:]]", "abc7", true),
        ("[[:^alpha:]]", "abc", false),
        ("[\\d\\s]", "x y", true),
        ("\\W", "abc_9", false),
        ("\\bweb\\b", "a web b", true),
        ("\\bweb\\b", "website", false),
        ("\\Bweb", "cobweb", true),
        ("\\Aab\\z", "ab", true),
        ("\\Aab\\z", "ab\n", false),
        ("(?m)^b$", "a\nb\nc", true),
        ("^b$", "a\nb\nc", false),
        ("(?i)WEB", "my-web", true),
        ("(?i:W)eb", "web", true),
        ("(?i:W)EB", "web", false),
        ("(?i)[A-C]x", "bX", true),
        ("(?i)[^a]", "A", false),
        ("\\Q.*+\\E", "a.*+b", true),
        ("\\Q.*+\\E", "aaa", false),
        ("\\x41\\x{263a}", "A\u{263A}", true),
        ("\\101", "A", true),
        ("\\.", "a", false),
        ("(?P<name>ab)c", "abc", true),
        ("é+", "caféé", true),
        ("(a*)*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", true),
        ("(a|ab)(c|bcd)(d*)", "abcd", true),
    ])
    func matchesLikeGo(_ pattern: String, _ text: String, _ expected: Bool) throws {
        #expect(try Self.match(pattern, text) == expected, "\(pattern) on \(text)")
    }

    /// Patterns that make a backtracking engine take exponential time finish here in one pass
    /// over the text (a test that hung would be the failure).
    @Test func pathologicalPatternsRunInOnePass() throws {
        let text = String(repeating: "a", count: 5000) + "!"
        #expect(try Self.match("(a*)*b", text) == false)
        #expect(try Self.match("(a|a)*$x", text) == false)
        #expect(try Self.match("^(a+)+$", text) == false)
        #expect(try Self.match("(x+x+)+y", String(repeating: "x", count: 5000)) == false)
        #expect(try Self.match("(.*a){20}", text) == true)
    }

    @Test(arguments: [
        ("[a", "error parsing regexp: missing closing ]: `[a`"),
        ("(a", "error parsing regexp: missing closing ): `(a`"),
        ("a)", "error parsing regexp: unexpected ): `a)`"),
        ("*a", "error parsing regexp: missing argument to repetition operator: `*`"),
        ("a**", "error parsing regexp: invalid nested repetition operator: `a**`"),
        ("a{1001}", "error parsing regexp: invalid repeat count: `{1001}`"),
        ("a{3,2}", "error parsing regexp: invalid repeat count: `{3,2}`"),
        ("[z-a]", "error parsing regexp: invalid character class range: `z-a`"),
        ("\\1", "error parsing regexp: invalid escape sequence: `\\1`"),
        ("\\q", "error parsing regexp: invalid escape sequence: `\\q`"),
        ("(?<>a)", "error parsing regexp: invalid named capture: `(?<>`"),
        ("(?z)", "error parsing regexp: invalid or unsupported Perl syntax: `(?z`"),
        ("a\\", "error parsing regexp: trailing backslash at end of expression: ``"),
    ])
    func badPatternsAreRefusedWithGosWords(_ pattern: String, _ message: String) {
        #expect(throws: LinearRegex.SyntaxError.self) { try LinearRegex(pattern) }
        do {
            _ = try LinearRegex(pattern)
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func unicodeClassesAndHugeProgramsAreRefused() {
        #expect(throws: LinearRegex.SyntaxError.self) { try LinearRegex("\\pL") }
        #expect(throws: LinearRegex.SyntaxError.self) { try LinearRegex("(a{1000}){1000}") }
        #expect(throws: LinearRegex.SyntaxError.self) { try LinearRegex("((((a{100}){100}){100}){100})") }
    }
}
