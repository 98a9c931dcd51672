import Foundation
import Spool

/// The worker side, with real `spool worker` processes: drain rates, the
/// end-to-end steady state, a worker's memory and what an idle fleet costs.
extension BenchContext {

    /// What one drain measured.
    struct DrainRun {
        var elapsed: Duration
        var redis: RedisDelta
        /// CPU the worker processes used over the drain, all together, in µs.
        var workerCPU: Double
        /// VmHWM, VmRSS and RssAnon (kB) of the first worker, when asked for.
        var memory: (hwm: Int, rss: Int, anon: Int)?
    }

    /// Jobs waiting on a paused queue, workers started and registered, then
    /// timed from resume until the last job has completed.
    ///
    /// 1. Pause the queue and enqueue `jobs` in bulk.
    /// 2. Start the worker processes and wait until they are registered and
    ///    parked, so their start-up is not measured.
    /// 3. Snapshot Redis, resume, poll the completed counter (2 ms apart
    ///    near the end, see `pollDelay`).
    /// 4. Snapshot again (Redis and the workers' CPU), read the first
    ///    worker's memory if asked, stop them.
    func drainRun(_ queue: String, jobs: Int, processes: Int, concurrency: Int, readMemory: Bool = false) async throws -> DrainRun {
        try await client.pause(queue)
        try await enqueueInBatches(jobRequest(queue), count: jobs)
        return try await withWorkers(processes, queue: queue, concurrency: concurrency) { workers in
            var own = RedisTraffic()
            let before = try await stats.begin()
            let cpuBefore = try workers.cpuMicros()
            let start = ContinuousClock.now
            try await client.resume(queue)
            own.record("evalsha")
            let end = try await waitForCompleted(queue, jobs, own: &own, workers: workers)
            let workerCPU = try workers.cpuMicros() - cpuBefore
            let redis = try await stats.end(since: before, own: own)
            return DrainRun(
                elapsed: start.duration(to: end), redis: redis, workerCPU: workerCPU,
                memory: readMemory ? try workers.memory(of: 0) : nil)
        }
    }

    /// drain-1 and drain-2: `--jobs` no-op jobs, `--concurrency` per process.
    func drain(processes: Int) async throws -> BenchSample {
        try await onFreshQueue(processes == 1 ? .drain1 : .drain2) { queue in
            let run = try await drainRun(queue, jobs: parameters.jobs, processes: processes, concurrency: parameters.concurrency)
            var sample = BenchSample.throughput(jobs: parameters.jobs, elapsed: run.elapsed, redis: run.redis)
            sample.add(.workerCPUPerJob, run.workerCPU / Double(parameters.jobs))
            return sample
        }
    }

    /// One process at each concurrency of `BenchScenario.sweep`.
    func drainSweep() async throws -> BenchSample {
        var sample = BenchSample()
        let jobs = parameters.sweepJobs
        for concurrency in BenchScenario.sweep {
            let run = try await onFreshQueue(.drainSweep) { queue in
                try await drainRun(queue, jobs: jobs, processes: 1, concurrency: concurrency)
            }
            sample.add(
                BenchMetric("jobs_per_s_c\(concurrency)", "jobs/s at concurrency \(concurrency)", decimals: 0), Double(jobs) / run.elapsed.inSeconds)
        }
        return sample
    }

    /// A drain-1 run whose worker's memory is read just before it is stopped.
    func workerRSS() async throws -> BenchSample {
        try await onFreshQueue(.workerRSS) { queue in
            let run = try await drainRun(queue, jobs: parameters.jobs, processes: 1, concurrency: parameters.concurrency, readMemory: true)
            var sample = BenchSample()
            if let memory = run.memory {
                sample.add(BenchMetric("vm_hwm_kb", "peak RSS (VmHWM) kB", decimals: 0), Double(memory.hwm))
                sample.add(BenchMetric("vm_rss_kb", "RSS (VmRSS) kB", decimals: 0), Double(memory.rss))
                sample.add(BenchMetric("rss_anon_kb", "own memory (RssAnon) kB", decimals: 0), Double(memory.anon))
            }
            return sample
        }
    }

