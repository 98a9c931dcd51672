import Spool

/// A live worker process as the API shows it (`GET /workers`).
struct WorkerResource: Encodable, Sendable {
    let id: String
    let host: String
    let pid: Int
    let queues: [String]
    let concurrency: Int
    /// Ids of the jobs it runs now.
    let jobs: [String]
    let processed: Int
    let failed: Int
    let startedAt: Int
    let lastSeen: Int

    enum CodingKeys: String, CodingKey {
        case id, host, pid, queues, concurrency, jobs, processed, failed
        case startedAt = "started_at"
        case lastSeen = "last_seen"
    }

    init(_ w: WorkerInfo) {
        id = w.id
        host = w.host
        pid = w.pid
        queues = w.queues
        concurrency = w.concurrency
        jobs = w.jobs
        processed = w.processed
        failed = w.failed
        startedAt = w.startedAt
        lastSeen = w.lastSeen
    }
}
