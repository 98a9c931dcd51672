import Foundation
import Hiredis
import Logging

/// The claim loops: one per unit of concurrency, each with its own connection
/// for blocking waits, which only the process's current waiter uses.
extension Worker {

    /// Claim, run, store; or wait for work. Until `stop()`.
    func slotLoop(_ slot: Slot) async {
        var backoff = Backoff(base: 0.05, cap: 2)
        var rateLimited: [String: ContinuousClock.Instant] = [:]
        // A job claimed in the same round trip that stored the last outcome,
        // or the queue that claim found empty (not asked again right away).
        var next: Claimed?
        var empty: String?
        // The last wait timed out: no token came, so go straight back to
        // waiting. A lost token is re-armed by the reaper, not found by polling.
        var timedOut = false
        while !isStopping {
            do {
                var claimed = next
                next = nil
                if claimed == nil && !timedOut { claimed = try await claimNext(rateLimited: &rateLimited, skipping: empty) }
                empty = nil
                timedOut = false
                if let claimed {
                    waitRoom.leave(slot.index)
                    outage.succeeded()
                    (next, empty) = await process(claimed)
                } else if let soonest = rateLimited.values.filter({ $0 > .now }).min() {
                    // Rate limited: sleep until the window has room rather than spin.
                    waitRoom.leave(slot.index)
                    let cap = ContinuousClock.now.advanced(by: .seconds(configuration.blockSeconds))
                    try? await Task.sleep(until: min(soonest, cap), clock: .continuous)
                } else {
                    switch try await waitForWork(slot) {
                    case .claimed(let job): next = job
                    case .timedOut: timedOut = true
                    case .claimAgain: break
                    case .woken: continue  // no Redis call was made: says nothing of an outage
                    }
                    outage.succeeded()
                }
                backoff.reset()
            } catch {
                waitRoom.leave(slot.index)
                if isStopping { break }
                outage.failed(error)
                try? await Task.sleep(for: .seconds(backoff.next()))
            }
        }
        waitRoom.leave(slot.index)
        // Claimed in the same round trip as stop() came: hand it straight back.
        if let next { await store(.released("worker stopping"), of: next, claimAfter: false) }
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
    /// A rate-limited queue is skipped until its window has room, and so is
    /// `skipping`, a queue that the claim stored with the last outcome found
    /// empty a moment ago (a job enqueued since then pushed a wake token).
    func claimNext(rateLimited: inout [String: ContinuousClock.Instant], skipping: String? = nil) async throws -> Claimed? {
        for queue in options.claimOrder() where queue != skipping {
            if isStopping { return nil }
            if let until = rateLimited[queue], until > .now { continue }
            let call = claimCall(queue, rearm: true)
            let reply = try await commands.send([call.redisCall])[0].checked()
            if let a = reply.array, a.count == 2, a[0].int == -10 {
                rateLimited[queue] = ContinuousClock.now.advanced(by: .milliseconds(a[1].int ?? 10))
                continue
            }
            if let claimed = parseClaim(reply, call).first { return claimed }
        }
        return nil
    }

    struct ClaimCall {
        let queue: String
        let redisCall: RedisCall
    }

    /// claim.lua's call for up to `count` jobs of `queue`, with a fresh lease
    /// token. `rearm`: pass the wake token on while jobs remain; false when
    /// claiming right after storing an outcome (idle workers were woken when
    /// the jobs came).
    func claimCall(_ queue: String, rearm: Bool, count: Int = 1) -> ClaimCall {
        let policy = configuration.policy(for: queue)
        let args = [
            String(clock.nowMillis()), id, JobID.randomHex(bytes: 12), String(leaseMs(queue)),
            String(policy.rateLimit), String(Int(policy.rateInterval * 1000)), rearm ? "1" : "0", String(count),
        ]
        return ClaimCall(queue: queue, redisCall: .script(Scripts.claim, keys: [queuePrefix(queue)], args: args))
    }

    /// The jobs in a claim reply, oldest first; none for "nothing", paused or
    /// rate-limited.
    func parseClaim(_ reply: RedisValue, _ call: ClaimCall) -> [Claimed] {
        guard let jobs = reply.array else { return [] }
        return jobs.compactMap { job in
            guard let a = job.array, a.count == 8, let jobID = a[0].string, let token = a[7].string else { return nil }
            return Claimed(
                id: jobID, queue: call.queue, type: a[1].string ?? "", payload: a[2].string ?? "null",
                attempt: a[3].int ?? 1, maxAttempts: a[4].int ?? 1, timeoutMs: a[5].int ?? 0, token: token)
        }
    }

    enum Wait {
        /// A token came and the claim that followed it brought this job.
        case claimed(Claimed)
        /// `blockSeconds` passed without a token.
        case timedOut
        /// A token that brought nothing (paused, rate-limited, or taken by
        /// a busy worker).
        case claimAgain
        /// Woken in the wait room, or stopping, without calling Redis.
        case woken
    }

    /// As this process's waiter, blocks until a queue's wake token arrives or
    /// `blockSeconds` pass; any other slot parks in ``WaitRoom`` until the
    /// waiter takes a job. On a token, claims from that queue on the same
    /// connection in the same dispatch block: an idle worker starts a new job
    /// with no thread hop between the wake-up and the claim.
    func waitForWork(_ slot: Slot) async throws -> Wait {
        guard await waitRoom.enter(slot.index) else { return .woken }
        let wakeKeys = options.queues.map { QueueKeys(prefix: configuration.prefix, queue: $0).wake }
        let seconds = min(configuration.blockSeconds, configuration.timeouts.command - 1)
        let timeout = String(format: "%.3f", max(0.01, seconds))
        return try await slot.redis.withConnection { conn -> Wait in
            let stop = slot.blocked.withLock { blocked in
                if self.isStopping { return true }
                blocked = true
                return false
            }
            if stop { return .woken }
            let woke: RedisValue
            do {
                defer { slot.blocked.withLock { $0 = false } }
                woke = try conn.command(["BLPOP"] + wakeKeys + [timeout])
            }
            if self.isStopping { return .woken }
            guard let key = woke.array?.first?.string, let index = wakeKeys.firstIndex(of: key) else { return .timedOut }
            let call = self.claimCall(self.options.queues[index], rearm: true)
            let reply = try conn.run([call.redisCall])[0].checked()
            // Nothing, paused or rate-limited: the loop's next claim sorts it out.
            return self.parseClaim(reply, call).first.map(Wait.claimed) ?? .claimAgain
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
    /// store's round trip also claimed one, or else the queue that claim found empty.
    func process(_ job: Claimed) async -> (next: Claimed?, empty: String?) {
        let lease = LeaseState()
        let policyTimeout = configuration.policy(for: job.queue).jobTimeout
        let timeout = job.timeoutMs > 0 ? Double(job.timeoutMs) / 1000 : policyTimeout
        let entry = RunningJob(
            id: job.id, queue: job.queue, token: job.token, lease: lease, timeout: timeout,
            deadline: timeout > 0 ? ContinuousClock.now.advanced(by: .seconds(timeout)) : nil)
        if startRunning(entry) { lease.requestCancel() }

        if logger.logLevel <= .debug { jobLogger(job).debug("job started", metadata: ["type": "\(job.type)"]) }
        let reporter = ProgressReporter { [self] percent, message in
            await self.sendProgress(job, percent, message, lease: lease)
        }
        let outcome = await execute(job, lease: lease, reporter: reporter)
        await reporter.finish()
        // Out of `running` before the outcome is stored, so the heartbeat does
        // not renew a lease that the store is about to end.
        _ = running.withLock { $0.removeValue(forKey: job.id) }
        switch outcome {
        case .completed: counters.withLock { $0.processed += 1 }
        case .failed(let message, _):
            counters.withLock { $0.failed += 1 }
            jobLogger(job).warning("attempt failed", metadata: ["error": "\(message)"])
        case .released(let why):
            jobLogger(job).notice("releasing the job", metadata: ["why": "\(why)"])
        case .cancelled:
            jobLogger(job).notice("job stopped: cancelled")
        }
        guard case .completed(let result) = outcome else { return await store(outcome, of: job, claimAfter: true) }
        let answer = await completeInBatch(job, result: result, claimAfter: true)
        if answer.code != nil { return (answer.next, answer.empty) }
        // Not known to be stored: the retry loop, which claims only if the batch did not.
        let retried = await store(outcome, of: job, claimAfter: answer.next == nil)
        return answer.next.map { ($0, nil) } ?? retried
    }

    /// The worker's logger with the job's id, queue and attempt; made only
    /// when something is logged, not for every job.
    func jobLogger(_ job: Claimed) -> Logger {
        var log = logger
        log[metadataKey: "job"] = "\(job.id)"
        log[metadataKey: "queue"] = "\(job.queue)"
        log[metadataKey: "attempt"] = "\(job.attempt)"
        return log
    }

    /// Stores and publishes one progress value (progress.lua, fenced by the lease).
    func sendProgress(_ job: Claimed, _ percent: Double, _ message: String, lease: LeaseState) async {
        let keys = [QueueKeys(prefix: configuration.prefix, queue: job.queue).prefix]
        let args = [job.id, job.token, String(clock.nowMillis()), String(percent), message]
        do {
            let reply = try await commands.send([.script(Scripts.progress, keys: keys, args: args)])[0].checked()
            let code = reply.int ?? 0
            if code < 0 && !lease.lost {
                lease.markLost()
                jobLogger(job).warning("progress rejected: \(SpoolError.script(code: code, "progress", queue: job.queue, job: job.id).message)")
            }
        } catch {
            jobLogger(job).debug("progress not stored", metadata: ["error": "\(error)"])
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
        // The handler runs in its own task; a timeout or the end of the grace
        // period (both found by `deadlineLoop`) or a cancel request cancels it
        // and decides the outcome, whatever the handler returns after that.
        let task = Task { () -> Outcome in
            do {
                let result = try await handler(context) ?? "null"
                return .completed(JSONValidator.isValid(result) ? result : JSONCheck.quote(result))
            } catch let failure as JobFailure {
                return .failed(failure.message, retryable: failure.retryable)
            } catch {
                return .failed("\(error)", retryable: true)
            }
        }
        lease.attach(task)
        if graceExpired { lease.interrupt(graceOutcome) }
        let outcome = await task.value
        return lease.interruption ?? outcome
    }

    /// Stops jobs that ran past their timeout, and at shutdown those still
    /// running when the grace period ends. One loop for the process rather
    /// than a timer per job: a tick every 100 ms bounds how late a timeout is.
    func deadlineLoop() async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: .milliseconds(100)) } catch { return }
            let jobs = running.withLock { Array($0.values) }
            if jobs.isEmpty { continue }
            let now = ContinuousClock.now
            let graceOver = graceExpired
            for job in jobs {
                if graceOver {
                    job.lease.interrupt(graceOutcome)
                } else if let deadline = job.deadline, deadline <= now {
                    job.lease.interrupt(.failed("timed out after \(Self.seconds(job.timeout))", retryable: true))
                }
            }
        }
    }

