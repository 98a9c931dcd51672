/// A Lua script run with EVALSHA, loaded with SCRIPT LOAD when the server
/// answers NOSCRIPT (first use, restart, SCRIPT FLUSH).
public struct RedisScript: Sendable, Hashable {
    /// A short name for errors and logs (the script's file name without `.lua`).
    public let name: String
    public let source: String
    /// SHA-1 of `source` in lowercase hex, as Redis computes it.
    public let sha: String

    public init(name: String, source: String) {
        self.name = name
        self.source = source
        self.sha = SHA1.hex(Array(source.utf8))
    }
}

extension RedisConnection {
    /// Runs `script` with EVALSHA, loading it once on NOSCRIPT.
    @discardableResult
    public func eval(_ script: RedisScript, keys: [String], args: [String]) throws(RedisError) -> RedisValue {
        let command = Self.evalshaCommand(script, keys: keys, args: args)
        do {
            return try self.command(command)
        } catch  where error.isNoScript {
            try self.command(["SCRIPT", "LOAD", script.source])
            return try self.command(command)
        }
    }

    /// Runs many calls of one script in a single pipeline. Replies come back in
    /// order, error replies as ``RedisValue/error(_:)``.
    public func evalPipelined(_ script: RedisScript, calls: [(keys: [String], args: [String])]) throws(RedisError) -> [RedisValue] {
        try run(calls.map { RedisCall.script(script, keys: $0.keys, args: $0.args) })
    }

    /// Sends every call in one write and reads all replies, in order; error
    /// replies come back as ``RedisValue/error(_:)``. Scripts the server did
    /// not know (NOSCRIPT: first use, a restart, SCRIPT FLUSH) are loaded and
    /// those calls sent again, so their replies are the scripts' own.
    public func run(_ calls: [RedisCall]) throws(RedisError) -> [RedisValue] {
        var replies = try pipeline(calls.map(\.arguments))
        var missing: [Int] = []
        var scripts: [String: RedisScript] = [:]
        for i in replies.indices {
            if case .error(let message) = replies[i], message.hasPrefix("NOSCRIPT"), case .script(let script, _, _) = calls[i] {
                missing.append(i)
                scripts[script.sha] = script
            }
        }
        if missing.isEmpty { return replies }
        _ = try pipeline(scripts.values.map { ["SCRIPT", "LOAD", $0.source] })
        let again = try pipeline(missing.map { calls[$0].arguments })
        for (i, reply) in zip(missing, again) { replies[i] = reply }
        return replies
    }

    /// The EVALSHA command line for one call, for callers that pipeline it with others.
    public static func evalshaCommand(_ script: RedisScript, keys: [String], args: [String]) -> [String] {
        var command = ["EVALSHA", script.sha, String(keys.count)]
        command.reserveCapacity(3 + keys.count + args.count)
        command.append(contentsOf: keys)
        command.append(contentsOf: args)
        return command
    }
}

/// One call in a pipeline: a plain command, or a script run with EVALSHA
/// (and loaded on NOSCRIPT by ``RedisConnection/run(_:)``).
public enum RedisCall: Sendable {
    case command([String])
    case script(RedisScript, keys: [String], args: [String])

    /// The command line sent for this call.
    public var arguments: [String] {
        switch self {
        case .command(let arguments): arguments
        case .script(let script, let keys, let args): RedisConnection.evalshaCommand(script, keys: keys, args: args)
        }
    }
}

/// SHA-1, only to name scripts the way Redis does; not used for security.
enum SHA1 {
    static func hex(_ message: [UInt8]) -> String {
        var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
        var data = message
        let bitLength = UInt64(message.count) * 8
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { data.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        var w = [UInt32](repeating: 0, count: 80)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                let b = chunk + i * 4
                w[i] = UInt32(data[b]) << 24 | UInt32(data[b + 1]) << 16 | UInt32(data[b + 2]) << 8 | UInt32(data[b + 3])
            }
            for i in 16..<80 {
                let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                w[i] = x << 1 | x >> 31
            }
            var (a, b, c, d, e) = h
            for i in 0..<80 {
                let f: UInt32
                let k: UInt32
                switch i {
                case 0..<20: (f, k) = ((b & c) | (~b & d), 0x5A82_7999)
                case 20..<40: (f, k) = (b ^ c ^ d, 0x6ED9_EBA1)
                case 40..<60: (f, k) = ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
                default: (f, k) = (b ^ c ^ d, 0xCA62_C1D6)
                }
                let t = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[i]
                e = d
                d = c
                c = b << 30 | b >> 2
                b = a
                a = t
            }
            h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
        }
        return [h.0, h.1, h.2, h.3, h.4].map { word in
            let s = String(word, radix: 16)
            return String(repeating: "0", count: 8 - s.count) + s
        }.joined()
    }
}
