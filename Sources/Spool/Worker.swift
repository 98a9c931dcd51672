import Foundation
import Hiredis
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What a worker process serves and how hard.
public struct WorkerOptions: Sendable {
    /// Queues in strict order: a slot claims from the first that has a job.
    public var queues: [String]
    /// Jobs run at once in this process (one claim loop and Redis connection each).
    public var concurrency: Int
    /// Overrides every queue's visibility timeout (seconds) when set.
    public var visibilityTimeout: Double?

    public init(queues: [String], concurrency: Int = 1, visibilityTimeout: Double? = nil) {
        self.queues = queues
        self.concurrency = concurrency
        self.visibilityTimeout = visibilityTimeout
    }
}

/// A worker process's engine.
///
/// 1. `concurrency` slots each loop: claim a job (claim.lua stamps a fenced
///    lease), run its handler, store the outcome (complete.lua / fail.lua); with
///    nothing to claim, block on the queues' wake lists for at most
///    `blockSeconds` (below the socket timeout, so a dead connection shows).
/// 2. The heartbeat renews the leases of every running job, one extend.lua call
///    per queue per interval, and flags jobs whose lease is gone.
/// 3. The housekeeper promotes due delayed/retry jobs, reaps expired leases and
///    trims finished jobs; guard keys make one sweep per interval fleet-wide.
/// 4. `stop()` stops claiming at once; `run()` returns when running jobs are done.
public final class Worker: Sendable {
    public let id: String
    public let configuration: SpoolConfiguration
    public let options: WorkerOptions
    let handlers: JobHandlers
    let clock: any SpoolClock
    let logger: Logger
    let client: SpoolClient

    private let stopping = Atomic<Bool>(false)
    private let running = Mutex<[String: RunningJob]>([:])
    private let slots: [Slot]
    private let counters = Mutex<(processed: Int, failed: Int)>((0, 0))

    struct RunningJob: Sendable {
        let id: String
        let queue: String
        let token: String
        let lease: LeaseState
    }

    /// One claim loop's connection, and whether it is parked in a blocking wait.
    final class Slot: Sendable {
        let redis: RedisClient
        let parked = Mutex<Bool>(false)
        init(redis: RedisClient) { self.redis = redis }

        /// Breaks a blocking wait so the loop sees `stop()` at once.
        func interruptIfParked() {
            parked.withLock { if $0 { redis.interrupt() } }
        }
    }

    public init(
        configuration: SpoolConfiguration, options: WorkerOptions, handlers: JobHandlers,
        clock: any SpoolClock = SystemClock(), logger: Logger = Logger(label: "spool.worker")
    ) {
        precondition(!options.queues.isEmpty, "a worker needs at least one queue")
        precondition(options.concurrency >= 1, "concurrency must be at least 1")
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let hostname = String(decoding: host.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.id = "\(hostname):\(getpid()):\(JobID.randomHex(bytes: 3))"
        self.configuration = configuration
        self.options = options
        self.handlers = handlers
        self.clock = clock
        var logger = logger
        logger[metadataKey: "worker"] = "\(self.id)"
        self.logger = logger
        self.client = SpoolClient(configuration: configuration, clock: clock, label: "spool.worker.housekeeping")
        self.slots = (0..<options.concurrency).map { n in
            Slot(redis: RedisClient(url: configuration.redisURL, timeouts: configuration.timeouts, label: "spool.worker.slot\(n)"))
        }
    }

    /// Jobs this process finished (completed) and attempts that failed.
    public var processedCount: Int { counters.withLock { $0.processed } }
    public var failedCount: Int { counters.withLock { $0.failed } }

    public var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Stops claiming; running jobs finish, then `run()` returns.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        for slot in slots { slot.interruptIfParked() }
    }

    /// Runs until `stop()` is called and every running job is stored.
    public func run() async {
        // A child that exits before reading its stdin must not kill the worker.
        signal(SIGPIPE, SIG_IGN)
        logger.info(
            "worker started",
            metadata: [
                "queues": "\(options.queues.joined(separator: ","))", "concurrency": "\(options.concurrency)",
                "handlers": "\(handlers.types.joined(separator: ","))",
            ])
        await withTaskGroup(of: Void.self) { background in
            background.addTask { await self.heartbeatLoop() }
            background.addTask { await self.housekeepingLoop() }
            await withTaskGroup(of: Void.self) { group in
                for slot in slots { group.addTask { await self.slotLoop(slot) } }
            }
            background.cancelAll()
        }
        for slot in slots { slot.redis.close() }
        client.redis.close()
        logger.info("worker stopped", metadata: ["processed": "\(processedCount)", "failed": "\(failedCount)"])
    }

    func leaseMs(_ queue: String) -> Int {
        Int((options.visibilityTimeout ?? configuration.policy(for: queue).visibilityTimeout) * 1000)
    }

    // MARK: Slots

