import Foundation
import Hiredis
import Spool

/// Reads queues, jobs and workers for the API, through the client pool.
/// Every failure is a `SpoolError` or an `APIError` (404, 400).
struct StatusReader: Sendable {
    let pool: ClientPool
    let throughput: ThroughputTracker

    /// Whether Redis answers PING, and how fast (ms).
    func ping() async -> Result<Double, SpoolError> {
        let start = ContinuousClock.now
        do {
            try await pool.client.redis.command(["PING"])
            let elapsed = ContinuousClock.now - start
            return .success(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)
        } catch {
            return .failure(Self.spoolError(error, "healthz"))
        }
    }

    /// Every known queue with its counts, stats and throughput, sorted by name.
    func queues() async throws -> [QueueResource] {
        let client = pool.client
        let names = try await client.queues()
        return try await describe(names, client: client)
    }

    /// One known queue; 400 for a bad name, 404 for a queue never enqueued to.
    func queue(_ name: String) async throws -> QueueResource {
        let client = try await requireQueue(name)
        return try await describe([name], client: client)[0]
    }

    /// Throws 400 for a bad name and 404 unless something was enqueued to the
    /// queue; returns the client to go on with.
    @discardableResult
    func requireQueue(_ name: String) async throws -> SpoolClient {
        guard Names.isValid(name) else {
            throw APIError(.badRequest, "queue name \"\(name)\" is not valid: it \(Names.rule)")
        }
        let client = pool.client
        let known: Bool
        do {
            known = try await client.redis.command(["SISMEMBER", GlobalKeys(prefix: client.configuration.prefix).queues, name]).int == 1
        } catch {
            throw Self.spoolError(error, "queue", queue: name)
        }
        guard known else { throw APIError(.notFound, "no such queue \"\(name)\" (nothing was ever enqueued to it)") }
        return client
    }

    /// One job; 404 for an unknown id or one that is not shaped like a job id.
    func job(_ id: String) async throws -> Job {
        guard JobID.queue(of: id) != nil else { throw APIError(.notFound, "no such job \"\(id)\" (job ids look like QUEUE.SUFFIX)") }
        return try await pool.client.job(id)
    }

    /// A page of a queue's jobs in one state, in the order `spool jobs` uses,
    /// and how many jobs are in that state.
    func jobs(_ queue: String, state: JobState, offset: Int, limit: Int) async throws -> (jobs: [Job], total: Int) {
        let client = try await requireQueue(queue)
        let counts = try await client.counts(queue)
        let total = counts[state]
        guard offset < total else { return ([], total) }
        let jobs = try await client.jobs(queue, state: state, limit: offset + limit)
        return (Array(jobs.dropFirst(offset).prefix(limit)), total)
    }

    func workers() async throws -> [WorkerInfo] {
        try await pool.client.workers()
    }

    /// Counts, stats hashes and throughput of `names`, in two round trips.
    func describe(_ names: [String], client: SpoolClient) async throws -> [QueueResource] {
        if names.isEmpty { return [] }
        let counts = try await client.counts(names)
        let stats = try await readStats(names, client: client)
        let now = Date().timeIntervalSince1970
        return zip(counts, stats).map { c, s in
            QueueResource(counts: c, stats: s, throughput: throughput.record(c.queue, s, at: now))
        }
    }

    /// `HGETALL PREFIX:{Q}:stats` for each queue, pipelined.
    func readStats(_ names: [String], client: SpoolClient) async throws(SpoolError) -> [QueueResource.Stats] {
        do {
            let replies = try await client.redis.pipeline(names.map { ["HGETALL", client.keys($0).stats] })
            return replies.map { QueueResource.Stats(fields: Self.fields($0)) }
        } catch {
            throw Self.spoolError(error, "stats")
        }
    }

    /// HGETALL's flat reply as a dictionary.
    static func fields(_ reply: RedisValue) -> [String: String] {
        let items = reply.array ?? []
        var fields: [String: String] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].string, let v = items[i + 1].string { fields[k] = v }
            i += 2
        }
        return fields
    }

    /// A Redis error as the core would report it.
    static func spoolError(_ error: any Error, _ operation: String, queue: String? = nil) -> SpoolError {
        if let spool = error as? SpoolError { return spool }
        if let redis = error as? RedisError {
            return SpoolError(redis.isConnectionLost ? .unavailable : .redis, operation, queue: queue, redis.description)
        }
        return SpoolError(.redis, operation, queue: queue, "\(error)")
    }
}
