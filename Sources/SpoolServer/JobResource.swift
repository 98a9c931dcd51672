import Spool

/// A job as the API shows it: `GET /jobs/{id}`, job lists, snapshot events.
/// Payload and result are JSON values; times are Unix milliseconds.
struct JobResource: Encodable, Sendable {
    struct AttemptErrorResource: Encodable, Sendable {
        let attempt: Int
        let error: String
        let at: Int
        let worker: String?
    }

    struct Progress: Encodable, Sendable {
        let percent: Double
        let message: String?
    }

    let id: String
    let queue: String
    let type: String
    let state: String
    let payload: JSONValue
    let attempts: Int
    let maxAttempts: Int
    let timeoutMs: Int?
    let priority: Int?
    let createdAt: Int
    let runAt: Int?
    let startedAt: Int?
    let finishedAt: Int?
    let worker: String?
    let progress: Progress?
    let result: JSONValue?
    let errors: [AttemptErrorResource]
    let lastError: String?
    let idempotencyKey: String?
    let callback: String?
    let seq: Int

    enum CodingKeys: String, CodingKey {
        case id, queue, type, state, payload, attempts, priority, worker, progress, result, errors, callback, seq
        case maxAttempts = "max_attempts"
        case timeoutMs = "timeout_ms"
        case createdAt = "created_at"
        case runAt = "run_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case lastError = "last_error"
        case idempotencyKey = "idempotency_key"
    }

    init(_ job: Job) {
        id = job.id
        queue = job.queue
        type = job.type
        state = job.state.rawValue
        payload = JSONValue(storedText: job.payload)
        attempts = job.attempts
        maxAttempts = job.maxAttempts
        timeoutMs = job.timeoutMs
        priority = job.priority
        createdAt = job.createdAt
        runAt = job.runAt
        startedAt = job.startedAt
        finishedAt = job.finishedAt
        worker = job.worker
        progress = job.progress.map { Progress(percent: $0, message: job.progressMessage.flatMap { $0.isEmpty ? nil : $0 }) }
        result = job.result.map(JSONValue.init(storedText:))
        errors = job.errors.map { AttemptErrorResource(attempt: $0.attempt, error: $0.error, at: $0.at, worker: $0.worker) }
        lastError = job.lastError
        idempotencyKey = job.idempotencyKey
        callback = job.callback
        seq = job.seq
    }
}
