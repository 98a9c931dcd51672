/// Where and how to reach Redis, parsed from a URL.
///
/// Forms: `redis://[[user]:password@]host[:port][/db]` and
/// `unix://[[user]:password@]/path/to/socket[?db=N]`. The password is kept out of
/// ``description`` so the value can be logged.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public enum Address: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var address: Address
    public var user: String?
    public var password: String?
    public var database: Int

    public init(address: Address, user: String? = nil, password: String? = nil, database: Int = 0) {
        self.address = address
        self.user = user
        self.password = password
        self.database = database
    }

    /// Parses a Redis URL; throws a message naming what is wrong (never the password).
    public init(parsing text: String) throws(RedisURLError) {
        guard let schemeEnd = text.firstRange(of: "://") else {
            throw RedisURLError("Redis URL must start with redis:// or unix://")
        }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        var rest = Substring(text[schemeEnd.upperBound...])
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let u = String(credentials[..<colon])
                user = u.isEmpty ? nil : Self.percentDecoded(u)
                password = Self.percentDecoded(String(credentials[credentials.index(after: colon)...]))
            } else if !credentials.isEmpty {
                // `redis://secret@host` is the old password-only form.
                password = Self.percentDecoded(String(credentials))
            }
        }
        var database = 0
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { continue }
            switch kv[0] {
            case "db":
                guard let db = Int(kv[1]), db >= 0 else { throw RedisURLError("Redis URL has a bad db: \(kv[1])") }
                database = db
            case "password": password = Self.percentDecoded(kv[1])
            case "user", "username": user = Self.percentDecoded(kv[1])
            default: break
            }
        }
        switch scheme {
        case "redis":
            var hostPort = rest
            if let slash = rest.firstIndex(of: "/") {
                hostPort = rest[..<slash]
                let db = rest[rest.index(after: slash)...]
                if !db.isEmpty {
                    guard let n = Int(db), n >= 0 else { throw RedisURLError("Redis URL has a bad database number: \(db)") }
                    database = n
                }
            }
            var host = String(hostPort)
            var port = 6379
            if hostPort.hasPrefix("[") {  // [::1]:6379
                guard let close = hostPort.firstIndex(of: "]") else { throw RedisURLError("Redis URL has an unclosed [ in its host") }
                host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
                let after = hostPort[hostPort.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()), (1...65535).contains(p) else {
                        throw RedisURLError("Redis URL has a bad port: \(after.dropFirst())")
                    }
                    port = p
                }
            } else if let colon = hostPort.lastIndex(of: ":") {
                host = String(hostPort[..<colon])
                let p = hostPort[hostPort.index(after: colon)...]
                guard let n = Int(p), (1...65535).contains(n) else { throw RedisURLError("Redis URL has a bad port: \(p)") }
                port = n
            }
            if host.isEmpty { host = "127.0.0.1" }
            self.init(address: .tcp(host: host, port: port), user: user, password: password, database: database)
        case "unix":
            let path = String(rest)
            guard path.hasPrefix("/") else { throw RedisURLError("unix:// Redis URL needs an absolute socket path") }
            self.init(address: .unix(path: path), user: user, password: password, database: database)
        default:
            throw RedisURLError("Redis URL scheme must be redis or unix, not \(scheme)")
        }
    }

    /// The URL with the password replaced by `***`.
    public var description: String {
        var credentials = ""
        if user != nil || password != nil {
            credentials = (user ?? "") + (password != nil ? ":***" : "") + "@"
        }
        switch address {
        case .tcp(let host, let port):
            let h = host.contains(":") ? "[\(host)]" : host
            return "redis://\(credentials)\(h):\(port)/\(database)"
        case .unix(let path):
            return "unix://\(credentials)\(path)" + (database != 0 ? "?db=\(database)" : "")
        }
    }

    private static func percentDecoded(_ s: String) -> String {
        guard s.contains("%") else { return s }
        var bytes: [UInt8] = []
        var i = s.utf8.startIndex
        let u = s.utf8
        while i < u.endIndex {
            let c = u[i]
            if c == UInt8(ascii: "%"), let h1 = u.index(i, offsetBy: 1, limitedBy: u.endIndex), h1 < u.endIndex,
                let h2 = u.index(i, offsetBy: 2, limitedBy: u.endIndex), h2 < u.endIndex,
                let v = UInt8(String(decoding: [u[h1], u[h2]], as: UTF8.self), radix: 16)
            {
                bytes.append(v)
                i = u.index(i, offsetBy: 3)
            } else {
                bytes.append(c)
                i = u.index(after: i)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A Redis URL that could not be parsed; the message never contains the password.
public struct RedisURLError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
