import Foundation
import Hummingbird
import Spool

/// POST endpoints for services that would rather not speak Redis: enqueue,
/// cancel, retry, pause, resume. Guarded by the bearer token when one is set.
extension Routes {
    struct Enqueued: Encodable { let id: String }
    struct EnqueuedBatch: Encodable { let ids: [String] }

    /// One job: 201 with its id and `Location: /jobs/{id}`.
    func enqueue(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let queue = try Self.queueName(context)
        let json = try await RequestJSON.read(request, limit: options.maxBodyBytes, allowed: EnqueueBody.fields)
        let client = pool.client
        let job = try EnqueueBody.request(json, queue: queue, now: client.clock.nowMillis())
        let id = try await client.enqueue(job)
        return Self.json(Enqueued(id: id), status: .created, headers: [.location: "/jobs/" + id])
    }

    /// `{"jobs": [...]}`, 1 to 1000 jobs in one pipelined round trip: 201
    /// with their ids in order. Nothing is enqueued when any job is invalid.
    func enqueueBatch(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let queue = try Self.queueName(context)
        let json = try await RequestJSON.read(request, limit: options.maxBodyBytes, allowed: ["jobs"])
        guard let items = try json.array("jobs") else { throw APIError(.badRequest, "\"jobs\" is required") }
        guard (1...1000).contains(items.count) else { throw APIError(.badRequest, "\"jobs\" must hold 1 to 1000 jobs") }
        let client = pool.client
        let now = client.clock.nowMillis()
        var jobs: [JobRequest] = []
        for (i, item) in items.enumerated() {
            do throws(APIError) {
                guard let fields = try item.fields() else { throw APIError(.badRequest, "must be an object, not \(item.typeName)") }
                let job = try EnqueueBody.request(RequestJSON(fields: fields), queue: queue, now: now)
                // Checked here, not by enqueue, so that the error says which job.
                do throws(SpoolError) { try job.validate(payloadLimit: client.configuration.payloadLimit) } catch { throw APIError(error) }
                jobs.append(job)
            } catch {
                throw APIError(error.code, "jobs[\(i)]: \(error.message)", headers: error.headers)
            }
        }
        let ids = try await client.enqueue(validated: jobs)
        return Self.json(EnqueuedBatch(ids: ids), status: .created)
    }

    /// Body (optional): `{"reason": "…"}`. 200 with the cancelled job when it
    /// had not started; 202 with the job, still active, when it is running and
    /// its worker was asked to stop it; 409 when it has finished.
    func cancel(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.jobID(context)
        let json = try await RequestJSON.read(request, limit: options.maxBodyBytes, allowed: ["reason"], optional: true)
        let reason = try json.string("reason") ?? ""
        guard reason.unicodeScalars.count <= 1000 else { throw APIError(.badRequest, "\"reason\" must be at most 1000 characters") }
        let client = pool.client
        let outcome = try await client.cancel(id, reason: reason)
        return Self.json(JobResource(try await client.job(id)), status: outcome == .requested ? .accepted : .ok)
    }

    /// A dead job back to waiting: 200 with the job; 409 unless it is dead.
    func retry(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.jobID(context)
        _ = try await RequestJSON.read(request, limit: options.maxBodyBytes, allowed: [], optional: true)
        let client = pool.client
        try await client.retry(id)
        return Self.json(JobResource(try await client.job(id)))
    }

    struct Retried: Encodable {
        let queue: String
        let retried: Int
    }

    /// Every dead job of a queue back to waiting: how many.
    func retryDead(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let queue = Self.parameter("queue", context)
        _ = try await RequestJSON.read(request, limit: options.maxBodyBytes, allowed: [], optional: true)
        let client = try await reader.requireQueue(queue)
        return Self.json(Retried(queue: queue, retried: try await client.retryAllDead(queue)))
    }

    struct Paused: Encodable {
        let queue: String
        let paused: Bool
        /// False when the queue already was in that state.
        let changed: Bool
    }

    func pause(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        try await setPaused(true, request, context)
    }

    func resume(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        try await setPaused(false, request, context)
    }

    private func setPaused(_ paused: Bool, _ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let queue = Self.parameter("queue", context)
        _ = try await RequestJSON.read(request, limit: options.maxBodyBytes, allowed: [], optional: true)
        let client = try await reader.requireQueue(queue)
        let changed = paused ? try await client.pause(queue) : try await client.resume(queue)
        return Self.json(Paused(queue: queue, paused: paused, changed: changed))
    }

    /// A valid queue name from the path, else 400 (enqueue creates queues, so
    /// an unknown one is fine here).
    static func queueName(_ context: BasicRequestContext) throws(APIError) -> String {
        let queue = parameter("queue", context)
        guard Names.isValid(queue) else {
            throw APIError(.badRequest, "queue name \"\(queue)\" is not valid: it \(Names.rule)")
        }
        return queue
    }
}
