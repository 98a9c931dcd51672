import Foundation

/// What a producer asks for: a job of `type` on `queue` with a JSON payload.
public struct JobRequest: Sendable, Equatable {
    public var queue: String
    public var type: String
    /// JSON text (any JSON value).
    public var payload: String
    /// Attempts before the job is dead; nil uses the queue's policy.
    public var maxAttempts: Int?
    /// Seconds a handler may run per attempt; nil uses the queue's policy.
    public var timeout: Double?
    /// Unix time in ms at which the job becomes runnable; nil runs it now.
    public var runAt: Int?
    /// Retry backoff for this job, overriding the queue's (seconds).
    public var backoffBase: Double?
    public var backoffCap: Double?
    /// -100…100; higher runs first, 0 is normal. See ``JobPriority``.
    public var priority: Int = 0
    /// Idempotency key: enqueueing again with the same key returns the first
    /// job's id while that job is kept (running, waiting, or finished less than
    /// the queue's `unique_window` ago) instead of making a new job.
    public var idempotencyKey: String?
    /// An http(s) URL that receives the job's final state as a POST.
    public var callback: String?

    public init(queue: String, type: String, payload: String = "null", maxAttempts: Int? = nil, timeout: Double? = nil, runAt: Int? = nil) {
        self.queue = queue
        self.type = type
        self.payload = payload
        self.maxAttempts = maxAttempts
        self.timeout = timeout
        self.runAt = runAt
    }

    /// A request whose payload is `value` encoded as JSON.
    public init<P: Encodable>(queue: String, type: String, encoding value: P) throws {
        let data = try JSONEncoder().encode(value)
        self.init(queue: queue, type: type, payload: String(decoding: data, as: UTF8.self))
    }

    /// Checks names, JSON and limits; the message says exactly what is wrong.
    public func validate(payloadLimit: Int) throws(SpoolError) {
        func bad(_ m: String) -> SpoolError { SpoolError(.invalidInput, "enqueue", queue: queue, m) }
        guard Names.isValid(queue) else { throw bad("queue name \"\(queue)\" \(Names.rule)") }
        guard Names.isValid(type) else { throw bad("job type \"\(type)\" \(Names.rule)") }
        let size = payload.utf8.count
        guard size <= payloadLimit else {
            throw SpoolError(.invalidPayload, "enqueue", queue: queue, "payload is \(size) bytes, over the limit of \(payloadLimit) (payload_limit)")
        }
        guard JSONValidator.isValid(payload) else {
            // Only a rejected payload pays for Foundation's parse, for its message.
            let reason = JSONCheck.parseError(payload).map { ": \($0)" } ?? ""
            throw SpoolError(.invalidPayload, "enqueue", queue: queue, "payload is not valid JSON\(reason)")
        }
        if let maxAttempts, !(1...1000).contains(maxAttempts) { throw bad("max attempts must be between 1 and 1000") }
        // Stored in whole ms, where 0 would mean "the queue's default".
        if let timeout, !(timeout >= 0.001 && timeout <= 7 * 86400) { throw bad("timeout must be from 0.001 to 604800 seconds") }
        if let backoffBase, backoffBase < 0 { throw bad("backoff base must not be negative") }
        if let backoffCap, backoffCap < (backoffBase ?? 0) { throw bad("backoff cap must not be below the base") }
        guard (-100...100).contains(priority) else { throw bad("priority must be between -100 and 100") }
        if let key = idempotencyKey, !(1...200).contains(key.utf8.count) || key.contains(where: { $0.isWhitespace || $0.isNewline }) {
            throw bad("idempotency key must be 1 to 200 characters without spaces")
        }
        if let callback, !Self.isCallbackURL(callback) {
            throw bad("callback must be an http:// or https:// URL with a host, of at most 2048 visible ASCII characters")
        }
    }

    /// `http://` or `https://`, a host (what comes before the first `/`, `?`
    /// or `#` is not empty), at most 2048 bytes from `!` to `~`.
    static func isCallbackURL(_ url: String) -> Bool {
        guard url.utf8.count <= 2048, url.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else { return false }
        let lower = url.lowercased()
        let scheme = lower.hasPrefix("https://") ? 8 : lower.hasPrefix("http://") ? 7 : nil
        guard let scheme else { return false }
        let authority = url.utf8.dropFirst(scheme).prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
        return !authority.isEmpty
    }
}

enum JSONCheck {
    /// Foundation's parse error, reduced to its useful sentence.
    static func reason(_ error: any Error) -> String {
        let ns = error as NSError
        if let debug = ns.userInfo["NSDebugDescription"] as? String { return debug }
        return ns.localizedDescription
    }

    /// Why Foundation rejects `text`, or nil if it accepts it.
    static func parseError(_ text: String) -> String? {
        do {
            _ = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            return nil
        } catch {
            return reason(error)
        }
    }

    /// `text` as a JSON string literal, quotes included. Escapes `"`, `\` and
    /// control characters only (`/` and non-ASCII stay as they are).
    static func quote(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 2)
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 { appendEscaped(byte, to: &out) }
        out.append(UInt8(ascii: "\""))
        return String(decoding: out, as: UTF8.self)
    }

    private static func appendEscaped(_ byte: UInt8, to out: inout [UInt8]) {
        let short: UInt8? =
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): byte
            case 0x08: UInt8(ascii: "b")
            case 0x0C: UInt8(ascii: "f")
            case 0x0A: UInt8(ascii: "n")
            case 0x0D: UInt8(ascii: "r")
            case 0x09: UInt8(ascii: "t")
            default: nil
            }
        if let short {
            out.append(UInt8(ascii: "\\"))
            out.append(short)
        } else if byte < 0x20 {
            out.append(contentsOf: ("\\u00" + JobID.hex(UInt64(byte), digits: 2)).utf8)
        } else {
            out.append(byte)
        }
    }
}

/// Named priorities for ``JobRequest/priority``.
public enum JobPriority {
    public static let high = 10
    public static let normal = 0
    public static let low = -10

    /// "high", "normal", "low" or an integer from -100 to 100.
    public static func parse(_ text: String) -> Int? {
        switch text.lowercased() {
        case "high": high
        case "normal": normal
        case "low": low
        default: Int(text).flatMap { (-100...100).contains($0) ? $0 : nil }
        }
    }
}
