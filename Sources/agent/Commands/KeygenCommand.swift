import ConsulCrypto

/// `consul keygen`: a new gossip encryption key, 32 bytes from OpenSSL's CSPRNG, base64-encoded.
enum KeygenCommand {
    static let help = """
        Usage: consul keygen

          Generates a new encryption key that can be used to configure the
          agent to encrypt traffic. The output of this command is already
          in the proper format that the agent expects.

        """

    static func run(_ arguments: [String], io: CommandIO) -> Int32 {
        var nothing = NoOptions()
        switch parseFlags(FlagSet<NoOptions>(commandName: "keygen"), arguments, into: &nothing, help: help, io: io) {
        case .exit(let code):
            return code
        case .parsed(let rest) where !rest.isEmpty:
            io.errorLine("This command takes no arguments")
            return 1
        case .parsed:
            io.line(GossipKey.generate().base64)
            return 0
        }
    }
}

struct NoOptions {}
