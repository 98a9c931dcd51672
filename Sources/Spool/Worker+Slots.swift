import Foundation
import Hiredis
import Logging

/// The claim loops: one per unit of concurrency, each with its own connection.
extension Worker {

    /// Claim, run, store; or wait for work. Until `stop()`.
    func slotLoop(_ slot: Slot) async {
        var backoff = Backoff(base: 0.05, cap: 2)
        var rateLimited: [String: ContinuousClock.Instant] = [:]
        // A job claimed in the same round trip that stored the last outcome.
        var next: Claimed?
        while !isStopping {
            do {
                var claimed = next
                next = nil
                if claimed == nil { claimed = try await claimNext(slot.redis, rateLimited: &rateLimited) }
                if let claimed {
                    outage.succeeded()
                    next = await process(claimed, on: slot.redis)
                } else if let soonest = rateLimited.values.filter({ $0 > .now }).min() {
                    // Rate limited: sleep until the window has room rather than spin.
                    let cap = ContinuousClock.now.advanced(by: .seconds(configuration.blockSeconds))
                    try? await Task.sleep(until: min(soonest, cap), clock: .continuous)
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
        // Claimed in the same round trip as stop() came: hand it straight back.
        if let next { _ = await store(.released("worker stopping"), of: next, on: slot.redis, log: logger, claimAfter: false) }
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

    /// Claims from the queues in `claimOrder()`; nil when none has a job for us.
    /// A rate-limited queue is skipped until its window has room.
    func claimNext(_ redis: RedisClient, rateLimited: inout [String: ContinuousClock.Instant]) async throws -> Claimed? {
        for queue in options.claimOrder() {
            if isStopping { return nil }
            if let until = rateLimited[queue], until > .now { continue }
            let call = claimCall(queue)
            let reply = try await redis.eval(Scripts.claim, keys: call.keys, args: call.args)
            if let a = reply.array, a.count == 2, a[0].int == -10 {
                rateLimited[queue] = ContinuousClock.now.advanced(by: .milliseconds(a[1].int ?? 10))
                continue
            }
            if let claimed = parseClaim(reply, call) { return claimed }
        }
        return nil
    }

    struct ClaimCall {
        let queue: String
        let token: String
        let keys: [String]
        let args: [String]
    }

    /// claim.lua's arguments for `queue`, with a fresh lease token.
    func claimCall(_ queue: String) -> ClaimCall {
        let token = JobID.randomHex(bytes: 12)
        let policy = configuration.policy(for: queue)
        var args = [String(clock.nowMillis()), id, token, String(leaseMs(queue))]
        if policy.rateLimit > 0 { args += [String(policy.rateLimit), String(Int(policy.rateInterval * 1000))] }
        return ClaimCall(queue: queue, token: token, keys: [queuePrefix(queue)], args: args)
    }

    /// The job in a claim reply; nil for "nothing", paused or rate-limited.
    func parseClaim(_ reply: RedisValue, _ call: ClaimCall) -> Claimed? {
        guard let a = reply.array, a.count == 7, let jobID = a[0].string else { return nil }
        return Claimed(
            id: jobID, queue: call.queue, type: a[1].string ?? "", payload: a[2].string ?? "null",
            attempt: a[3].int ?? 1, maxAttempts: a[4].int ?? 1, timeoutMs: a[5].int ?? 0, token: call.token)
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
        /// Someone cancelled the job while it ran.
        case cancelled
    }

    /// Runs one job and stores its outcome; returns the next job when the
    /// store's round trip also claimed one.
    func process(_ job: Claimed, on redis: RedisClient) async -> Claimed? {
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
        case .cancelled:
            log.notice("job stopped: cancelled")
        }
        return await store(outcome, of: job, on: redis, log: log, claimAfter: true)
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
                // A cancel request stops the handler; so does the end of the
                // grace period at shutdown, and then the job is handed back.
                while true {
                    if lease.cancelRequested { return .cancelled }
                    if self.graceExpired { return .released("worker shutting down; the grace period of \(Self.seconds(self.options.grace)) ran out") }
                    do { try await Task.sleep(for: .milliseconds(50)) } catch { return nil }
                }
            }
            var outcome: Outcome?
            while outcome == nil, let next = await group.next() { outcome = next }
            group.cancelAll()
            return outcome ?? .failed("handler ended without an outcome", retryable: true)
        }
    }

    /// Stores the outcome, retrying through Redis outages until it is stored or
    /// the lease is known to be gone. With `claimAfter`, the same pipelined
    /// write also claims the next job (one round trip per job under load).
    func store(_ outcome: Outcome, of job: Claimed, on redis: RedisClient, log: Logger, claimAfter: Bool) async -> Claimed? {
        let keys = [queuePrefix(job.queue)]
        let policy = configuration.policy(for: job.queue)
        var backoff = Backoff(base: 0.05, cap: 1)
        let giveUpAt = clock.nowMillis() + leaseMs(job.queue) + 1000
        while true {
            let now = clock.nowMillis()
            let (script, args): (RedisScript, [String])
            switch outcome {
            case .completed(let result):
                (script, args) = (Scripts.complete, [job.id, job.token, String(now), result, String(policy.keepCompleted)])
            case .failed(let message, let retryable):
                let backoffArgs = [String(Int(policy.backoffBase * 1000)), String(Int(policy.backoffCap * 1000)), String(Double.random(in: 0..<1))]
                (script, args) = (
                    Scripts.fail, [job.id, job.token, String(now), message, retryable ? "1" : "0"] + backoffArgs + [String(policy.keepDead)]
                )
            case .released(let why):
                (script, args) = (Scripts.release, [job.id, job.token, String(now), why])
            case .cancelled:
                (script, args) = (Scripts.cancel, [job.id, String(now), "", job.token])
            }
            let claim = claimAfter && !isStopping ? options.claimOrder().first.map(claimCall) : nil
            do {
                let replies = try await redis.withConnection { conn -> [RedisValue] in
                    var calls = [(script, keys, args)]
                    if let claim { calls.append((Scripts.claim, claim.keys, claim.args)) }
                    var replies = try conn.pipeline(calls.map { RedisConnection.evalshaCommand($0.0, keys: $0.1, args: $0.2) })
                    // Not run when the server lacked the script: load it and run that call again.
                    for i in replies.indices {
                        if case .error(let message) = replies[i], message.hasPrefix("NOSCRIPT") {
                            replies[i] = try conn.eval(calls[i].0, keys: calls[i].1, args: calls[i].2)
                        }
                    }
                    return replies
                }
                report(outcome, replies[0], job, log)
                if let claim, replies.count > 1 { return parseClaim(replies[1], claim) }
                return nil
            } catch {
                if now > giveUpAt {
                    log.error("could not store the outcome before the lease ran out; the job will be redelivered", metadata: ["error": "\(error)"])
                    return nil
                }
                try? await Task.sleep(for: .seconds(backoff.next()))
            }
        }
    }

    /// Logs what the outcome script said.
    private func report(_ outcome: Outcome, _ reply: RedisValue, _ job: Claimed, _ log: Logger) {
        func rejected(_ what: String, _ operation: String, _ code: Int?) {
            log.warning("\(what) rejected: \(SpoolError.script(code: code ?? 0, operation, queue: job.queue, job: job.id).message)")
        }
        switch outcome {
        case .completed:
            if reply.int == 1 { log.debug("job completed") } else { rejected("completion", "complete", reply.int) }
        case .failed(let message, _):
            if let status = reply.array?.first?.int {
                if status == 2 { log.warning("job is dead", metadata: ["error": "\(message)"]) }
            } else {
                rejected("failure report", "fail", reply.int)
            }
        case .released:
            if reply.int != 1 { rejected("release", "release", reply.int) }
        case .cancelled:
            if reply.int != 1 { rejected("cancellation", "cancel", reply.int) }
        }
    }
}
