import Spool

/// A queue as the API shows it: counts per state, the lifetime counters of
/// its stats hash, and recent throughput.
struct QueueResource: Encodable, Sendable {
    struct Counts: Encodable, Sendable {
        let waiting, delayed, active, failed, completed, dead, cancelled: Int
    }

    /// `PREFIX:{Q}:stats`: counters since the queue was created.
    struct Stats: Encodable, Sendable, Equatable {
        var enqueued = 0
        var completed = 0
        var failed = 0
        var dead = 0
        var stalled = 0
        var cancelled = 0

        init(fields: [String: String]) {
            func n(_ key: String) -> Int { fields[key].flatMap { Int($0) } ?? 0 }
            enqueued = n("enqueued")
            completed = n("completed")
            failed = n("failed")
            dead = n("dead")
            stalled = n("stalled")
            cancelled = n("cancelled")
        }
    }

    let name: String
    let paused: Bool
    let counts: Counts
    let stats: Stats
    let throughput: Throughput

    init(counts c: QueueCounts, stats: Stats, throughput: Throughput) {
        name = c.queue
        paused = c.paused
        counts = Counts(
            waiting: c.waiting, delayed: c.delayed, active: c.active, failed: c.failed, completed: c.completed, dead: c.dead,
            cancelled: c.cancelled)
        self.stats = stats
        self.throughput = throughput
    }
}
