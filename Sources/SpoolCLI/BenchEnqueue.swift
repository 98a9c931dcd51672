import Foundation
import Spool

/// The producer side: enqueue rates and what a waiting job costs in memory.
extension BenchContext {

    /// One connection, one job per round trip: the latency-bound rate.
    func enqueueSingle() async throws -> BenchSample {
        try await onFreshQueue(.enqueueSingle) { queue in
            let request = jobRequest(queue)
            let before = try await stats.begin()
            let start = ContinuousClock.now
            for _ in 0..<parameters.jobs { try await client.enqueue(request) }
            let elapsed = start.duration(to: .now)
            return .throughput(jobs: parameters.jobs, elapsed: elapsed, redis: try await stats.end(since: before))
        }
    }

    /// `--producers` connections enqueueing one job at a time, side by side.
    func enqueueConcurrent() async throws -> BenchSample {
        try await onFreshQueue(.enqueueConcurrent) { queue in
            let producers = try await connectedProducers()
            defer { for producer in producers { producer.redis.close() } }
            let request = jobRequest(queue)
            let shares = Self.split(parameters.jobs, into: producers.count)
            let before = try await stats.begin()
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (producer, share) in zip(producers, shares) {
                    group.addTask { for _ in 0..<share { try await producer.enqueue(request) } }
                }
                try await group.waitForAll()
            }
            let elapsed = start.duration(to: .now)
            return .throughput(jobs: parameters.jobs, elapsed: elapsed, redis: try await stats.end(since: before))
        }
    }

    /// One connection, `--batch` jobs per pipelined round trip.
    func enqueueBulk() async throws -> BenchSample {
        try await onFreshQueue(.enqueueBulk) { queue in
            let before = try await stats.begin()
            let start = ContinuousClock.now
            try await enqueueInBatches(jobRequest(queue), count: parameters.jobs)
            let elapsed = start.duration(to: .now)
            return .throughput(jobs: parameters.jobs, elapsed: elapsed, redis: try await stats.end(since: before))
        }
    }

    /// used_memory before and after filling a paused queue, per job.
    func memory() async throws -> BenchSample {
        try await onFreshQueue(.memory) { queue in
            try await client.pause(queue)
            let before = try await stats.usedMemory()
            try await enqueueInBatches(jobRequest(queue), count: parameters.jobs)
            let after = try await stats.usedMemory()
            let perJob = Double(after - before) / Double(parameters.jobs)
            var sample = BenchSample()
            sample.add(BenchMetric("bytes_per_job", "bytes/waiting job", decimals: 0), perJob)
            sample.add(BenchMetric("overhead_bytes_per_job", "overhead bytes/job (minus payload)", decimals: 0), perJob - Double(payload.utf8.count))
            return sample
        }
    }

    /// One client per producer, each connected (a PING) before timing starts.
    func connectedProducers() async throws -> [SpoolClient] {
        var producers: [SpoolClient] = []
        for i in 0..<parameters.producers {
            let producer = SpoolClient(configuration: configuration, label: "spool.bench.producer\(i)")
            producers.append(producer)
            do {
                try await producer.redis.command(["PING"])
            } catch {
                for p in producers { p.redis.close() }
                throw error
            }
        }
        return producers
    }

    /// `total` split into `parts` shares that differ by at most one.
    static func split(_ total: Int, into parts: Int) -> [Int] {
        (0..<parts).map { total / parts + ($0 < total % parts ? 1 : 0) }
    }
}
