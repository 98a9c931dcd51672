import Foundation
import Hiredis
import Logging
import Spool

/// What every scenario works with: the configuration, one bench connection,
/// Redis's counters and the way to start worker processes. The scenarios
/// themselves live in BenchEnqueue.swift, BenchDrain.swift and
/// BenchInProcess.swift; each runs on a queue of its own that is deleted
/// afterwards.
struct BenchContext: Sendable {
    let configuration: SpoolConfiguration
    let client: SpoolClient
    let stats: RedisStats
    let parameters: BenchParameters
    let launcher: WorkerLauncher
    /// Redis CPU µs one poll of a counter costs (see `calibratePolling`).
    private(set) var pollCPUMicros = 0.0

    /// The no-op job type `spool worker` has built in.
    static let noop = "spool.noop"

    /// The interval between polls of a queue's completed counter.
    static let pollInterval = Duration.milliseconds(2)

    init(configuration: SpoolConfiguration, parameters: BenchParameters, launcher: WorkerLauncher) {
        self.configuration = configuration
        self.client = SpoolClient(configuration: configuration, label: "spool.bench")
        self.stats = RedisStats(redis: client.redis)
        self.parameters = parameters
        self.launcher = launcher
    }

    /// Measures what polling costs Redis with nothing else going on: 250 polls
    /// of a counter at the polling interval. Scenarios that poll take that
    /// much CPU per poll out of their figures (Redis's idle housekeeping over
    /// the same time goes with it, which belongs to no job either).
    mutating func calibratePolling() async throws {
        let polls = 250
        let key = client.keys("bench-calibration").stats
        let before = try await stats.begin()
        for _ in 0..<polls {
            _ = try await client.redis.command(["HGET", key, "completed"])
            try await Task.sleep(for: Self.pollInterval)
        }
        pollCPUMicros = try await stats.end(since: before).cpuMicros / Double(polls)
    }

    /// A JSON payload of exactly `bytes` bytes, shaped like a real one.
    static func payload(bytes: Int) -> String {
        let head = #"{"user":12345,"template":"welcome","locale":"en-GB","to":"someone@example.com","pad":""#
        let tail = #""}"#
        return head + String(repeating: "x", count: max(0, bytes - head.utf8.count - tail.utf8.count)) + tail
    }

    var payload: String { Self.payload(bytes: parameters.payloadBytes) }

    func jobRequest(_ queue: String, type: String = noop) -> JobRequest {
        JobRequest(queue: queue, type: type, payload: payload)
    }

    func run(_ scenario: BenchScenario) async throws -> BenchSample {
        switch scenario {
        case .enqueueSingle: try await enqueueSingle()
        case .enqueueConcurrent: try await enqueueConcurrent()
        case .enqueueBulk: try await enqueueBulk()
        case .drain1: try await drain(processes: 1)
        case .drain2: try await drain(processes: 2)
        case .drainSweep: try await drainSweep()
        case .steadyState: try await steadyState()
        case .latency: try await latency()
        case .memory: try await memory()
        case .workerRSS: try await workerRSS()
        case .progress: try await progress()
        case .idleFleet: try await idleFleet()
        }
    }

    // MARK: Queues

    /// Runs `body` on a new queue and deletes that queue afterwards, also when
    /// `body` fails.
    func onFreshQueue<T>(_ scenario: BenchScenario, _ body: (String) async throws -> T) async throws -> T {
        let queue = "bench-\(scenario.rawValue)-\(JobID.randomHex(bytes: 4))"
        let result: T
        do {
            result = try await body(queue)
        } catch {
            try? await deleteQueue(queue)
            throw error
        }
        try await deleteQueue(queue)
        return result
    }