    /// What a job still running when the grace period ends becomes.
    var graceOutcome: Outcome {
        .released("worker shutting down; the grace period of \(Self.seconds(options.grace)) ran out")
    }

    /// Stores the outcome, retrying through Redis outages until it is stored or
    /// the lease is known to be gone. With `claimAfter`, the same pipelined
    /// write also claims the next job (one round trip per job under load);
    /// returns that job, or the queue when the claim found it empty.
    @discardableResult
    func store(_ outcome: Outcome, of job: Claimed, claimAfter: Bool) async -> (next: Claimed?, empty: String?) {
        let keys = [queuePrefix(job.queue)]
        let policy = configuration.policy(for: job.queue)
        var backoff = Backoff(base: 0.05, cap: 1)
        let giveUpAt = clock.nowMillis() + leaseMs(job.queue) + 1000
        while true {
            let now = clock.nowMillis()
            let (script, args): (RedisScript, [String])
            switch outcome {
            case .completed(let result):
                (script, args) = (Scripts.complete, [String(now), String(policy.keepCompleted), job.id, job.token, result])
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
            let claim = claimAfter && !isStopping ? options.claimOrder().first.map { claimCall($0, rearm: false) } : nil
            do {
                var calls = [RedisCall.script(script, keys: keys, args: args)]
                if let claim { calls.append(claim.redisCall) }
                let replies = try await commands.send(calls)
                // An error reply (LOADING after a restart, a failover's
                // READONLY) is not the script's answer: store again.
                _ = try replies[0].checked()
                report(outcome, replies[0], job)
                if let claim, replies.count > 1 {
                    if let next = parseClaim(replies[1], claim).first { return (next, nil) }
                    return (nil, replies[1].int == 0 ? claim.queue : nil)
                }
                return (nil, nil)
            } catch {
                if now > giveUpAt {
                    jobLogger(job).error("could not store the outcome before the lease ran out; the job will be redelivered", metadata: ["error": "\(error)"])
                    return (nil, nil)
                }
                try? await Task.sleep(for: .seconds(backoff.next()))
            }
        }
    }

    /// Logs what the outcome script said.
    func report(_ outcome: Outcome, _ reply: RedisValue, _ job: Claimed) {
        switch outcome {
        case .completed:
            // complete.lua answers a batch: one code per job.
            reportCompletion(reply.array?.first?.int, job)
        case .failed(let message, _):
            if let status = reply.array?.first?.int {
                if status == 2 { jobLogger(job).warning("job is dead", metadata: ["error": "\(message)"]) }
                if status == 3 { jobLogger(job).info("job cancelled: it failed with a cancel request pending", metadata: ["error": "\(message)"]) }
            } else {
                rejected("failure report", "fail", reply.int, job)
            }
        case .released:
            if reply.int != 1 { rejected("release", "release", reply.int, job) }
        case .cancelled:
            if reply.int != 1 { rejected("cancellation", "cancel", reply.int, job) }
        }
    }

    /// Logs complete.lua's code for `job` (1: completed).
    func reportCompletion(_ code: Int?, _ job: Claimed) {
        if code == 1 {
            if logger.logLevel <= .debug { jobLogger(job).debug("job completed") }
        } else {
            rejected("completion", "complete", code, job)
        }
    }

    private func rejected(_ what: String, _ operation: String, _ code: Int?, _ job: Claimed) {
        jobLogger(job).warning("\(what) rejected: \(SpoolError.script(code: code ?? 0, operation, queue: job.queue, job: job.id).message)")
    }
}
