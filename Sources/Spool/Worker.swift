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
    /// Seconds running jobs get to finish after `stop()`; then they are
    /// cancelled and their leases released, so another worker takes them at once.
    public var grace: Double
    /// Queue -> weight. Empty: strict order (the first queue with a job wins).
    /// Otherwise each claim tries the queues in a random order drawn by weight,
    /// so every queue gets its share and none starves.
    public var weights: [String: Int]

    public init(queues: [String], concurrency: Int = 1, visibilityTimeout: Double? = nil, grace: Double = 25, weights: [String: Int] = [:]) {
        self.queues = queues
        self.concurrency = concurrency
        self.visibilityTimeout = visibilityTimeout
        self.grace = grace
        self.weights = weights
    }

    /// The order in which one claim tries the queues.
    func claimOrder() -> [String] {
        if weights.isEmpty { return queues }
        var left = queues.map { ($0, max(1, weights[$0] ?? 1)) }
        var order: [String] = []
        while !left.isEmpty {
            var pick = Int.random(in: 0..<left.reduce(0) { $0 + $1.1 })
            let index =
                left.firstIndex { entry in
                    pick -= entry.1
                    return pick < 0
                } ?? 0
            order.append(left.remove(at: index).0)
        }
        return order
    }
}

/// A worker process's engine.
///
/// 1. `concurrency` slots each loop: claim a job (claim.lua stamps a fenced
///    lease), run its handler, store the outcome (complete.lua, batched with
///    the other slots' completions and the claims of their next jobs; or
///    fail.lua); with
///    nothing to claim, one idle slot per process blocks on the queues' wake
///    lists for at most `blockSeconds` (below the socket timeout, so a dead
///    connection shows) and the others park in memory (``WaitRoom``).
/// 2. The heartbeat renews the leases of every running job, one extend.lua call
///    per queue per interval, and flags jobs whose lease is gone.
/// 3. The housekeeper promotes due delayed/retry jobs, reaps expired leases,
///    trims finished jobs and keeps this worker's entry in the registry fresh,
///    all due in a tick in one write; guard keys make one sweep per interval
///    fleet-wide.
/// 4. `stop()` stops claiming at once. Running jobs get `grace` seconds; any
///    still running then are cancelled and released (release.lua: back to the
///    front of the queue, the attempt not counted). `run()` returns after the
///    worker has left the registry.
public final class Worker: Sendable {
    public let id: String
    public let configuration: SpoolConfiguration
    public let options: WorkerOptions
    let handlers: JobHandlers
    let clock: any SpoolClock
    let logger: Logger
    let client: SpoolClient
    let hostname: String
    let startedAt: Int
    let outage: OutageLog

    private let stopRequested = Mutex<ContinuousClock.Instant?>(nil)
    let running = Mutex<[String: RunningJob]>([:])
    /// Cancel requests for jobs not (yet) in `running`, with when they came;
    /// locked only inside `running`'s lock.
    let earlyCancels = Mutex<[String: ContinuousClock.Instant]>([:])
    /// Workers serving each queue, read with the housekeeper's registry write.
    let peers = Mutex<[String: Int]>([:])
    let slots: [Slot]
    /// Idle slots: one blocks on the wake lists, the rest wait in memory.
    let waitRoom = WaitRoom()
    /// Claims, outcomes and progress from every slot share this connection, so
    /// slots finishing together share one write (see ``RedisClient/send(_:)``).
    let commands: RedisClient
    /// Completions waiting for the batch in flight (see `completeInBatch`).
    let completions = Mutex(CompletionQueue())
    let counters = Mutex<(processed: Int, failed: Int)>((0, 0))

    struct RunningJob: Sendable {
        let id: String
        let queue: String
        let token: String
        let lease: LeaseState
        /// Seconds the job may run (0: no limit), and when that runs out.
        let timeout: Double
        let deadline: ContinuousClock.Instant?
    }

    /// One claim loop's connection for blocking waits (a blocked connection
    /// cannot carry other calls), and whether it is blocked in one.
    final class Slot: Sendable {
        let index: Int
        let redis: RedisClient
        let blocked = Mutex<Bool>(false)
        init(index: Int, redis: RedisClient) {
            self.index = index
            self.redis = redis
        }

