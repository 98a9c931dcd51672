import Hiredis
import Synchronization

/// The producer and reader side of Spool: enqueue jobs, read them, count,
/// list, retry and purge. Each client holds one Redis connection on its own
/// serial queue; make several for parallel producers.
public struct SpoolClient: Sendable {
    public let configuration: SpoolConfiguration
    public let redis: RedisClient
    public let clock: any SpoolClock
    let global: GlobalKeys
    let registered = QueueRegistryCache()

    public init(configuration: SpoolConfiguration, clock: any SpoolClock = SystemClock(), label: String = "spool.client") {
        self.configuration = configuration
        self.clock = clock
        self.redis = RedisClient(url: configuration.redisURL, timeouts: configuration.timeouts, label: label)
        self.global = GlobalKeys(prefix: configuration.prefix)
    }

    public func keys(_ queue: String) -> QueueKeys { QueueKeys(prefix: configuration.prefix, queue: queue) }

    // MARK: Enqueue

    /// Enqueues one job and returns its id.
    @discardableResult
    public func enqueue(_ request: JobRequest) async throws(SpoolError) -> String {
        try await enqueue([request])[0]
    }

    /// Enqueues many jobs in one round trip and returns their ids in order.
    /// Each run of up to `enqueueBatch` consecutive jobs of one queue is one
    /// enqueue.lua call; a job that fails (duplicate id) does not stop the
    /// others, and the first failure is thrown after all were sent.
    public func enqueue(_ requests: [JobRequest]) async throws(SpoolError) -> [String] {
        for request in requests { try request.validate(payloadLimit: configuration.payloadLimit) }
        return try await enqueue(validated: requests)
    }

    /// `enqueue(_:)` for requests the caller has checked with
    /// `JobRequest.validate` already (the HTTP batch does, to name the job
    /// that fails), so the payloads' JSON is not checked twice.
    package func enqueue(validated requests: [JobRequest]) async throws(SpoolError) -> [String] {
        if requests.isEmpty { return [] }
        let now = clock.nowMillis()
        var ids = requests.map { JobID.make(queue: $0.queue, nowMillis: now) }
        var batches: [Range<Int>] = []
        var start = 0
        while start < requests.count {
            var end = start + 1
            while end < requests.count, end - start < Self.enqueueBatch, requests[end].queue == requests[start].queue { end += 1 }
            batches.append(start..<end)
            start = end
        }
        // The queue registry (for `spool status` and the status reader) is
        // refreshed at most every 10 s per queue, not with every job.
        let unregistered = registered.due(Set(requests.map(\.queue)))
        var redisCalls = unregistered.isEmpty ? [] : [RedisCall.command(["SADD", global.queues] + unregistered)]
        for batch in batches {
            var args = [String(now)]
            for i in batch { appendEnqueueArgs(requests[i], id: ids[i], to: &args) }
            redisCalls.append(.script(Scripts.enqueue, keys: [keys(requests[batch.lowerBound].queue).prefix], args: args))
        }
        let replies: [RedisValue]
        do {
            // Shared with other tasks enqueueing on this client at the same moment.
            replies = Array(try await redis.send(redisCalls).dropFirst(unregistered.isEmpty ? 0 : 1))
        } catch {
            registered.forget(unregistered)
            throw SpoolError.from(error, "enqueue", queue: requests[0].queue)
        }
        var firstError: SpoolError?
        for (batch, reply) in zip(batches, replies) {
            let queue = requests[batch.lowerBound].queue
            // A whole call that failed (an error reply, bad framing) answers for each of its jobs.
            let items = reply.array.flatMap { $0.count == batch.count ? $0 : nil } ?? Array(repeating: reply, count: batch.count)
            for (i, item) in zip(batch, items) {
                switch item {
                case .string(let stored): ids[i] = stored  // an idempotency key may name an earlier job
                case .integer(let code): firstError = firstError ?? SpoolError.script(code: code, "enqueue", queue: queue, job: ids[i])
                case .error(let message): firstError = firstError ?? SpoolError(.redis, "enqueue", queue: queue, job: ids[i], message)
                default: firstError = firstError ?? SpoolError(.redis, "enqueue", queue: queue, job: ids[i], "unexpected reply \(item)")
                }
            }
        }
        if let firstError { throw firstError }
        return ids
    }

