import Foundation

/// One event published by a script (see docs/PROTOCOL.md, "Events"), or the
/// `snapshot` a subscriber synthesises from the job record when it joins.
public struct JobEvent: Sendable, Codable, Equatable {
    /// enqueued, active, progress, completed, failed, dead, stalled, waiting,
    /// cancelled; or snapshot.
    public var event: String
    public var id: String
    public var queue: String
    /// The state the job is in after this event.
    public var state: JobState?
    /// Unix time in ms.
    public var at: Int?
    /// The job's event sequence number after this event.
    public var seq: Int?
    public var attempt: Int?
    public var percent: Double?
    public var message: String?
    public var error: String?
    public var runAt: Int?
    public var worker: String?
    public var type: String?
    /// True on the `waiting` event of a dead job retried by hand.
    public var retried: Bool?
    /// The whole record, on `snapshot` events.
    public var job: Job?

    enum CodingKeys: String, CodingKey {
        case event, id, queue, state, at, seq, attempt, percent, message, error, worker, type, retried, job
        case runAt = "run_at"
    }

    /// Queue events (paused, resumed) carry no job id: it reads as "".
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        event = try c.decode(String.self, forKey: .event)
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? ""
        queue = try c.decode(String.self, forKey: .queue)
        state = try c.decodeIfPresent(JobState.self, forKey: .state)
        at = try c.decodeIfPresent(Int.self, forKey: .at)
        seq = try c.decodeIfPresent(Int.self, forKey: .seq)
        attempt = try c.decodeIfPresent(Int.self, forKey: .attempt)
        percent = try c.decodeIfPresent(Double.self, forKey: .percent)
        message = try c.decodeIfPresent(String.self, forKey: .message)
        error = try c.decodeIfPresent(String.self, forKey: .error)
        runAt = try c.decodeIfPresent(Int.self, forKey: .runAt)
        worker = try c.decodeIfPresent(String.self, forKey: .worker)
        type = try c.decodeIfPresent(String.self, forKey: .type)
        retried = try c.decodeIfPresent(Bool.self, forKey: .retried)
        job = try c.decodeIfPresent(Job.self, forKey: .job)
    }

    /// Completed, dead or cancelled: nothing follows.
    public var isTerminal: Bool { state?.isTerminal == true }

    /// Decodes one event's JSON; nil for anything that is not an event.
    public static func decode(_ text: some StringProtocol) -> JobEvent? {
        try? JSONDecoder().decode(JobEvent.self, from: Data(text.utf8))
    }

    /// Decodes a published message: one event, or (on a queue's channel) the
    /// events of one script call, one per line, in order. Lines that are not
    /// events are skipped.
    public static func decodeAll(_ message: String) -> [JobEvent] {
        message.split(separator: "\n").compactMap { decode($0) }
    }

    /// The event that stands for a job's current record.
    public init(snapshot job: Job) {
        self.event = "snapshot"
        self.id = job.id
        self.queue = job.queue
        self.state = job.state
        self.at = job.finishedAt ?? job.startedAt ?? job.createdAt
        self.seq = job.seq
        self.attempt = job.attempts
        self.percent = job.progress
        self.message = job.progressMessage
        self.error = job.lastError ?? job.errors.last?.error
        self.runAt = job.runAt
        self.worker = job.worker
        self.type = job.type
        self.job = job
    }
}
