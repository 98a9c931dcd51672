import Foundation
import Hiredis
import Logging

/// The claim loops: one per unit of concurrency, each with its own connection.
extension Worker {

    /// Claim, run, store; or wait for work. Until `stop()`.
    func slotLoop(_ slot: Slot) async {
        var backoff = Backoff(base: 0.05, cap: 2)
        while !isStopping {
            do {
                if let claimed = try await claimNext(slot.redis) {
                    outage.succeeded()
                    await process(claimed, on: slot.redis)
                } else {
                    try await waitForWork(slot)
                    outage.succeeded()
                }
                backoff.reset()
            } catch {
                if isStopping { break }
                outage.failed(error)
                try? await Task.sleep(for: .seconds(backoff.next()))
            }
        }
    }

    struct Claimed: Sendable {
        let id: String
        let queue: String
        let type: String
        let payload: String
        let attempt: Int
        let maxAttempts: Int
        let timeoutMs: Int
        let token: String
    }

    /// Claims from the first queue that has a job.
    func claimNext(_ redis: RedisClient) async throws -> Claimed? {
        for queue in options.queues {
            if isStopping { return nil }
            let token = JobID.randomHex(bytes: 12)
            let keys = [QueueKeys(prefix: configuration.prefix, queue: queue).prefix]
            let args = [String(clock.nowMillis()), id, token, String(leaseMs(queue))]
            let reply = try await redis.eval(Scripts.claim, keys: keys, args: args)
            guard let a = reply.array, a.count == 7, let jobID = a[0].string else { continue }
            return Claimed(
                id: jobID, queue: queue, type: a[1].string ?? "", payload: a[2].string ?? "null",
                attempt: a[3].int ?? 1, maxAttempts: a[4].int ?? 1, timeoutMs: a[5].int ?? 0, token: token)
        }
        return nil
    }

    /// Blocks until a queue's wake token arrives or `blockSeconds` pass.
    func waitForWork(_ slot: Slot) async throws {
        let wakeKeys = options.queues.map { QueueKeys(prefix: configuration.prefix, queue: $0).wake }
        let seconds = min(configuration.blockSeconds, configuration.timeouts.command - 1)
        let timeout = String(format: "%.3f", max(0.01, seconds))
        try await slot.redis.withConnection { conn in
            let stop = slot.parked.withLock { parked in
                if self.isStopping { return true }
                parked = true
                return false
            }
            if stop { return }
            defer { slot.parked.withLock { $0 = false } }
            _ = try conn.command(["BLPOP"] + wakeKeys + [timeout])
        }
    }

    // MARK: Running a job

    enum Outcome {
        case completed(String)
        case failed(String, retryable: Bool)
        /// The worker is shutting down and the grace period ran out.
        case released(String)
    }

    func process(_ job: Claimed, on redis: RedisClient) async {
        var log = logger
        log[metadataKey: "job"] = "\(job.id)"
        log[metadataKey: "queue"] = "\(job.queue)"
        log[metadataKey: "attempt"] = "\(job.attempt)"
        let lease = LeaseState()
        running.withLock { $0[job.id] = RunningJob(id: job.id, queue: job.queue, token: job.token, lease: lease) }
        defer { _ = running.withLock { $0.removeValue(forKey: job.id) } }

        log.debug("job started", metadata: ["type": "\(job.type)"])
        let reporter = ProgressReporter { [self, log] percent, message in
            await self.sendProgress(job, percent, message, lease: lease, on: redis, log: log)
        }
        let outcome = await execute(job, lease: lease, reporter: reporter)
        await reporter.finish()
        switch outcome {
        case .completed: counters.withLock { $0.processed += 1 }
        case .failed(let message, _):
            counters.withLock { $0.failed += 1 }
            log.warning("attempt failed", metadata: ["error": "\(message)"])
        case .released(let why):
            log.notice("releasing the job", metadata: ["why": "\(why)"])
        }
        await store(outcome, of: job, on: redis, log: log)
    }

    /// Stores and publishes one progress value (progress.lua, fenced by the lease).
    func sendProgress(_ job: Claimed, _ percent: Double, _ message: String, lease: LeaseState, on redis: RedisClient, log: Logger) async {
        let keys = [QueueKeys(prefix: configuration.prefix, queue: job.queue).prefix]
        let args = [job.id, job.token, String(clock.nowMillis()), String(percent), message]
        do {
            let code = try await redis.eval(Scripts.progress, keys: keys, args: args).int ?? 0
            if code < 0 && !lease.lost {
                lease.markLost()
                log.warning("progress rejected: \(SpoolError.script(code: code, "progress", queue: job.queue, job: job.id).message)")
            }
        } catch {
            log.debug("progress not stored", metadata: ["error": "\(error)"])
        }
    }

