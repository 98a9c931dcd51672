import Spool

/// Any JSON value: job payloads and results travel through the API as JSON,
/// not as strings holding JSON.
///
/// A value keeps what its text said, so that a payload comes back as it was
/// sent: numbers keep their digits (`12345678901234567890` and `1.0` are not
/// re-read as a `Double`), objects keep the order of their members and any
/// repeated name. Only insignificant whitespace and the spelling of string
/// escapes change.
enum JSONValue: Sendable, Equatable, Encodable {
    case null
    case bool(Bool)
    /// The number's text as written: RFC 8259's `number`.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([Member])

    struct Member: Sendable, Equatable {
        let name: String
        let value: JSONValue
    }

    /// The deepest nesting of arrays and objects the API reads as a value
    /// (values are built by recursion).
    static let maxDepth = 64

    /// Parses JSON text (any value at the top); nil when it is not JSON, nests
    /// deeper than ``maxDepth``, or escapes a lone UTF-16 surrogate.
    init?(text: String) {
        var text = text
        guard let value = text.withUTF8({ JSONValue(bytes: $0) }) else { return nil }
        self = value
    }

    /// Parses UTF-8 bytes as one JSON text; nil as for `init(text:)`, and when
    /// a string is not valid UTF-8.
    init?(bytes: UnsafeBufferPointer<UInt8>) {
        guard JSONValidator.isValid(bytes: bytes, maxDepth: Self.maxDepth) else { return nil }
        var parser = JSONParser(bytes: bytes)
        guard let value = parser.value() else { return nil }
        self = value
    }

    /// Stored JSON text as a value, or the text as a string when it is not JSON.
    init(storedText text: String) {
        self = JSONValue(text: text) ?? .string(text)
    }

    /// Compact JSON text.
    var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Compact JSON text as UTF-8.
    var bytes: [UInt8] {
        var out: [UInt8] = []
        write(to: &out)
        return out
    }

    /// The members by name, when this is an object; nil for any other value.
    /// A name given twice is an error: which one was meant cannot be known.
    func fields() throws(APIError) -> [String: JSONValue]? {
        guard case .object(let members) = self else { return nil }
        var fields: [String: JSONValue] = [:]
        for member in members {
            guard fields.updateValue(member.value, forKey: member.name) == nil else {
                throw APIError(.badRequest, "\"\(member.name)\" is given twice")
            }
        }
        return fields
    }

    /// The number as a whole number, when it is one (`3`, `3.0`, `3e0`) and
    /// fits in 64 bits.
    var integer: Int64? {
        guard case .number(let text) = self else { return nil }
        if let exact = Int64(text) { return exact }
        guard let d = Double(text), d == d.rounded(), abs(d) < 0x1p63 else { return nil }
        return Int64(d)
    }

    /// The number as the nearest `Double`, when it is finite.
    var double: Double? {
        guard case .number(let text) = self, let d = Double(text), d.isFinite else { return nil }
        return d
    }

    /// For encoders other than `JSONTreeEncoder` (which takes the value as it
    /// is): they can only write a number as a `Double`.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .number(let text): try container.encode(Double(text) ?? .nan)
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object: try container.encode((try? fields()) ?? [:])
        }
    }

    /// The JSON type's name, for error messages.
    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let text): out.append(contentsOf: text.utf8)
        case .string(let s): Self.write(string: s, to: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                element.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, member) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.write(string: member.name, to: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped,
    /// everything else (slashes, non-ASCII) as it is.
    static func write(string: String, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), byte])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case ..<0x20: out.append(contentsOf: Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Builds a `JSONValue` from bytes that `JSONValidator` has accepted, so the
/// grammar needs no checking here: only string contents can still fail
/// (invalid UTF-8, a lone surrogate).
private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func skipWhitespace() {
        while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 {
            index += 1
        }
    }

    mutating func value() -> JSONValue? {
        skipWhitespace()
        switch bytes[index] {
        case UInt8(ascii: "n"):
            index += 4
            return .null
        case UInt8(ascii: "t"):
            index += 4
            return .bool(true)
        case UInt8(ascii: "f"):
            index += 5
            return .bool(false)
        case UInt8(ascii: "\""): return string().map(JSONValue.string)
        case UInt8(ascii: "["):
            var elements: [JSONValue] = []
            index += 1
            while true {
                skipWhitespace()
                if bytes[index] == UInt8(ascii: "]") { break }
                if bytes[index] == UInt8(ascii: ",") { index += 1 }
                guard let element = value() else { return nil }
                elements.append(element)
            }
            index += 1
            return .array(elements)
        case UInt8(ascii: "{"):
            var members: [JSONValue.Member] = []
            index += 1
            while true {
                skipWhitespace()
                if bytes[index] == UInt8(ascii: "}") { break }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    skipWhitespace()
                }
                guard let name = string() else { return nil }
                skipWhitespace()
                index += 1  // the colon
                guard let member = value() else { return nil }
                members.append(JSONValue.Member(name: name, value: member))
            }
            index += 1
            return .object(members)
        default:
            let start = index
            while index < bytes.count, Self.isNumberByte(bytes[index]) { index += 1 }
            return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self))
        }
    }

    /// Digits, sign, point or exponent: what a number (already checked) is made of.
    static func isNumberByte(_ b: UInt8) -> Bool {
        b &- UInt8(ascii: "0") < 10 || b == UInt8(ascii: "-") || b == UInt8(ascii: "+") || b == UInt8(ascii: ".") || b | 0x20 == UInt8(ascii: "e")
    }

    /// A string starting at its opening quote, escapes decoded.
    mutating func string() -> String? {
        index += 1
        var utf8: [UInt8] = []
        while bytes[index] != UInt8(ascii: "\"") {
            let byte = bytes[index]
            index += 1
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                continue
            }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                guard let scalar = unicodeEscape() else { return nil }
                utf8.append(contentsOf: String(Character(scalar)).utf8)
            default: utf8.append(escape)  // " \ /
            }
        }
        index += 1
        return String(validating: utf8, as: UTF8.self)
    }

    /// The scalar of a `\uXXXX` escape (its `\u` read), joining a surrogate
    /// pair written as two escapes; nil for a lone surrogate.
    mutating func unicodeEscape() -> Unicode.Scalar? {
        let unit = hex4()
        guard (0xD800...0xDFFF).contains(unit) else { return Unicode.Scalar(unit) }
        guard unit < 0xDC00, bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
        else { return nil }
        index += 2
        let low = hex4()
        guard (0xDC00...0xDFFF).contains(low) else { return nil }
        return Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
    }

    /// Four hex digits (the validator has checked them).
    mutating func hex4() -> UInt32 {
        var unit: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[index]
            index += 1
            unit = unit << 4 + UInt32(b <= UInt8(ascii: "9") ? b - UInt8(ascii: "0") : (b | 0x20) - UInt8(ascii: "a") + 10)
        }
        return unit
    }
}

/// How the API writes JSON: compact, keys of the API's own objects sorted,
/// slashes unescaped, and the `JSONValue`s inside (payloads, results) as they
/// are, numbers included.
enum WireJSON {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        // Every type written here encodes without failing (no non-finite numbers).
        ((try? JSONTreeEncoder.encode(value)) ?? .null).bytes
    }
}