    /// The most jobs one enqueue.lua call takes: about 2.5 ms of Redis time,
    /// so a large batch does not hold up other clients for long.
    public static let enqueueBatch = 200

    /// Appends `request`'s part of enqueue.lua's ARGV, as job `id`; public for the micro-benchmarks.
    public func appendEnqueueArgs(_ request: JobRequest, id: String, to args: inout [String]) {
        let policy = configuration.policy(for: request.queue)
        args += [id, request.type, request.payload, String(request.runAt ?? 0), String(request.maxAttempts ?? policy.maxAttempts)]
        let countAt = args.count
        args.append("0")
        if let timeout = request.timeout { args += ["timeout_ms", String(Int(timeout * 1000))] }
        if let base = request.backoffBase { args += ["backoff_base_ms", String(Int(base * 1000))] }
        if let cap = request.backoffCap { args += ["backoff_cap_ms", String(Int(cap * 1000))] }
        if request.priority != 0 { args += ["priority", String(request.priority)] }
        if let key = request.idempotencyKey { args += ["key", key, "key_ttl_ms", String(Int(policy.uniqueWindow * 1000))] }
        if let callback = request.callback { args += ["callback", callback] }
        if args.count > countAt + 1 { args[countAt] = String(args.count - countAt - 1) }
    }

    // MARK: Read

    /// The job with this id (its queue is part of the id).
    public func job(_ id: String) async throws(SpoolError) -> Job {
        guard let queue = JobID.queue(of: id) else {
            throw SpoolError(.invalidInput, "status", job: id, "not a job id (expected QUEUE.SUFFIX)")
        }
        let key = keys(queue).job(id)
        let reply: RedisValue
        do { reply = try await redis.command(["HGETALL", key]) } catch { throw SpoolError.from(error, "status", queue: queue, job: id) }
        guard let job = Job(id: id, queue: queue, fields: Self.fields(reply)) else {
            throw SpoolError(.jobNotFound, "status", queue: queue, job: id, "no such job")
        }
        return job
    }

    /// Every queue that has been enqueued to, sorted.
    public func queues() async throws(SpoolError) -> [String] {
        do {
            let reply = try await redis.command(["SMEMBERS", global.queues])
            return (reply.array ?? []).compactMap(\.string).sorted()
        } catch { throw SpoolError.from(error, "queues") }
    }

    /// Jobs per state of one queue, read in one round trip.
    public func counts(_ queue: String) async throws(SpoolError) -> QueueCounts {
        try await counts([queue])[0]
    }

    public func counts(_ queues: [String]) async throws(SpoolError) -> [QueueCounts] {
        var commands: [[String]] = []
        var owners: [(queue: Int, state: JobState?)] = []
        for (q, queue) in queues.enumerated() {
            let k = keys(queue)
            for state in JobState.allCases {
                for place in k.places(of: state) {
                    commands.append([place.isList ? "LLEN" : "ZCARD", place.key])
                    owners.append((q, state))
                }
            }
            commands.append(["EXISTS", k.paused])
            owners.append((q, nil))
        }
        let replies: [RedisValue]
        do { replies = try await redis.pipeline(commands) } catch { throw SpoolError.from(error, "counts") }
        var result = queues.map { QueueCounts(queue: $0) }
        for (owner, reply) in zip(owners, replies) {
            if let state = owner.state {
                result[owner.queue][state] += reply.int ?? 0
            } else {
                result[owner.queue].paused = reply.int == 1
            }
        }
        return result
    }