    /// Purges every job of the queue, then deletes whatever keys it has left
    /// (counters, pause flag, wake list) and its registry entry.
    func deleteQueue(_ queue: String) async throws {
        for state in JobState.allCases where state != .active { _ = try await client.purge(queue, state: state) }
        let pattern = client.keys(queue).prefix + "*"
        var cursor = "0"
        repeat {
            let reply = try await client.redis.command(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]).array ?? []
            cursor = reply.first?.string ?? "0"
            let keys = (reply.count > 1 ? reply[1].array ?? [] : []).compactMap(\.string)
            if !keys.isEmpty { try await client.redis.command(["DEL"] + keys) }
        } while cursor != "0"
        try await client.redis.command(["SREM", GlobalKeys(prefix: configuration.prefix).queues, queue])
    }

    /// Enqueues `count` jobs in pipelined batches of `--batch`.
    ///
    /// Two batches are in flight on the one connection, as a bulk producer
    /// would keep them: the next is built (ids, arguments, the payload's
    /// check) while Redis runs the one before.
    func enqueueInBatches(_ request: JobRequest, count: Int) async throws {
        let client = client
        try await withThrowingTaskGroup(of: Void.self) { group in
            var left = count
            var inFlight = 0
            while left > 0 {
                if inFlight == 2 {
                    try await group.next()
                    inFlight -= 1
                }
                let n = min(parameters.batch, left)
                left -= n
                group.addTask { _ = try await client.enqueue(Array(repeating: request, count: n)) }
                inFlight += 1
            }
            try await group.waitForAll()
        }
    }

    // MARK: Waiting

    /// Polls the queue's `completed` counter until it reaches `target`, and
    /// returns when it did. Each poll is one round trip of the bench's own,
    /// recorded in `own` so it is not charged to the jobs. Fails when the
    /// counter stops moving for 30 s (or a worker process died).
    func waitForCompleted(
        _ queue: String, _ target: Int, own: inout RedisTraffic, workers: BenchWorkers? = nil
    ) async throws -> ContinuousClock.Instant {
        let key = client.keys(queue).stats
        let start = ContinuousClock.now
        var first: Int?
        var last = -1
        var lastChange = start
        while true {
            let done = Int(try await client.redis.command(["HGET", key, "completed"]).string ?? "") ?? 0
            let now = ContinuousClock.now
            own.record("hget", cpuMicros: pollCPUMicros)
            if done >= target { return now }
            if first == nil { first = done }
            if done != last {
                last = done
                lastChange = now
            } else if lastChange.duration(to: now) > .seconds(30) {
                try workers?.checkRunning()
                throw CLIError(.software, "\(queue): \(done) of \(target) jobs completed, none in the last 30 s")
            }
            let progressed = done - (first ?? done)
            try await Task.sleep(for: Self.pollDelay(elapsed: start.duration(to: now), progressed: progressed, left: target - done))
        }
    }

    /// The wait before the next poll: `pollInterval` (2 ms) once the end is
    /// near, up to 50 ms while it is far off (by the rate so far). Polls then
    /// cost Redis little next to the jobs, yet the end is timed to within
    /// about 2 ms.
    static func pollDelay(elapsed: Duration, progressed: Int, left: Int) -> Duration {
        let seconds = progressed > 0 ? elapsed.inSeconds * Double(left) / Double(progressed) / 4 : elapsed.inSeconds / 10
        return .seconds(min(0.05, max(pollInterval.inSeconds, seconds)))
    }

    /// Runs worker processes on `queue` for the span of `body`, and stops them
    /// afterwards, also when `body` fails.
    func withWorkers<T>(
        _ count: Int, queue: String, concurrency: Int, settle: Duration = .milliseconds(300), _ body: (BenchWorkers) async throws -> T
    ) async throws -> T {
        let workers = try BenchWorkers.start(count, queue: queue, concurrency: concurrency, launcher: launcher)
        let result: T
        do {
            try await workers.waitUntilRegistered(client, settle: settle)
            result = try await body(workers)
        } catch {
            await workers.stop()
            throw error
        }
        await workers.stop()
        return result
    }

    /// Runs an in-process worker for the span of `body` (registered first, so
    /// its start-up is not measured) and stops it afterwards.
    func withInProcessWorker<T>(
        _ queue: String, concurrency: Int, handlers: JobHandlers, _ body: () async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "spool.bench.worker")
        logger.logLevel = .error
        let worker = Worker(
            configuration: configuration, options: WorkerOptions(queues: [queue], concurrency: concurrency), handlers: handlers, logger: logger)
        let running = Task { await worker.run() }
        let result: T
        do {
            try await waitUntilRegistered(worker)
            result = try await body()
        } catch {
            worker.stop()
            await running.value
            throw error
        }
        worker.stop()
        await running.value
        return result
    }

    private func waitUntilRegistered(_ worker: Worker) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while try await !client.workers().contains(where: { $0.id == worker.id }) {
            guard ContinuousClock.now < deadline else { throw CLIError(.software, "the in-process worker did not register within 20 s") }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(200))
    }
}
