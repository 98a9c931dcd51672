import Foundation
import Hiredis

/// The built-in handler for `spool.callback` jobs, which complete.lua and
/// fail.lua make when a job with a callback URL ends completed or dead.
///
/// 1. Reads the finished job (it may have been trimmed: then the body says so).
/// 2. POSTs its final state as JSON through libcurl (``CallbackSender``),
///    signed with HMAC-SHA256 when `callback_secret` is set.
/// 3. Records `callback_status` (delivered / failed) and the error on the job;
///    a failure fails this delivery attempt, so it is retried with backoff.
extension Worker {
    public static let callbackType = "spool.callback"

    struct CallbackPayload: Decodable {
        var job: String
        var url: String
        var state: String
    }

    func deliverCallback(_ context: JobContext) async throws -> String? {
        let payload = try context.decode(CallbackPayload.self)
        let job = try? await client.job(payload.job)
        let body = Self.callbackBody(payload, job: job, now: clock.nowMillis())
        let sender = CallbackSender(secret: configuration.callbackSecret, timeout: configuration.callbackTimeout)
        do {
            let status = try await sender.post(url: payload.url, body: body)
            await annotate(payload.job, ["callback_status", "delivered", "callback_at", String(clock.nowMillis()), "callback_error", ""])
            return #"{"status":\#(status)}"#
        } catch {
            await annotate(payload.job, ["callback_status", "failed", "callback_at", String(clock.nowMillis()), "callback_error", error.message])
            throw JobFailure(error.message)
        }
    }

    /// The JSON a callback URL receives.
    static func callbackBody(_ payload: CallbackPayload, job: Job?, now: Int) -> String {
        var object: [String: Any] = ["id": payload.job, "state": payload.state, "sent_at": now]
        if let job {
            object["queue"] = job.queue
            object["type"] = job.type
            object["attempts"] = job.attempts
            if let finished = job.finishedAt { object["finished_at"] = finished }
            if let result = job.result, let value = try? JSONSerialization.jsonObject(with: Data(result.utf8), options: [.fragmentsAllowed]) {
                object["result"] = value
            }
            if let error = job.lastError { object["error"] = error }
        } else {
            object["note"] = "the job record is gone (retention)"
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    private func annotate(_ id: String, _ fields: [String]) async {
        guard let queue = JobID.queue(of: id) else { return }
        _ = try? await client.redis.eval(Scripts.annotate, keys: [queuePrefix(queue)], args: [id] + fields)
    }
}
