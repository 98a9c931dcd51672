/// A Redis reply, copied out of hiredis's memory into Swift values.
///
/// Replies are RESP2 (hiredis 0.14): bulk and status strings, integers, nil,
/// arrays and errors. An error reply only appears as a value inside an array or
/// a pipeline; a top-level error reply is thrown as ``RedisError``.
public enum RedisValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case status(String)
    case string(String)
    case integer(Int)
    case array([RedisValue])
    case error(String)

    /// The value as text: bulk or status string, or an integer in decimal.
    public var string: String? {
        switch self {
        case .string(let s), .status(let s): s
        case .integer(let i): String(i)
        default: nil
        }
    }

    /// The value as an integer: an integer reply or a bulk string holding one.
    public var int: Int? {
        switch self {
        case .integer(let i): i
        case .string(let s): Int(s)
        default: nil
        }
    }

    /// The elements of an array reply; `nil` for anything else.
    public var array: [RedisValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// The reply, or its error thrown as ``RedisError``: for replies taken from
    /// a pipeline or ``RedisClient/send(_:)``, where errors come as values.
    public func checked() throws(RedisError) -> RedisValue {
        if case .error(let message) = self { throw RedisError(.server, message) }
        return self
    }

    public var description: String {
        switch self {
        case .null: "(nil)"
        case .status(let s): s
        case .string(let s): "\"\(s)\""
        case .integer(let i): "(integer) \(i)"
        case .array(let a): "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .error(let e): "(error) \(e)"
        }
    }
}
