/// Every Redis key and channel Spool uses, built in this one place.
///
/// All keys of queue `Q` share the prefix `PREFIX:{Q}:`; the braces are a Redis
/// Cluster hash tag, so every script (which gets only the prefix and derives the
/// rest) touches one slot. docs/PROTOCOL.md documents the same layout.
public struct QueueKeys: Sendable, Hashable {
    public let queue: String
    /// `PREFIX:{Q}:`, passed as KEYS[1] to every script.
    public let prefix: String

    public init(prefix: String, queue: String) {
        self.queue = queue
        self.prefix = "\(prefix):{\(queue)}:"
    }

    /// hash: the job record.
    public func job(_ id: String) -> String { prefix + "job:" + id }
    /// list: ids ready to run at priority 0; producers LPUSH, claim RPOPs.
    public var waiting: String { prefix + "waiting" }
    /// zset: ids ready to run at other priorities, by (100 - priority) · 2^40 + order.
    public var prioritized: String { prefix + "prioritized" }
    /// zset: claim times within the rate-limit window.
    public var rate: String { prefix + "rate" }
    /// string: the id of the job enqueued with an idempotency key.
    public func unique(_ key: String) -> String { prefix + "unique:" + key }
    /// pub/sub channel: ids of running jobs asked to stop.
    public var cancels: String { prefix + "cancels" }
    /// list: legacy. Protocol version 2 and older kept claimed ids here; the
    /// reaper still redelivers an id found here without a lease.
    public var active: String { prefix + "active" }
    /// zset: the active jobs, id -> lease deadline (ms).
    public var leases: String { prefix + "leases" }
    /// zset: id -> run_at (ms) for jobs in state `delayed`.
    public var delayed: String { prefix + "delayed" }
    /// zset: id -> run_at (ms) for jobs in state `failed` (retry scheduled).
    public var retry: String { prefix + "retry" }
    /// zset: id -> finished_at (ms).
    public var completed: String { prefix + "completed" }
    /// zset: id -> finished_at (ms).
    public var dead: String { prefix + "dead" }
    /// zset: id -> finished_at (ms).
    public var cancelled: String { prefix + "cancelled" }
    /// list: 0 or 1 wake token that idle workers block on.
    public var wake: String { prefix + "wake" }
    /// string: present while the queue is paused.
    public var paused: String { prefix + "paused" }
    /// hash: counters (enqueued, completed, failed, dead, stalled).
    public var stats: String { prefix + "stats" }
    /// zset: worker id -> last heartbeat (ms) of the workers serving this
    /// queue; paces housekeeping so that its cost does not grow with them.
    public var workers: String { prefix + "workers" }
    /// pub/sub channel: every event of the queue.
    public var events: String { prefix + "events" }
    /// pub/sub channel: the events of one job.
    public func events(job id: String) -> String { prefix + "events:" + id }

    /// The keys holding the ids of jobs in `state` (lists or zsets).
    public func places(of state: JobState) -> [(key: String, isList: Bool)] {
        switch state {
        case .waiting: [(prioritized, false), (waiting, true)]
        case .active: [(leases, false)]
        case .delayed: [(delayed, false)]
        case .failed: [(retry, false)]
        case .completed: [(completed, false)]
        case .dead: [(dead, false)]
        case .cancelled: [(cancelled, false)]
        }
    }
}

/// Keys that are not per queue.
public struct GlobalKeys: Sendable {
    public let prefix: String
    public init(prefix: String) { self.prefix = prefix }
    /// set: every queue name that has been enqueued to.
    public var queues: String { prefix + ":queues" }
}

/// Rules for the names that end up inside keys.
public enum Names {
    /// What a valid name is, for error messages.
    public static let rule = "must match [A-Za-z0-9._-]{1,64} and not be . or .."

    /// Queue, job type and cron names: `[A-Za-z0-9._-]{1,64}`, but not `.` or
    /// `..`, which a URL path (`/queues/../jobs`) cannot carry.
    public static func isValid(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), name != ".", name != ".." else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
    }
}
