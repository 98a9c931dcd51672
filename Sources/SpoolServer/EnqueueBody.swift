import Foundation
import Spool

/// The body of `POST /queues/{queue}/jobs` (and each item of a batch), as a
/// `JobRequest`. Fields: `type` (required), `payload` (any JSON, default
/// null), `max_attempts`, `timeout` (s), `delay` (s) or `run_at` (Unix ms),
/// `priority`, `idempotency_key`, `callback`. (Retry backoff stays the
/// queue's: a per-job base and cap could contradict each other in ways a
/// schema cannot say.)
enum EnqueueBody {
    static let fields: Set<String> = [
        "type", "payload", "max_attempts", "timeout", "delay", "run_at", "priority", "idempotency_key", "callback",
    ]

    /// Builds the request; range and name checks are `JobRequest.validate`'s,
    /// which the client runs at enqueue.
    static func request(_ json: RequestJSON, queue: String, now: Int) throws(APIError) -> JobRequest {
        try json.only(fields)
        guard let type = try json.string("type", required: true) else { throw APIError(.badRequest, "\"type\" is required") }
        var request = JobRequest(queue: queue, type: type, payload: json.value("payload")?.text ?? "null")
        request.maxAttempts = try json.int("max_attempts", in: 1...1000)
        request.timeout = try json.number("timeout")
        if let priority = try json.int("priority", in: -100...100) { request.priority = priority }
        request.idempotencyKey = try json.string("idempotency_key")
        if let key = request.idempotencyKey, !(1...200).contains(key.utf8.count) || !key.utf8.allSatisfy(Self.isVisibleASCII) {
            throw APIError(.badRequest, "\"idempotency_key\" must be 1 to 200 visible ASCII characters (no spaces)")
        }
        // Its form is checked by JobRequest.validate, as for every producer.
        request.callback = try json.string("callback")
        let delay = try json.number("delay")
        let runAt = try json.int("run_at", in: 0...Int64(Int32.max) * 1000)
        switch (delay, runAt) {
        case (.some, .some): throw APIError(.badRequest, "give \"delay\" or \"run_at\", not both")
        case (let d?, nil):
            guard d >= 0, d <= 366 * 86400 else { throw APIError(.badRequest, "\"delay\" must be from 0 to 31622400 seconds") }
            if d > 0 { request.runAt = now + Int(d * 1000) }
        case (nil, let at?): request.runAt = at
        case (nil, nil): break
        }
        return request
    }

    /// `!` to `~`: no spaces, no control characters, nothing outside ASCII.
    static func isVisibleASCII(_ byte: UInt8) -> Bool { (0x21...0x7E).contains(byte) }
}