    /// Up to `limit` jobs of a queue in one state: oldest first for waiting,
    /// soonest lease deadline first for active, soonest run first for delayed
    /// and failed, newest first for finished ones.
    public func jobs(_ queue: String, state: JobState, limit: Int = 100) async throws(SpoolError) -> [Job] {
        guard Names.isValid(queue) else { throw SpoolError(.invalidInput, "jobs", queue: queue, "queue name \(Names.rule)") }
        let k = keys(queue)
        let n = max(1, limit)
        // Each place in the order its jobs run (or, for finished ones, newest first).
        let listCommands: [(command: [String], isList: Bool)] = k.places(of: state).map { place in
            switch state {
            case .waiting, .active, .delayed, .failed:
                place.isList ? (["LRANGE", place.key, String(-n), "-1"], true) : (["ZRANGE", place.key, "0", String(n - 1)], false)
            case .completed, .dead, .cancelled: (["ZREVRANGE", place.key, "0", String(n - 1)], false)
            }
        }
        do {
            return try await redis.withConnection { conn in
                var ids: [String] = []
                for (command, isList) in listCommands {
                    let found = (try conn.command(command).array ?? []).compactMap(\.string)
                    ids += isList ? found.reversed() : found
                }
                // Waiting jobs of priority > 0 run before the list, those < 0 after it.
                if state == .waiting, !ids.isEmpty {
                    let priorities = try conn.pipeline(ids.map { ["HGET", k.job($0), "priority"] }).map { $0.int ?? 0 }
                    ids = zip(ids, priorities).enumerated().sorted { a, b in
                        a.element.1 != b.element.1 ? a.element.1 > b.element.1 : a.offset < b.offset
                    }.map(\.element.0)
                }
                ids = Array(ids.prefix(n))
                let replies = try conn.pipeline(ids.map { ["HGETALL", k.job($0)] })
                return zip(ids, replies).compactMap { Job(id: $0, queue: queue, fields: Self.fields($1)) }
            }
        } catch { throw SpoolError.from(error, "jobs", queue: queue) }
    }

    // MARK: Manage

    /// Sends one dead job back to waiting with fresh attempts.
    public func retry(_ id: String) async throws(SpoolError) {
        guard let queue = JobID.queue(of: id) else { throw SpoolError(.invalidInput, "retry", job: id, "not a job id (expected QUEUE.SUFFIX)") }
        let code = try await evalInt(Scripts.retry, queue: queue, args: [String(clock.nowMillis()), id, "1"], operation: "retry", job: id)
        if code < 0 { throw SpoolError.script(code: code, "retry", queue: queue, job: id) }
    }

    /// Sends every dead job of a queue back to waiting; returns how many.
    public func retryAllDead(_ queue: String) async throws(SpoolError) -> Int {
        var total = 0
        while true {
            let n = try await evalInt(Scripts.retry, queue: queue, args: [String(clock.nowMillis()), "*", "500"], operation: "retry")
            total += max(0, n)
            if n < 500 { return total }
        }
    }

    /// What `cancel` did.
    public enum Cancellation: Sendable, Equatable {
        /// The job had not started: it is cancelled now.
        case cancelled
        /// The job is running: its worker was asked to stop it, and it ends
        /// cancelled once the handler has stopped (within about a second).
        case requested
    }

    /// Cancels a job: at once when it has not started, through its worker when
    /// it is running. A cancelled job is never retried.
    @discardableResult
    public func cancel(_ id: String, reason: String = "") async throws(SpoolError) -> Cancellation {
        guard let queue = JobID.queue(of: id) else { throw SpoolError(.invalidInput, "cancel", job: id, "not a job id (expected QUEUE.SUFFIX)") }
        let code = try await evalInt(Scripts.cancel, queue: queue, args: [id, String(clock.nowMillis()), reason, ""], operation: "cancel", job: id)
        switch code {
        case 1: return .cancelled
        case 2: return .requested
        case -6: throw SpoolError(.wrongState, "cancel", queue: queue, job: id, "the job has already finished")
        default: throw SpoolError.script(code: code, "cancel", queue: queue, job: id)
        }
    }

    /// Pauses a queue: workers stop claiming from it (running jobs go on) and
    /// jobs keep accumulating. Returns false when it was already paused.
    @discardableResult
    public func pause(_ queue: String) async throws(SpoolError) -> Bool {
        try await evalInt(Scripts.pause, queue: queue, args: ["1", String(clock.nowMillis())], operation: "pause") == 1
    }

