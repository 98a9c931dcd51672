/// An error talking to Redis.
///
/// `connection` means the socket is gone or never came up (the connection is
/// dropped and must be rebuilt); `server` is an error reply on a live
/// connection; `protocol` is a reply of an unexpected shape.
public struct RedisError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case connection
        case timeout
        case server
        case `protocol`
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The connection is unusable: reconnect before the next command.
    public var isConnectionLost: Bool { kind == .connection || kind == .timeout }

    /// EVALSHA named a script the server does not have (restart, SCRIPT FLUSH).
    public var isNoScript: Bool { kind == .server && message.hasPrefix("NOSCRIPT") }

    /// The server is loading its data set (just restarted) or is a replica that
    /// cannot take writes: transient, worth retrying after a pause.
    public var isTransient: Bool {
        isConnectionLost
            || (kind == .server
                && (message.hasPrefix("LOADING") || message.hasPrefix("READONLY")
                    || message.hasPrefix("MASTERDOWN") || message.hasPrefix("TRYAGAIN")))
    }

    public var description: String {
        switch kind {
        case .connection: "redis connection: \(message)"
        case .timeout: "redis timeout: \(message)"
        case .server: "redis: \(message)"
        case .protocol: "redis protocol: \(message)"
        }
    }
}
