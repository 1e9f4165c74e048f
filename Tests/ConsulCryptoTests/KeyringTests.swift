import Testing
@testable import ConsulCrypto

@Suite struct KeyringTests {
    let first = GossipKey.generate()
    let second = GossipKey.generate()
    let third = GossipKey.generate()

    @Test func primaryComesFirstAndDuplicatesAreIgnored() {
        var ring = Keyring(primary: first, secondary: [second, first])
        #expect(ring.keys == [first, second])
        ring.install(third)
        ring.install(second)
        #expect(ring.keys == [first, second, third])
        #expect(ring.primaryKey == first)
        #expect(ring.base64Keys == [first.base64, second.base64, third.base64])
    }

    @Test func useMakesAnInstalledKeyPrimary() throws {
        var ring = Keyring(primary: first, secondary: [second, third])
        try ring.use(third)
        #expect(ring.keys == [third, first, second])
        #expect(throws: KeyringError.keyNotInstalled) { try ring.use(GossipKey.generate()) }
        #expect(KeyringError.keyNotInstalled.description == "Requested key is not in the keyring")
    }

    @Test func removingThePrimaryIsRefused() throws {
        var ring = Keyring(primary: first, secondary: [second])
        #expect(throws: KeyringError.removingPrimary) { try ring.remove(first) }
        #expect(KeyringError.removingPrimary.description == "Removing the primary key is not allowed")
        try ring.remove(second)
        #expect(ring.keys == [first])
        // Not installed: nothing to do, as memberlist.
        try ring.remove(third)
        #expect(ring.keys == [first])
    }

    @Test func emptyKeyListIsAnError() {
        #expect(throws: KeyringError.empty) { try Keyring(keys: []) }
    }

    /// The rotation operators perform: install new, switch to it, remove old; traffic keeps flowing
    /// between a node that has switched and one that has only installed.
    @Test func rotationKeepsOldAndNewNodesTalking() throws {
        var switched = Keyring(primary: first)
        var lagging = Keyring(primary: first)
        switched.install(second)
        lagging.install(second)
        try switched.use(second)
        let fromSwitched = switched.encrypt(Array("ping".utf8))
        let fromLagging = lagging.encrypt(Array("ack".utf8))
        #expect(try lagging.decrypt(fromSwitched) == Array("ping".utf8))
        #expect(try switched.decrypt(fromLagging) == Array("ack".utf8))
        try switched.remove(first)
        // The lagging node still sends with the old key, which the switched node has dropped.
        #expect(throws: GossipDecryptError.noKeyCouldDecrypt) { try switched.decrypt(lagging.encrypt([1, 2, 3])) }
    }
}
