import Foundation

/// Where a job is in its life. See docs/PROTOCOL.md for the transitions.
public enum JobState: String, Sendable, CaseIterable, Codable {
    case waiting, delayed, active, completed
    /// An attempt failed and a retry is scheduled.
    case failed
    /// Out of attempts, or not retryable.
    case dead
    case cancelled

    public var isTerminal: Bool { self == .completed || self == .dead || self == .cancelled }
}

/// One failed attempt, as kept on the job.
public struct AttemptError: Sendable, Codable, Equatable {
    public var attempt: Int
    public var error: String
    /// Unix time in ms.
    public var at: Int
    public var worker: String?
}

/// A job record as stored in `PREFIX:{Q}:job:<id>`.
public struct Job: Sendable, Codable, Equatable {
    public var id: String
    public var queue: String
    public var type: String
    /// JSON text.
    public var payload: String
    public var state: JobState
    public var attempts: Int
    public var maxAttempts: Int
    /// Milliseconds; nil uses the queue's job timeout.
    public var timeoutMs: Int?
    public var priority: Int?
    /// Unix times in ms.
    public var createdAt: Int
    public var runAt: Int?
    public var startedAt: Int?
    public var finishedAt: Int?
    public var worker: String?
    public var progress: Double?
    public var progressMessage: String?
    /// JSON text.
    public var result: String?
    public var errors: [AttemptError]
    /// The last attempt's error, or the reason a job was cancelled.
    public var lastError: String?
    public var idempotencyKey: String?
    public var callback: String?
    /// "delivered", or "failed" with `callbackError`, once a delivery was tried.
    public var callbackStatus: String?
    public var callbackError: String?
    /// Bumped by every script that publishes an event about this job; events
    /// carry it, so a reader can order them against a snapshot.
    public var seq: Int

    /// Builds a job from HGETALL's flat field/value list.
    init?(id: String, queue: String, fields: [String: String]) {
        guard let type = fields["type"], let stateText = fields["state"], let state = JobState(rawValue: stateText) else { return nil }
        self.id = id
        self.queue = queue
        self.type = type
        self.payload = fields["payload"] ?? "null"
        self.state = state
        self.attempts = Int(fields["attempts"] ?? "") ?? 0
        self.maxAttempts = Int(fields["max_attempts"] ?? "") ?? 1
        self.timeoutMs = fields["timeout_ms"].flatMap { Int($0) }
        self.priority = fields["priority"].flatMap { Int($0) }
        self.createdAt = Int(fields["created_at"] ?? "") ?? 0
        self.runAt = fields["run_at"].flatMap { Int($0) }
        self.startedAt = fields["started_at"].flatMap { Int($0) }
        self.finishedAt = fields["finished_at"].flatMap { Int($0) }
        self.worker = fields["worker"]
        self.progress = fields["progress"].flatMap { Double($0) }
        self.progressMessage = fields["progress_message"]
        self.result = fields["result"]
        self.errors = fields["errors"].flatMap { try? JSONDecoder().decode([AttemptError].self, from: Data($0.utf8)) } ?? []
        self.lastError = fields["last_error"]
        self.idempotencyKey = fields["key"]
        self.callback = fields["callback"]
        self.callbackStatus = fields["callback_status"]
        self.callbackError = fields["callback_error"]
        self.seq = Int(fields["seq"] ?? "") ?? 0
    }
}

/// How many jobs of a queue are in each state.
public struct QueueCounts: Sendable, Codable, Equatable {
    public var queue: String
    public var waiting = 0
    public var delayed = 0
    public var active = 0
    public var failed = 0
    public var completed = 0
    public var dead = 0
    public var cancelled = 0
    public var paused = false

    public init(queue: String) { self.queue = queue }

    public subscript(state: JobState) -> Int {
        get {
            switch state {
            case .waiting: waiting
            case .delayed: delayed
            case .active: active
            case .failed: failed
            case .completed: completed
            case .dead: dead
            case .cancelled: cancelled
            }
        }
        set {
            switch state {
            case .waiting: waiting = newValue
            case .delayed: delayed = newValue
            case .active: active = newValue
            case .failed: failed = newValue
            case .completed: completed = newValue
            case .dead: dead = newValue
            case .cancelled: cancelled = newValue
            }
        }
    }
}