    /// Producers enqueue one job at a time at full speed while two worker
    /// processes run them: the rate at which jobs complete, and what Redis
    /// spends per job over enqueue, claim and complete together.
    func steadyState() async throws -> BenchSample {
        try await onFreshQueue(.steadyState) { queue in
            let producers = try await connectedProducers()
            defer { for producer in producers { producer.redis.close() } }
            return try await withWorkers(2, queue: queue, concurrency: parameters.concurrency) { workers in
                let request = jobRequest(queue)
                let shares = Self.split(parameters.jobs, into: producers.count)
                var own = RedisTraffic()
                let before = try await stats.begin()
                let cpuBefore = try workers.cpuMicros()
                let start = ContinuousClock.now
                let (enqueued, completed) = try await withThrowingTaskGroup(of: ContinuousClock.Instant.self) { group in
                    for (producer, share) in zip(producers, shares) {
                        group.addTask {
                            for _ in 0..<share { try await producer.enqueue(request) }
                            return .now
                        }
                    }
                    let completed = try await waitForCompleted(queue, parameters.jobs, own: &own, workers: workers)
                    var enqueued = start
                    for try await done in group { enqueued = max(enqueued, done) }
                    return (enqueued, completed)
                }
                let workerCPU = try workers.cpuMicros() - cpuBefore
                let redis = try await stats.end(since: before, own: own)
                var sample = BenchSample.throughput(jobs: parameters.jobs, elapsed: start.duration(to: completed), redis: redis)
                sample.add(.workerCPUPerJob, workerCPU / Double(parameters.jobs))
                sample.add(
                    BenchMetric("enqueued_jobs_per_s", "jobs/s enqueued meanwhile", decimals: 0),
                    Double(parameters.jobs) / start.duration(to: enqueued).inSeconds)
                return sample
            }
        }
    }

    /// Redis CPU over `--idle-window` seconds with nothing running, then with
    /// `--fleet` idle worker processes at `--concurrency` on one empty queue.
    func idleFleet() async throws -> BenchSample {
        let window = Duration.seconds(parameters.idleWindow)
        let none = try await load(over: window)
        let fleet = try await onFreshQueue(.idleFleet) { queue in
            // Settled past one registry refresh (3 s): until then a worker
            // paces promote and trim by the peers it saw while the fleet was
            // still starting, and tries them more often than when idle.
            try await withWorkers(parameters.fleet, queue: queue, concurrency: parameters.concurrency, settle: .seconds(4)) { workers in
                let load = try await load(over: window)
                try workers.checkRunning()
                return load
            }
        }
        let n = parameters.fleet
        var sample = BenchSample()
        sample.add(BenchMetric("redis_cpu_pct_none", "Redis CPU % of a core, no workers", decimals: 2), none.cpuPercent)
        sample.add(BenchMetric("redis_cpu_pct_fleet", "Redis CPU % of a core, \(n) idle workers", decimals: 2), fleet.cpuPercent)
        sample.add(BenchMetric("redis_cpu_pct_added", "Redis CPU % added by \(n) idle workers", decimals: 2), fleet.cpuPercent - none.cpuPercent)
        sample.add(BenchMetric("round_trips_per_s_fleet", "Redis round trips/s, \(n) idle workers", decimals: 0), fleet.roundTripsPerSecond)
        sample.add(BenchMetric("commands_per_s_fleet", "Redis commands/s, \(n) idle workers", decimals: 0), fleet.commandsPerSecond)
        return sample
    }

    /// What Redis did over a stretch of `window` in which the bench sends nothing.
    private func load(over window: Duration) async throws -> (cpuPercent: Double, roundTripsPerSecond: Double, commandsPerSecond: Double) {
        let before = try await stats.begin()
        let start = ContinuousClock.now
        try await Task.sleep(for: window)
        let redis = try await stats.end(since: before)
        let seconds = start.duration(to: .now).inSeconds
        return (redis.cpuMicros / 1e4 / seconds, Double(redis.roundTrips) / seconds, Double(redis.commands) / seconds)
    }
}