        /// Breaks a blocking wait so the loop sees `stop()` at once.
        func interruptIfBlocked() {
            blocked.withLock { if $0 { redis.interrupt() } }
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
        self.hostname = String(decoding: host.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.id = "\(hostname):\(getpid()):\(JobID.randomHex(bytes: 3))"
        self.configuration = configuration
        self.options = options
        var handlers = handlers
        let box = WorkerBox()
        if handlers[Self.callbackType] == nil {
            handlers.register(Self.callbackType) { context in
                guard let worker = box.worker else { throw JobFailure("worker is gone") }
                return try await worker.deliverCallback(context)
            }
        }
        self.handlers = handlers
        self.clock = clock
        self.startedAt = clock.nowMillis()
        var logger = logger
        logger[metadataKey: "worker"] = "\(self.id)"
        self.logger = logger
        self.outage = OutageLog(logger: logger)
        self.client = SpoolClient(configuration: configuration, clock: clock, label: "spool.worker.housekeeping")
        self.commands = RedisClient(url: configuration.redisURL, timeouts: configuration.timeouts, label: "spool.worker.commands")
        self.slots = (0..<options.concurrency).map { n in
            Slot(index: n, redis: RedisClient(url: configuration.redisURL, timeouts: configuration.timeouts, label: "spool.worker.slot\(n)"))
        }
        box.worker = self
    }

    /// Jobs this process completed, and attempts that failed.
    public var processedCount: Int { counters.withLock { $0.processed } }
    public var failedCount: Int { counters.withLock { $0.failed } }

    public var isStopping: Bool { stopRequested.withLock { $0 != nil } }

    /// True once `grace` seconds have passed since `stop()`.
    var graceExpired: Bool {
        stopRequested.withLock { at in
            guard let at else { return false }
            return at.duration(to: .now) >= .seconds(options.grace)
        }
    }

    /// Stops claiming; running jobs get `options.grace` seconds to finish.
    public func stop() {
        let first = stopRequested.withLock { at -> Bool in
            if at != nil { return false }
            at = .now
            return true
        }
        if first {
            let count = running.withLock { $0.count }
            logger.info("stopping: no new claims", metadata: ["running": "\(count)", "grace": "\(options.grace)s"])
        }
        waitRoom.close()
        for slot in slots { slot.interruptIfBlocked() }
    }

    /// Runs until `stop()` is called and every running job is stored or released.
    public func run() async {
        // A child that exits before reading its stdin must not kill the worker.
        signal(SIGPIPE, SIG_IGN)
        logger.info(
            "worker started",
            metadata: [
                "queues": "\(options.queues.joined(separator: ","))", "concurrency": "\(options.concurrency)",
                "handlers": "\(handlers.types.joined(separator: ","))",
            ])
        let cancels = listenForCancels()
        defer { cancels.stop() }
        await withTaskGroup(of: Void.self) { background in
            background.addTask { await self.heartbeatLoop() }
            background.addTask { await self.housekeepingLoop() }
            background.addTask { await self.deadlineLoop() }
            await withTaskGroup(of: Void.self) { group in
                for slot in slots { group.addTask { await self.slotLoop(slot) } }
            }
            background.cancelAll()
        }
        await deregister()
        for slot in slots { slot.redis.close() }
        commands.close()
        client.redis.close()
        logger.info("worker stopped", metadata: ["processed": "\(processedCount)", "failed": "\(failedCount)"])
    }

    /// One subscription for the whole process to its queues' cancel channels:
    /// a request for a job running here stops its handler.
    private func listenForCancels() -> RedisSubscriber {
        let channels = options.queues.map { QueueKeys(prefix: configuration.prefix, queue: $0).cancels }
        let subscriber = RedisSubscriber(url: configuration.redisURL, channels: channels, timeouts: configuration.timeouts) { [self] event in
            if case .message(_, let id) = event { requestCancel(id) }
        }
        subscriber.start()
        return subscriber
    }

    /// Marks a running job for cancellation; its slot stops the handler.
    func requestCancel(_ id: String) {
        // A request may come between the claim and the job's entry in
        // `running`: kept for a moment, `process` applies it when it starts.
        let job = running.withLock { jobs -> RunningJob? in
            if let job = jobs[id] { return job }
            let now = ContinuousClock.now
            earlyCancels.withLock { early in
                early = early.filter { $0.value.duration(to: now) < .seconds(10) }
                if early.count < 10_000 { early[id] = now }
            }
            return nil
        }
        guard let job, !job.lease.cancelRequested else { return }
        job.lease.requestCancel()
        logger.notice("cancel requested; stopping the job", metadata: ["job": "\(id)", "queue": "\(job.queue)"])
    }

    /// Adds a job to `running`; true when a cancel request for it came first.
    func startRunning(_ job: RunningJob) -> Bool {
        running.withLock { jobs in
            jobs[job.id] = job
            return earlyCancels.withLock { $0.removeValue(forKey: job.id) != nil }
        }
    }

    func leaseMs(_ queue: String) -> Int {
        Int((options.visibilityTimeout ?? configuration.policy(for: queue).visibilityTimeout) * 1000)
    }

    func queuePrefix(_ queue: String) -> String { QueueKeys(prefix: configuration.prefix, queue: queue).prefix }

    static func seconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s))s" : String(format: "%.3gs", s)
    }
}

/// One log line when Redis goes away and one when it is back, however many of
/// the worker's loops notice.
final class OutageLog: Sendable {
    private let since = Mutex<ContinuousClock.Instant?>(nil)
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func failed(_ error: any Error) {
        let first = since.withLock { s -> Bool in
            if s != nil { return false }
            s = .now
            return true
        }
        if first { logger.warning("redis unavailable; retrying with backoff", metadata: ["error": "\(error)"]) }
    }

    func succeeded() {
        guard
            let began = since.withLock({ s -> ContinuousClock.Instant? in
                defer { s = nil }
                return s
            })
        else { return }
        logger.notice("redis is back", metadata: ["outage": "\(began.duration(to: .now))"])
    }

    var isOngoing: Bool { since.withLock { $0 != nil } }
}

/// Lets a handler made in `init` reach the worker without a retain cycle.
final class WorkerBox: @unchecked Sendable {
    // Set once at the end of Worker.init, read afterwards only.
    weak var worker: Worker?
}