    /// Resumes a paused queue; idle workers are woken at once. Returns false when it was not paused.
    @discardableResult
    public func resume(_ queue: String) async throws(SpoolError) -> Bool {
        try await evalInt(Scripts.pause, queue: queue, args: ["0", String(clock.nowMillis())], operation: "resume") == 1
    }

    /// Deletes every job of a queue in `state` (not active); returns how many.
    public func purge(_ queue: String, state: JobState) async throws(SpoolError) -> Int {
        guard state != .active else {
            throw SpoolError(.invalidInput, "purge", queue: queue, "active jobs are held by workers and cannot be purged")
        }
        var total = 0
        while true {
            let n = try await evalInt(Scripts.purge, queue: queue, args: [state.rawValue, "1000"], operation: "purge")
            if n < 0 { throw SpoolError.script(code: n, "purge", queue: queue, job: nil) }
            total += n
            if n < 1000 { return total }
        }
    }

    // MARK: Housekeeping (the worker runs these; tests and tools may too)

    // Each sweep is also a call and a reply reader, so that the worker can
    // send its sweeps (and its registry entry) in one write.

    /// Redelivers expired and unleased active jobs. `guardMs` 0 sweeps now.
    @discardableResult
    public func reap(_ queue: String, guardMs: Int = 0, limit: Int = 1000) async throws(SpoolError) -> (stalled: Int, orphans: Int, dead: Int) {
        try reapResult(try await sendOne(reapCall(queue, guardMs: guardMs, limit: limit), queue: queue, operation: "reap"), queue: queue)
    }

    func reapCall(_ queue: String, guardMs: Int, limit: Int = 1000) -> RedisCall {
        .script(Scripts.reap, keys: [keys(queue).prefix], args: [String(clock.nowMillis()), String(guardMs), String(limit)])
    }

    /// reap.lua's reply: counts, all 0 when another sweep ran within the interval.
    func reapResult(_ reply: RedisValue, queue: String) throws(SpoolError) -> (stalled: Int, orphans: Int, dead: Int) {
        let a = try Self.integers(reply, count: 3, "reap", queue: queue)
        return (max(0, a[0]), a[1], a[2])
    }

    /// Moves due delayed and retry jobs to waiting; returns how many, and the next due time (ms, -1 none).
    @discardableResult
    public func promote(_ queue: String, guardMs: Int = 0, limit: Int = 1000) async throws(SpoolError) -> (promoted: Int, nextDue: Int) {
        try promoteResult(try await sendOne(promoteCall(queue, guardMs: guardMs, limit: limit), queue: queue, operation: "promote"), queue: queue)
    }

    func promoteCall(_ queue: String, guardMs: Int, limit: Int = 1000) -> RedisCall {
        .script(Scripts.promote, keys: [keys(queue).prefix], args: [String(clock.nowMillis()), String(guardMs), String(limit)])
    }

    func promoteResult(_ reply: RedisValue, queue: String) throws(SpoolError) -> (promoted: Int, nextDue: Int) {
        let a = try Self.integers(reply, count: 2, "promote", queue: queue)
        return (max(0, a[0]), a[1])
    }

    /// Deletes finished jobs past the queue's retention; returns how many.
    @discardableResult
    public func trim(_ queue: String, guardMs: Int = 0, limit: Int = 1000) async throws(SpoolError) -> Int {
        let first = try await sendOne(trimCall(queue, guardMs: guardMs, limit: limit), queue: queue, operation: "trim")
        return try await trimRest(queue, after: first, limit: limit)
    }

    func trimCall(_ queue: String, guardMs: Int, limit: Int = 1000) -> RedisCall {
        let policy = configuration.policy(for: queue)
        func age(_ s: Double) -> String { s < 0 ? "-1" : String(Int(s * 1000)) }
        let args = [
            String(clock.nowMillis()), String(guardMs), String(limit),
            String(policy.keepCompleted), age(policy.keepCompletedSeconds),
            String(policy.keepDead), age(policy.keepDeadSeconds),
            String(policy.keepDead), age(policy.keepDeadSeconds),
        ]
        return .script(Scripts.trim, keys: [keys(queue).prefix], args: args)
    }

