import Foundation
import Hiredis
import Metrics
import Prometheus
import Spool

/// The Prometheus metrics behind `GET /metrics`.
///
/// Workers run in other processes, so the numbers come from Redis, not from
/// this server's memory. At every scrape:
/// 1. The per-queue counters (`spool_jobs_*_total`) are set to the queue's
///    stats hash, which every script updates: they move when any worker
///    anywhere finishes a job.
/// 2. The gauges are set to the queue's counts per state, its paused flag and
///    the number of live workers.
/// 3. Jobs completed since the last scrape (by the `completed` set's score,
///    at most 1000 per queue per scrape) have their run time, `finished_at −
///    started_at`, added to `spool_job_duration_seconds`. Jobs trimmed or
///    purged before a scrape are not seen.
/// 4. `spool_redis_errors_total` counts failed Redis calls made by this
///    server; `spool_redis_up` says whether the last scrape reached Redis.
///    A scrape while Redis is down still answers, with the last values.
///
/// swift-metrics users (Hummingbird's request metrics, when `spool serve`
/// bootstraps the metrics system with ``factory``) land in the same registry.
actor QueueMetrics {
    let registry = PrometheusCollectorRegistry()
    nonisolated var factory: PrometheusMetricsFactory { PrometheusMetricsFactory(registry: registry) }

    private let redisErrors: Prometheus.Counter
    private let redisUp: Prometheus.Gauge
    private let workers: Prometheus.Gauge
    private var counters: [String: [String: (counter: Prometheus.Counter, value: Int)]] = [:]
    /// Per queue: its gauges (jobs per state, paused) and duration histogram,
    /// kept to unregister them when the queue is gone.
    private var gauges: [String: [Prometheus.Gauge]] = [:]
    private var histograms: [String: DurationHistogram] = [:]
    /// Per queue: the `completed` score up to which durations were recorded,
    /// and the ids with exactly that score already recorded.
    private var watermark: [String: (score: Int, ids: Set<String>)] = [:]
    private let startedAt: Int

    static let counterNames = ["enqueued", "completed", "failed", "dead", "stalled", "cancelled"]
    static let durationBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(3600),
    ]

    init(startedAt: Int = Int(Date().timeIntervalSince1970 * 1000)) {
        self.startedAt = startedAt
        redisErrors = registry.makeCounter(
            descriptor: Self.name("redis", "errors", unit: "total", "Redis calls made by the status reader that failed."), labels: [])
        redisUp = registry.makeGauge(descriptor: Self.name("redis", "up", unit: "", "1 when the last scrape reached Redis, else 0."))
        workers = registry.makeGauge(descriptor: Self.name("workers", "live", unit: "", "Worker processes in the registry."))
    }

    /// Counts one failed Redis call (any thread may call this).
    nonisolated func redisError() { redisErrors.increment() }

    /// Refreshes everything from Redis and returns the exposition text.
    func scrape(_ reader: StatusReader) async -> String {
        do {
            let client = reader.pool.client
            let names = try await client.queues()
            let queues = try await reader.describe(names, client: client)
            let durations = try await completedDurations(names, client: client)
            let live = try await client.workers().count
            apply(queues, durations: durations, workers: live)
            redisUp.set(to: 1)
        } catch {
            redisError()
            redisUp.set(to: 0)
        }
        return registry.emitToString()
    }

    private func apply(_ queues: [QueueResource], durations: [String: [(id: String, score: Int, seconds: Double)]], workers live: Int) {
        forget(Set(counters.keys).subtracting(queues.map(\.name)))
        for q in queues {
            let values = [
                "enqueued": q.stats.enqueued, "completed": q.stats.completed, "failed": q.stats.failed, "dead": q.stats.dead,
                "stalled": q.stats.stalled, "cancelled": q.stats.cancelled,
            ]
            for name in Self.counterNames { setCounter(name, queue: q.name, to: values[name] ?? 0) }
            let counts: [(String, Int)] = [
                ("waiting", q.counts.waiting), ("delayed", q.counts.delayed), ("active", q.counts.active), ("failed", q.counts.failed),
                ("completed", q.counts.completed), ("dead", q.counts.dead), ("cancelled", q.counts.cancelled),
            ]
            var made: [Prometheus.Gauge] = []
            for (state, n) in counts {
                let gauge = registry.makeGauge(
                    descriptor: Self.name("queue", "jobs", unit: "", "Jobs of a queue in each state now."),
                    labels: [("queue", q.name), ("state", state)])
                gauge.set(to: Double(n))
                made.append(gauge)
            }
            let paused = registry.makeGauge(
                descriptor: Self.name("queue", "paused", unit: "", "1 while the queue is paused."), labels: [("queue", q.name)])
            paused.set(to: q.paused ? 1 : 0)
            gauges[q.name] = made + [paused]
        }
        for (queue, finished) in durations {
            let histogram = registry.makeDurationHistogram(
                descriptor: Self.name("job", "duration", unit: "seconds", "Run time of completed jobs (their last attempt)."),
                labels: [("queue", queue)], buckets: Self.durationBuckets)
            histograms[queue] = histogram
            var mark = watermark[queue] ?? (startedAt, [])
            for job in finished where job.score > mark.score || (job.score == mark.score && !mark.ids.contains(job.id)) {
                histogram.record(.milliseconds(Int64(job.seconds * 1000)))
            }
            if let top = finished.map(\.score).max(), top >= mark.score {
                let ids = Set(finished.filter { $0.score == top }.map(\.id))
                mark = (top, top == mark.score ? mark.ids.union(ids) : ids)
            }
            watermark[queue] = mark
        }
        workers.set(to: Double(live))
    }

    /// Drops every series of queues no longer listed (`spool bench` removes
    /// its queues when done), so /metrics does not grow with each one.
    private func forget(_ gone: Set<String>) {
        for queue in gone {
            if let entries = counters.removeValue(forKey: queue) {
                for entry in entries.values { registry.unregisterCounter(entry.counter) }
            }
            for gauge in gauges.removeValue(forKey: queue) ?? [] { registry.unregisterGauge(gauge) }
            if let histogram = histograms.removeValue(forKey: queue) { registry.unregisterDurationHistogram(histogram) }
            watermark[queue] = nil
        }
    }

    /// Sets a counter to Redis's value: increments by the difference, or
    /// starts it over when Redis's value went down (data lost).
    private func setCounter(_ name: String, queue: String, to value: Int) {
        var entry =
            counters[queue]?[name]
            ?? (
                registry.makeCounter(
                    descriptor: Self.name("jobs", name, unit: "total", Self.help[name] ?? name), labels: [("queue", queue)]), 0
            )
        if value < entry.value {
            entry.counter.reset()
            entry.value = 0
        }
        if value > entry.value { entry.counter.increment(by: Int64(value - entry.value)) }
        entry.value = value
        counters[queue, default: [:]][name] = entry
    }

    /// Ids, `finished_at` and run times of jobs completed at or after each
    /// queue's watermark: two pipelined round trips for all queues.
    private func completedDurations(_ names: [String], client: SpoolClient) async throws -> [String: [(id: String, score: Int, seconds: Double)]] {
        if names.isEmpty { return [:] }
        let marks = names.map { watermark[$0]?.score ?? startedAt }
        let ranges = zip(names, marks).map { name, mark in
            ["ZRANGEBYSCORE", client.keys(name).completed, String(mark), "+inf", "WITHSCORES", "LIMIT", "0", "1000"]
        }
        let replies = try await client.redis.pipeline(ranges)
        var found: [(queue: String, id: String, score: Int)] = []
        for (name, reply) in zip(names, replies) {
            let items = reply.array ?? []
            var i = 0
            while i + 1 < items.count {
                if let id = items[i].string, let score = items[i + 1].string.flatMap({ Double($0) }) { found.append((name, id, Int(score))) }
                i += 2
            }
        }
        var result: [String: [(id: String, score: Int, seconds: Double)]] = [:]
        if found.isEmpty { return result }
        let times = try await client.redis.pipeline(found.map { ["HMGET", client.keys($0.queue).job($0.id), "started_at", "finished_at"] })
        for (job, reply) in zip(found, times) {
            let fields = reply.array ?? []
            guard fields.count == 2, let started = fields[0].int, let finished = fields[1].int, finished >= started else { continue }
            result[job.queue, default: []].append((job.id, job.score, Double(finished - started) / 1000))
        }
        return result
    }

    private static let help = [
        "enqueued": "Jobs enqueued to the queue since it was created (its stats hash).",
        "completed": "Jobs completed.",
        "failed": "Attempts that failed with a retry scheduled.",
        "dead": "Jobs that ended dead (out of attempts or not retryable).",
        "stalled": "Jobs redelivered after their worker stopped renewing the lease.",
        "cancelled": "Jobs cancelled before they ran.",
    ]

    private static func name(_ subsystem: String, _ metric: String, unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "spool", subsystem: subsystem, metricName: metric, unitName: unit, helpText: help)
    }
}
