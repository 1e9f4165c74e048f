import ConsulCore

/// A request body read as JSON, with Go's encoding/json manners: object keys match field names
/// case-insensitively, and a value of the wrong type is a 400 naming the field.
struct JSONBody: Sendable {
    /// Bodies above this are refused before parsing (KV values have their own, smaller limit).
    static let maxBytes = 4 << 20

    let value: ConfigValue

    init(_ value: ConfigValue) { self.value = value }

    static func parse(_ bytes: [UInt8]) throws(APIError) -> JSONBody {
        guard bytes.count <= maxBytes else { throw .tooLarge("Request body too large, max size: \(maxBytes) bytes") }
        do {
            return JSONBody(try JSONConfigParser.parseValue(bytes: bytes, file: "request body"))
        } catch {
            throw .badRequest("Request decode failed: \(error)")
        }
    }

    func member(_ key: String) -> ConfigValue? {
        guard let object = value.objectValue else { return nil }
        if let exact = object[key] { return exact }
        let lowered = key.lowercased()
        return object.members.first { $0.key.lowercased() == lowered }?.value
    }

    func isObject() -> Bool { value.objectValue != nil }

    func string(_ key: String) throws(APIError) -> String? {
        guard let member = member(key), !member.isNull else { return nil }
        guard let string = member.stringValue else { throw Self.typeError(key, "a string", member) }
        return string
    }

    func int(_ key: String) throws(APIError) -> Int? {
        guard let member = member(key), !member.isNull else { return nil }
        guard let number = member.integerValue, let value = Int(exactly: number) else { throw Self.typeError(key, "an integer", member) }
        return value
    }

    func bool(_ key: String) throws(APIError) -> Bool? {
        guard let member = member(key), !member.isNull else { return nil }
        guard let value = member.boolValue else { throw Self.typeError(key, "a boolean", member) }
        return value
    }

    func strings(_ key: String) throws(APIError) -> [String]? {
        guard let member = member(key), !member.isNull else { return nil }
        guard let elements = member.arrayValue else { throw Self.typeError(key, "a list of strings", member) }
        var result: [String] = []
        for element in elements {
            guard let string = element.stringValue else { throw Self.typeError(key, "a list of strings", element) }
            result.append(string)
        }
        return result
    }

    func stringMap(_ key: String) throws(APIError) -> [String: String]? {
        guard let member = member(key), !member.isNull else { return nil }
        guard let object = member.objectValue else { throw Self.typeError(key, "an object of strings", member) }
        var result: [String: String] = [:]
        for entry in object.members {
            guard let string = entry.value.stringValue else { throw Self.typeError("\(key).\(entry.key)", "a string", entry.value) }
            result[entry.key] = string
        }
        return result
    }

    func object(_ key: String) throws(APIError) -> JSONBody? {
        guard let member = member(key), !member.isNull else { return nil }
        guard member.objectValue != nil else { throw Self.typeError(key, "an object", member) }
        return JSONBody(member)
    }

    func objects(_ key: String) throws(APIError) -> [JSONBody]? {
        guard let member = member(key), !member.isNull else { return nil }
        guard let elements = member.arrayValue else { throw Self.typeError(key, "a list of objects", member) }
        var result: [JSONBody] = []
        for element in elements {
            guard element.objectValue != nil else { throw Self.typeError(key, "a list of objects", element) }
            result.append(JSONBody(element))
        }
        return result
    }

    private static func typeError(_ key: String, _ expected: String, _ found: ConfigValue) -> APIError {
        .badRequest("Request decode failed: \(key) must be \(expected), not \(found.kindDescription)")
    }
}
