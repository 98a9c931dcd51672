import Spool

/// One event as an event stream sends it in `data:`: the fields the script
/// published (docs/PROTOCOL.md, "Events"), and on `snapshot` events the whole
/// job.
struct EventResource: Encodable, Sendable {
    let event: String
    /// Absent on queue events (paused, resumed), which are about no job.
    let id: String?
    let queue: String
    let state: String?
    let at: Int?
    let seq: Int?
    let attempt: Int?
    let percent: Double?
    let message: String?
    let error: String?
    let runAt: Int?
    let worker: String?
    let type: String?
    let retried: Bool?
    let job: JobResource?

    enum CodingKeys: String, CodingKey {
        case event, id, queue, state, at, seq, attempt, percent, message, error, worker, type, retried, job
        case runAt = "run_at"
    }

    init(_ e: JobEvent) {
        event = e.event
        id = e.id.isEmpty ? nil : e.id
        queue = e.queue
        state = e.state?.rawValue
        at = e.at
        seq = e.seq
        attempt = e.attempt
        percent = e.percent
        message = e.message.flatMap { $0.isEmpty ? nil : $0 }
        error = e.error
        runAt = e.runAt
        worker = e.worker
        type = e.type
        retried = e.retried
        job = e.job.map(JobResource.init)
    }
}
