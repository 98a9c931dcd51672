import Foundation
import Spool

/// Scenarios that need to see inside the handler, so they run a Worker in
/// this process: enqueue-to-start latency and the cost of progress reports.
extension BenchContext {

    /// One job at a time on an idle queue: from just before the enqueue call
    /// to the moment its handler starts (both on this process's clock).
    func latency() async throws -> BenchSample {
        try await onFreshQueue(.latency) { queue in
            let (starts, started) = AsyncStream<ContinuousClock.Instant>.makeStream()
            defer { started.finish() }
            var handlers = JobHandlers()
            handlers.register("bench.latency") { _ in
                started.yield(.now)
                return nil
            }
            let request = jobRequest(queue, type: "bench.latency")
            let count = parameters.samples
            let client = client
            let millis = try await withInProcessWorker(queue, concurrency: 1, handlers: handlers) {
                try await Self.withDeadline(.seconds(30) + .milliseconds(20) * count, "latency: \(count) jobs") {
                    try await Self.sampleLatencies(client, request, starts: starts, count: count)
                }
            }
            var sample = BenchSample()
            let sorted = millis.sorted()
            sample.add(BenchMetric("p50_ms", "enqueue→start p50 ms", decimals: 3), Self.percentile(sorted, 0.50))
            sample.add(BenchMetric("p99_ms", "enqueue→start p99 ms", decimals: 3), Self.percentile(sorted, 0.99))
            sample.add(BenchMetric("max_ms", "enqueue→start max ms", decimals: 3), sorted.last ?? .nan)
            return sample
        }
    }

    /// Enqueues, waits for the handler to start, pauses ~1 ms so the worker
    /// is idle again, repeats; returns each latency in ms.
    private static func sampleLatencies(
        _ client: SpoolClient, _ request: JobRequest, starts: AsyncStream<ContinuousClock.Instant>, count: Int
    ) async throws -> [Double] {
        var iterator = starts.makeAsyncIterator()
        var millis: [Double] = []
        millis.reserveCapacity(count)
        for _ in 0..<count {
            let before = ContinuousClock.now
            try await client.enqueue(request)
            guard let start = await iterator.next() else { throw CancellationError() }
            millis.append(before.duration(to: start).inMilliseconds)
            try await Task.sleep(for: .milliseconds(1))
        }
        return millis
    }

    /// The same jobs twice on one in-process worker: first sleeping between
    /// steps, then also reporting progress at each step. The difference in
    /// Redis's counters is what the reports cost. The reports actually stored
    /// are counted exactly from the jobs' records: every stored report bumps
    /// the record's `seq` (one per event, docs/PROTOCOL.md), so the extra
    /// `seq` of the reporting jobs is the number stored.
    func progress() async throws -> BenchSample {
        try await onFreshQueue(.progress) { queue in
            let jobs = BenchScenario.progressJobs
            var handlers = JobHandlers()
            handlers.register("bench.quiet") { _ in try await Self.steps(report: nil) }
            handlers.register("bench.progress") { context in try await Self.steps(report: context) }
            let (plain, reporting) = try await withInProcessWorker(queue, concurrency: jobs, handlers: handlers) {
                let plain = try await progressPhase(queue, type: "bench.quiet", completedBefore: 0)
                let reporting = try await progressPhase(queue, type: "bench.progress", completedBefore: jobs)
                return (plain, reporting)
            }
            return Self.progressSample(plain: plain.redis, reporting: reporting.redis, updates: reporting.events - plain.events)
        }
    }

    /// The progress figures: per update stored (the difference between the
    /// phases), then per job in each phase for comparison.
    private static func progressSample(plain: RedisDelta, reporting: RedisDelta, updates: Int) -> BenchSample {
        let jobs = BenchScenario.progressJobs
        let n = Double(jobs)
        let u = Double(max(0, updates))
        var sample = BenchSample()
        sample.add(BenchMetric("updates", "progress updates stored (of \(jobs * BenchScenario.progressReports))", decimals: 0), u)
        sample.add(BenchMetric("redis_cpu_us_per_update", "Redis CPU µs/update", decimals: 1), (reporting.cpuMicros - plain.cpuMicros) / u)
        sample.add(BenchMetric("commands_per_update", "Redis commands/update", decimals: 2), Double(reporting.commands - plain.commands) / u)
        sample.add(
            BenchMetric("round_trips_per_update", "Redis round trips/update", decimals: 2), Double(reporting.roundTrips - plain.roundTrips) / u)
        sample.add(BenchMetric("redis_cpu_us_per_job_quiet", "Redis CPU µs/job, no progress", decimals: 1), plain.cpuMicros / n)
        sample.add(BenchMetric("redis_cpu_us_per_job_progress", "Redis CPU µs/job, with progress", decimals: 1), reporting.cpuMicros / n)
        sample.add(BenchMetric("commands_per_job_quiet", "Redis commands/job, no progress", decimals: 2), Double(plain.commands) / n)
        sample.add(BenchMetric("commands_per_job_progress", "Redis commands/job, with progress", decimals: 2), Double(reporting.commands) / n)
        return sample
    }

    /// `progressJobs` jobs enqueued at once and waited for: Redis's counters
    /// over the whole phase (the bench's polling taken out), and the events
    /// the jobs' records count.
    private func progressPhase(_ queue: String, type: String, completedBefore: Int) async throws -> (redis: RedisDelta, events: Int) {
        let jobs = BenchScenario.progressJobs
        var own = RedisTraffic()
        let before = try await stats.begin()
        let ids = try await client.enqueue(Array(repeating: jobRequest(queue, type: type), count: jobs))
        _ = try await waitForCompleted(queue, completedBefore + jobs, own: &own)
        let redis = try await stats.end(since: before, own: own)
        let keys = client.keys(queue)
        let seqs = try await client.redis.pipeline(ids.map { ["HGET", keys.job($0), "seq"] })
        return (redis, seqs.reduce(0) { $0 + (Int($1.string ?? "") ?? 0) })
    }

    /// The handler of both phases: the same steps and pauses, reporting
    /// progress at each step when given a context.
    private static func steps(report context: JobContext?) async throws -> String? {
        let reports = BenchScenario.progressReports
        for step in 1...reports {
            context?.progress(Double(step) * 100 / Double(reports), "step \(step)")
            try await Task.sleep(for: BenchScenario.progressPause)
        }
        return nil
    }

    /// The nearest-rank percentile `p` (0…1) of sorted values.
    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }

    /// Runs `body`, failing with a message naming `what` when it takes longer than `limit`.
    static func withDeadline<T: Sendable>(
        _ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw CLIError(.software, "\(what) did not finish within \(Int(limit.inSeconds)) s")
            }
            return value
        }
    }
}