    /// Reads trim.lua's reply to a first call and, while a call deleted a full
    /// `limit`, trims on (unguarded: this sweep holds the guard). Returns the total.
    func trimRest(_ queue: String, after first: RedisValue, limit: Int = 1000) async throws(SpoolError) -> Int {
        var n = try Self.integer(first, "trim", queue: queue)
        var total = 0
        while n >= 0 {
            total += n
            if n < limit { break }
            n = try Self.integer(try await sendOne(trimCall(queue, guardMs: 0, limit: limit), queue: queue, operation: "trim"), "trim", queue: queue)
        }
        return total
    }

    // MARK: Helpers

    /// `call` alone, through the client's shared write; an error reply is thrown.
    func sendOne(_ call: RedisCall, queue: String, operation: String, job: String? = nil) async throws(SpoolError) -> RedisValue {
        guard Names.isValid(queue) else { throw SpoolError(.invalidInput, operation, queue: queue, "queue name \(Names.rule)") }
        let reply: RedisValue
        do { reply = try await redis.send([call])[0] } catch { throw SpoolError.from(error, operation, queue: queue, job: job) }
        return try Self.checked(reply, operation, queue: queue, job: job)
    }

    /// A reply taken from a batch, with an error reply thrown as what it names.
    static func checked(_ reply: RedisValue, _ operation: String, queue: String, job: String? = nil) throws(SpoolError) -> RedisValue {
        do { return try reply.checked() } catch { throw SpoolError.from(error, operation, queue: queue, job: job) }
    }

    /// A script's integer reply.
    static func integer(_ reply: RedisValue, _ operation: String, queue: String, job: String? = nil) throws(SpoolError) -> Int {
        guard let n = try checked(reply, operation, queue: queue, job: job).int else {
            throw SpoolError(.redis, operation, queue: queue, job: job, "unexpected reply \(reply)")
        }
        return n
    }

    /// A script's reply of `count` integers.
    static func integers(_ reply: RedisValue, count: Int, _ operation: String, queue: String) throws(SpoolError) -> [Int] {
        let a = (try checked(reply, operation, queue: queue).array ?? []).map { $0.int ?? 0 }
        guard a.count == count else { throw SpoolError(.redis, operation, queue: queue, "unexpected reply \(reply)") }
        return a
    }

    func eval(_ script: RedisScript, queue: String, args: [String], operation: String, job: String? = nil) async throws(SpoolError) -> RedisValue {
        try await sendOne(.script(script, keys: [keys(queue).prefix], args: args), queue: queue, operation: operation, job: job)
    }

    func evalInt(_ script: RedisScript, queue: String, args: [String], operation: String, job: String? = nil) async throws(SpoolError) -> Int {
        try Self.integer(try await eval(script, queue: queue, args: args, operation: operation, job: job), operation, queue: queue, job: job)
    }

    static func fields(_ reply: RedisValue) -> [String: String] {
        guard let items = reply.array else { return [:] }
        var fields: [String: String] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].string, let v = items[i + 1].string { fields[k] = v }
            i += 2
        }
        return fields
    }
}

/// Which queues this client added to the queue registry recently.
final class QueueRegistryCache: Sendable {
    private let added = Mutex<[String: ContinuousClock.Instant]>([:])
    private let refresh = Duration.seconds(10)

    /// The queues among `queues` to add now; they count as added from now on.
    func due(_ queues: Set<String>) -> [String] {
        let now = ContinuousClock.now
        return added.withLock { added in
            queues.filter { queue in
                if let at = added[queue], at.duration(to: now) < refresh { return false }
                added[queue] = now
                return true
            }.sorted()
        }
    }

    /// The add failed: try again with the next enqueue.
    func forget(_ queues: [String]) {
        added.withLock { added in for queue in queues { added[queue] = nil } }
    }
}
