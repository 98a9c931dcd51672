/// Encodes any `Encodable` as a `JSONValue`, for the API's responses.
///
/// `JSONEncoder` cannot write a number from its text: a payload's
/// `12345678901234567890` would come out as `1.2345678901234567e+19`. This
/// encoder takes a `JSONValue` inside the value as it is and builds the rest
/// as `JSONEncoder` with `.sortedKeys` would: nil optionals left out, keys
/// sorted, whole `Double`s without `.0`.
enum JSONTreeEncoder {
    static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        let root = Slot()
        try root.store(value, codingPath: [])
        return root.value
    }
}

/// One value under construction: an object or array whose members are still
/// being written, or a finished value.
private final class Slot {
    var members: [String: Slot]?
    var elements: [Slot]?
    var finished: JSONValue?

    /// The value; an `Encodable` that wrote nothing is an empty object, as with `JSONEncoder`.
    var value: JSONValue {
        if let finished { return finished }
        if let elements { return .array(elements.map(\.value)) }
        let sorted = (members ?? [:]).sorted { $0.key < $1.key }
        return .object(sorted.map { JSONValue.Member(name: $0.key, value: $0.value.value) })
    }

    func store<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws {
        if let scalar = try Self.scalar(value, codingPath: codingPath) {
            finished = scalar
        } else {
            try value.encode(to: TreeEncoder(slot: self, codingPath: codingPath))
        }
    }

    /// The value when it is one JSON scalar (or a `JSONValue`), else nil.
    static func scalar<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws -> JSONValue? {
        switch value {
        case let v as JSONValue: return v
        case let v as String: return .string(v)
        case let v as Bool: return .bool(v)
        // Every integer type: one left out would come back here through its
        // own encode(to:) for ever.
        case let v as Int: return .number(String(v))
        case let v as Int8: return .number(String(v))
        case let v as Int16: return .number(String(v))
        case let v as Int32: return .number(String(v))
        case let v as Int64: return .number(String(v))
        case let v as UInt: return .number(String(v))
        case let v as UInt8: return .number(String(v))
        case let v as UInt16: return .number(String(v))
        case let v as UInt32: return .number(String(v))
        case let v as UInt64: return .number(String(v))
        case let v as Double: return try number(v, codingPath: codingPath)
        case let v as Float: return try number(Double(v), codingPath: codingPath)
        default: return nil
        }
    }

    static func number(_ d: Double, codingPath: [any CodingKey]) throws -> JSONValue {
        guard d.isFinite else {
            throw EncodingError.invalidValue(d, .init(codingPath: codingPath, debugDescription: "\(d) is not a JSON number"))
        }
        let text = d.description
        return .number(text.hasSuffix(".0") ? String(text.dropLast(2)) : text)
    }

    func child(for key: String) -> Slot {
        let slot = Slot()
        if members == nil { members = [:] }
        members?[key] = slot
        return slot
    }

    func appended() -> Slot {
        let slot = Slot()
        if elements == nil { elements = [] }
        elements?.append(slot)
        return slot
    }
}

private struct TreeEncoder: Encoder {
    let slot: Slot
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if slot.members == nil { slot.members = [:] }
        return KeyedEncodingContainer(KeyedSlot<Key>(slot: slot, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if slot.elements == nil { slot.elements = [] }
        return UnkeyedSlot(slot: slot, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleSlot(slot: slot, codingPath: codingPath) }
}

private struct KeyedSlot<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let slot: Slot
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { slot.child(for: key.stringValue).finished = .null }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try slot.child(for: key.stringValue).store(value, codingPath: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        TreeEncoder(slot: slot.child(for: key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        TreeEncoder(slot: slot.child(for: key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        TreeEncoder(slot: slot.child(for: "super"), codingPath: codingPath)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        TreeEncoder(slot: slot.child(for: key.stringValue), codingPath: codingPath + [key])
    }
}

private struct UnkeyedSlot: UnkeyedEncodingContainer {
    let slot: Slot
    let codingPath: [any CodingKey]
    var count: Int { slot.elements?.count ?? 0 }

    mutating func encodeNil() throws { slot.appended().finished = .null }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try slot.appended().store(value, codingPath: codingPath)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        TreeEncoder(slot: slot.appended(), codingPath: codingPath).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        TreeEncoder(slot: slot.appended(), codingPath: codingPath).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { TreeEncoder(slot: slot.appended(), codingPath: codingPath) }
}

private struct SingleSlot: SingleValueEncodingContainer {
    let slot: Slot
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { slot.finished = .null }

    mutating func encode<T: Encodable>(_ value: T) throws { try slot.store(value, codingPath: codingPath) }
}