    private func slotLoop(_ slot: Slot) async {
        var backoff = Backoff(base: 0.05, cap: 2)
        var outage: String?
        while !isStopping {
            do {
                if let claimed = try await claimNext(slot.redis) {
                    await process(claimed, on: slot.redis)
                } else {
                    try await waitForWork(slot)
                }
                if let outage {
                    logger.info("redis is back", metadata: ["after": "\(outage)"])
                }
                outage = nil
                backoff.reset()
            } catch {
                if isStopping { break }
                if outage == nil {
                    outage = "\(error)"
                    logger.warning("redis unavailable, retrying with backoff", metadata: ["error": "\(error)"])
                }
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
    private func claimNext(_ redis: RedisClient) async throws -> Claimed? {
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
    private func waitForWork(_ slot: Slot) async throws {
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
    }

    private func process(_ job: Claimed, on redis: RedisClient) async {
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
        }
        await store(outcome, of: job, on: redis, log: log)
    }

    /// Stores and publishes one progress value (progress.lua, fenced by the lease).
    private func sendProgress(_ job: Claimed, _ percent: Double, _ message: String, lease: LeaseState, on redis: RedisClient, log: Logger) async {
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

    private func execute(_ job: Claimed, lease: LeaseState, reporter: ProgressReporter) async -> Outcome {
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
            var outcome: Outcome?
            while outcome == nil, let next = await group.next() { outcome = next }
            group.cancelAll()
            return outcome ?? .failed("handler ended without an outcome", retryable: true)
        }
    }

    /// Stores the outcome, retrying through Redis outages until it is stored or
    /// the lease is known to be gone.
    private func store(_ outcome: Outcome, of job: Claimed, on redis: RedisClient, log: Logger) async {
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

    static func seconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s))s" : String(format: "%.3gs", s)
    }

    // MARK: Heartbeat

    private func heartbeatLoop() async {
        let redis = RedisClient(url: configuration.redisURL, timeouts: configuration.timeouts, label: "spool.worker.heartbeat")
        defer { redis.close() }
        let shortest = options.queues.map(leaseMs).min() ?? 30000
        let interval = max(0.02, Double(shortest) / 3000)
        while !Task.isCancelled {
            do { try await Task.sleep(for: .seconds(interval)) } catch { return }
            let jobs = running.withLock { Array($0.values) }
            if jobs.isEmpty { continue }
            let byQueue = Dictionary(grouping: jobs, by: \.queue)
            let now = String(clock.nowMillis())
            var calls: [(keys: [String], args: [String], jobs: [RunningJob])] = []
            for (queue, group) in byQueue {
                var args = [now, String(leaseMs(queue))]
                for job in group { args += [job.id, job.token] }
                calls.append(([QueueKeys(prefix: configuration.prefix, queue: queue).prefix], args, group))
            }
            let commands = calls.map { ["EVALSHA", Scripts.extend.sha, "1"] + $0.keys + $0.args }
            do {
                let replies = try await redis.withConnection { conn -> [RedisValue] in
                    let replies = try conn.pipeline(commands)
                    if replies.contains(where: { if case .error(let m) = $0 { return m.hasPrefix("NOSCRIPT") } else { return false } }) {
                        try conn.command(["SCRIPT", "LOAD", Scripts.extend.source])
                        return try conn.pipeline(commands)
                    }
                    return replies
                }
                for (call, reply) in zip(calls, replies) {
                    let codes = reply.array ?? []
                    for (job, code) in zip(call.jobs, codes) where code.int != 1 && !job.lease.lost {
                        job.lease.markLost()
                        let why = SpoolError.script(code: code.int ?? 0, "extend", queue: job.queue, job: job.id).message
                        logger.warning(
                            "lease lost; this attempt's outcome will be rejected",
                            metadata: ["job": "\(job.id)", "queue": "\(job.queue)", "reason": "\(why)"])
                    }
                }
            } catch {
                logger.debug("heartbeat failed", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: Housekeeping

    private func housekeepingLoop() async {
        let promoteMs = Int(configuration.promoteInterval * 1000)
        let reapMs = Int(configuration.reapInterval * 1000)
        var lastReap = 0
        while !Task.isCancelled {
            do {
                for queue in options.queues {
                    try await client.promote(queue, guardMs: promoteMs)
                }
                let now = clock.nowMillis()
                if now - lastReap >= reapMs {
                    lastReap = now
                    for queue in options.queues {
                        let reaped = try await client.reap(queue, guardMs: reapMs)
                        if reaped.stalled + reaped.orphans + reaped.dead > 0 {
                            logger.warning(
                                "redelivered stalled jobs",
                                metadata: [
                                    "queue": "\(queue)", "stalled": "\(reaped.stalled)", "orphans": "\(reaped.orphans)", "dead": "\(reaped.dead)",
                                ])
                        }
                        try await client.trim(queue, guardMs: reapMs)
                    }
                }
            } catch {
                logger.debug("housekeeping failed", metadata: ["error": "\(error)"])
            }
            do { try await Task.sleep(for: .seconds(configuration.promoteInterval)) } catch { return }
        }
    }
}
