import Foundation
import Spool

/// Any JSON value: job payloads and results travel through the API as JSON,
/// not as strings holding JSON.
enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The deepest nesting of arrays and objects the API reads as a value:
    /// decoding time grows much faster than the depth.
    static let maxDepth = 64

    /// Parses JSON text (any value at the top); nil when it is not JSON or
    /// nests deeper than ``maxDepth``.
    init?(text: String) {
        guard JSONValidator.isValid(text, maxDepth: Self.maxDepth),
            let value = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else { return nil }
        self = value
    }

    /// Stored JSON text as a value, or the text as a string when it is not JSON.
    init(storedText text: String) {
        self = JSONValue(text: text) ?? .string(text)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? container.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? container.decode(Double.self) {
            self = .double(d)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .int(let i): try container.encode(i)
        case .double(let d): try container.encode(d)
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object(let o): try container.encode(o)
        }
    }

    /// Compact JSON text, keys sorted.
    var text: String { String(decoding: WireJSON.encode(self), as: UTF8.self) }

    var objectValue: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The JSON type's name, for error messages.
    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// How the API writes JSON: compact, keys sorted, slashes unescaped.
enum WireJSON {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every type written here encodes without failing (no non-finite numbers).
        return Array((try? encoder.encode(value)) ?? Data("null".utf8))
    }
}