    func execute(_ job: Claimed, lease: LeaseState, reporter: ProgressReporter) async -> Outcome {
        guard let handler = handlers[job.type] else {
            let known = handlers.types.isEmpty ? "none" : handlers.types.joined(separator: ", ")
            return .failed("no handler for job type \"\(job.type)\" (this worker handles: \(known))", retryable: false)
        }
        let context = JobContext(
            id: job.id, queue: job.queue, type: job.type, payload: job.payload,
            attempt: job.attempt, maxAttempts: job.maxAttempts, workerID: id, lease: lease, reporter: reporter)
        let policyTimeout = configuration.policy(for: job.queue).jobTimeout
        let timeout = job.timeoutMs > 0 ? Double(job.timeoutMs) / 1000 : policyTimeout
        return await withTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                do {
                    let result = try await handler(context) ?? "null"
                    return .completed(JSONCheck.isValid(result) ? result : JSONCheck.quote(result))
                } catch let failure as JobFailure {
                    return .failed(failure.message, retryable: failure.retryable)
                } catch {
                    return .failed("\(error)", retryable: true)
                }
            }
            if timeout > 0 {
                group.addTask {
                    try? await Task.sleep(for: .seconds(timeout))
                    if Task.isCancelled { return nil }
                    return .failed("timed out after \(Self.seconds(timeout))", retryable: true)
                }
            }
            group.addTask {
                // Shutdown: once the grace period is over, cancel the handler and hand the job back.
                while !self.graceExpired {
                    do { try await Task.sleep(for: .milliseconds(50)) } catch { return nil }
                }
                return .released("worker shutting down; the grace period of \(Self.seconds(self.options.grace)) ran out")
            }
            var outcome: Outcome?
            while outcome == nil, let next = await group.next() { outcome = next }
            group.cancelAll()
            return outcome ?? .failed("handler ended without an outcome", retryable: true)
        }
    }

    /// Stores the outcome, retrying through Redis outages until it is stored or
    /// the lease is known to be gone.
    func store(_ outcome: Outcome, of job: Claimed, on redis: RedisClient, log: Logger) async {
        let keys = [QueueKeys(prefix: configuration.prefix, queue: job.queue).prefix]
        let policy = configuration.policy(for: job.queue)
        var backoff = Backoff(base: 0.05, cap: 1)
        let giveUpAt = clock.nowMillis() + leaseMs(job.queue) + 1000
        while true {
            let now = clock.nowMillis()
            do {
                switch outcome {
                case .completed(let result):
                    let reply = try await redis.eval(
                        Scripts.complete, keys: keys, args: [job.id, job.token, String(now), result, String(policy.keepCompleted)])
                    let code = reply.int ?? 0
                    if code == 1 {
                        log.debug("job completed")
                    } else {
                        log.warning("completion rejected: \(SpoolError.script(code: code, "complete", queue: job.queue, job: job.id).message)")
                    }
                case .failed(let message, let retryable):
                    let args = [
                        job.id, job.token, String(now), message, retryable ? "1" : "0",
                        String(Int(policy.backoffBase * 1000)), String(Int(policy.backoffCap * 1000)),
                        String(Double.random(in: 0..<1)), String(policy.keepDead),
                    ]
                    let reply = try await redis.eval(Scripts.fail, keys: keys, args: args)
                    if let a = reply.array, let status = a.first?.int {
                        if status == 2 { log.warning("job is dead", metadata: ["error": "\(message)"]) }
                    } else if let code = reply.int {
                        log.warning("failure report rejected: \(SpoolError.script(code: code, "fail", queue: job.queue, job: job.id).message)")
                    }
                case .released(let why):
                    let code = try await redis.eval(Scripts.release, keys: keys, args: [job.id, job.token, String(now), why]).int ?? 0
                    if code != 1 {
                        log.warning("release rejected: \(SpoolError.script(code: code, "release", queue: job.queue, job: job.id).message)")
                    }
                }
                return
            } catch {
                if now > giveUpAt {
                    log.error("could not store the outcome before the lease ran out; the job will be redelivered", metadata: ["error": "\(error)"])
                    return
                }
                try? await Task.sleep(for: .seconds(backoff.next()))
            }
        }
    }
}
