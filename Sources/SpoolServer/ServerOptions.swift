/// How `spool serve` listens and guards itself. Every field has a default.
public struct ServerOptions: Sendable {
    /// Address to bind. Loopback by default; any other address needs a `token`.
    public var host = "127.0.0.1"
    /// TCP port; 0 lets the kernel pick one (read it from `onListening`).
    public var port = 8080
    /// Bearer token that POST requests must carry (`Authorization: Bearer …`);
    /// nil leaves them open, which is allowed on a loopback address only.
    public var token: String?
    /// Largest request body in bytes; larger ones get 413. Default 1 MiB.
    public var maxBodyBytes = 1024 * 1024
    /// Redis connections for ordinary requests, used in turn, so a slow call
    /// does not hold up the others (each event stream has its own besides).
    public var connections = 4
    /// Event streams open at once; more get 503.
    public var maxStreams = 256
    /// Seconds between keep-alive comments on an idle event stream; they also
    /// reveal a client that went away.
    public var keepAliveSeconds: Double = 15
    /// Most jobs one page of `GET /queues/{queue}/jobs` may skip (`offset`).
    public var maxOffset = 5000

    public init() {}

    /// True for 127.0.0.0/8, ::1 and `localhost`.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" || h == "::1" || h == "[::1]" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else { return false }
        return parts[0] == "127"
    }

    /// Throws a one-line reason when these options must not be used.
    public func validate() throws(ServerOptionsError) {
        guard !host.isEmpty else { throw ServerOptionsError("--host must not be empty") }
        guard (0...65535).contains(port) else { throw ServerOptionsError("--port must be between 0 and 65535") }
        if let token, token.isEmpty || token.contains(where: { $0.isWhitespace }) {
            throw ServerOptionsError("the token must be non-empty and without spaces")
        }
        if token == nil && !Self.isLoopback(host) {
            throw ServerOptionsError(
                "refusing to listen on \(host) without a token: anyone who can reach it could enqueue, cancel and retry jobs; "
                    + "set --token or SPOOL_TOKEN, or bind 127.0.0.1")
        }
        guard maxBodyBytes >= 1024 else { throw ServerOptionsError("the request body limit must be at least 1024 bytes") }
        guard connections >= 1, maxStreams >= 1, keepAliveSeconds > 0, maxOffset >= 0 else {
            throw ServerOptionsError("connections, stream limit and keep-alive must be positive")
        }
    }
}

/// Options that cannot be used, with the reason.
public struct ServerOptionsError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
