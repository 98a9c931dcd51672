import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Synchronization
import Testing

/// Counts how often each job id ran.
final class Executions: Sendable {
    private let runs = Mutex<[String: Int]>([:])
    func record(_ id: String) { runs.withLock { $0[id, default: 0] += 1 } }
    var all: [String: Int] { runs.withLock { $0 } }
}

@Suite("Core queue: enqueue, claim, complete, retry, retention")
struct QueueTests {
    let url: RedisURL
    init() throws { url = try SharedRedis.url }

    func expectConsistent(_ queue: String) async throws {
        let problems = try await InvariantChecker.check(queue: queue, url: url)
        #expect(problems.isEmpty, "invariant 4: \(problems.prefix(5))")
    }

    @Test func roundTripStoresTheResult() async throws {
        let queue = uniqueQueue("round")
        let config = testConfiguration(url: url)
        let client = SpoolClient(configuration: config)
        struct In: Codable, Sendable { var n: Int }
        struct Out: Codable, Sendable { var doubled: Int }
        var handlers = JobHandlers()
        handlers.register("double", payload: In.self) { input, _ in Out(doubled: input.n * 2) }
        let id = try await client.enqueue(JobRequest(queue: queue, type: "double", payload: #"{"n":21}"#))
        #expect(JobID.queue(of: id) == queue)
        #expect(try await client.job(id).state == .waiting)

        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue]), handlers: handlers))
        #expect(await eventually { try await client.job(id).state == .completed })
        await worker.stop()
        let job = try await client.job(id)
        #expect(job.result == #"{"doubled":42}"#)
        #expect(job.attempts == 1)
        #expect(job.worker == worker.worker.id)
        #expect(job.startedAt != nil && job.finishedAt != nil)
        try await expectConsistent(queue)
    }

    @Test func bulkEnqueueOfTenThousandCompletesEachExactlyOnce() async throws {
        let queue = uniqueQueue("bulk")
        let config = testConfiguration(url: url) {
            $0.queues[queue] = {
                var p = $0.defaults; p.keepCompleted = -1; return p
            }($0)
        }
        let client = SpoolClient(configuration: config)
        let ran = Executions()
        var handlers = JobHandlers()
        handlers.register("noop") { context in
            ran.record(context.id)
            return nil
        }
        let requests = (0..<10_000).map { JobRequest(queue: queue, type: "noop", payload: #"{"i":\#($0)}"#) }
        let ids = try await client.enqueue(requests)
        #expect(Set(ids).count == 10_000)
        #expect(try await client.counts(queue).waiting == 10_000)

        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue], concurrency: 4), handlers: handlers))
        #expect(await eventually(timeout: 120) { try await client.counts(queue).completed == 10_000 })
        await worker.stop()
        let runs = ran.all
        #expect(runs.count == 10_000)
        #expect(runs.values.allSatisfy { $0 == 1 }, "some jobs ran twice")
        #expect(Set(runs.keys) == Set(ids))
        try await expectConsistent(queue)
    }

    @Test func aMixedBatchIsSplitIntoScriptCallsAndAnswersInOrder() async throws {
        let (first, second) = (uniqueQueue("mixed-a"), uniqueQueue("mixed-b"))
        let client = SpoolClient(configuration: testConfiguration(url: url))
        // Runs longer than one script call takes, a queue change, and a key used twice.
        let queues = Array(repeating: first, count: SpoolClient.enqueueBatch + 50) + [second, second, first]
        var requests = queues.enumerated().map { JobRequest(queue: $1, type: "t", payload: #"{"i":\#($0)}"#) }
        requests[3].idempotencyKey = "same"
        requests[SpoolClient.enqueueBatch + 10].idempotencyKey = "same"
        let ids = try await client.enqueue(requests)
        #expect(ids.count == requests.count)
        #expect(zip(ids, queues).allSatisfy { JobID.queue(of: $0) == $1 })
        #expect(ids[SpoolClient.enqueueBatch + 10] == ids[3], "the key, across script calls, names the first job")
        #expect(Set(ids).count == requests.count - 1)
        for (i, id) in ids.enumerated() where i != SpoolClient.enqueueBatch + 10 {
            #expect(try await client.job(id).payload == requests[i].payload)
        }
        // Each queue's waiting list holds its ids oldest first at the tail.
        let conn = try RedisConnection(url: url)
        for queue in [first, second] {
            let listed = try conn.command(["LRANGE", client.keys(queue).waiting, "0", "-1"]).array?.compactMap(\.string).reversed()
            let expected = zip(ids, queues).enumerated().filter { $0.element.1 == queue && $0.offset != SpoolClient.enqueueBatch + 10 }.map(\.element.0)
            #expect(listed.map(Array.init) == expected)
        }
        try await expectConsistent(first)
        try await expectConsistent(second)
    }

    @Test func unknownJobTypeGoesDeadWithAClearError() async throws {
        let queue = uniqueQueue("unknown")
        let config = testConfiguration(url: url)
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        handlers.register("known") { _ in nil }
        let id = try await client.enqueue(JobRequest(queue: queue, type: "mystery", maxAttempts: 5))
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue]), handlers: handlers))
        #expect(await eventually { try await client.job(id).state == .dead })
        await worker.stop()
        let job = try await client.job(id)
        #expect(job.attempts == 1, "not retryable: dead at once")
        #expect(job.errors.first?.error.contains("no handler for job type \"mystery\"") == true)
        try await expectConsistent(queue)
    }

    @Test func failingJobIsRetriedThenDeadWithEveryErrorThenRetriedByHand() async throws {
        let queue = uniqueQueue("retry")
        let config = testConfiguration(url: url)
        let client = SpoolClient(configuration: config)
        let healthy = Atomic<Bool>(false)
        var handlers = JobHandlers()
        handlers.register("flaky") { context in
            if healthy.load(ordering: .relaxed) { return #""fixed""# }
            throw JobFailure("boom on attempt \(context.attempt)")
        }
        let id = try await client.enqueue(JobRequest(queue: queue, type: "flaky", maxAttempts: 3))
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue]), handlers: handlers))
        #expect(await eventually { try await client.job(id).state == .dead })
        var job = try await client.job(id)
        #expect(job.attempts == 3)
        #expect(job.errors.map(\.attempt) == [1, 2, 3])
        #expect(job.errors.map(\.error) == ["boom on attempt 1", "boom on attempt 2", "boom on attempt 3"])
        // Retries waited: each gap is at least half the (growing, capped) backoff.
        let gaps = zip(job.errors.dropFirst(), job.errors).map { $0.at - $1.at }
        #expect(gaps.count == 2 && gaps[0] >= 25 && gaps[1] >= 50, "gaps \(gaps)")

        healthy.store(true, ordering: .relaxed)
        try await client.retry(id)
        #expect(await eventually { try await client.job(id).state == .completed })
        await worker.stop()
        job = try await client.job(id)
        #expect(job.result == #""fixed""#)
        #expect(job.errors.count == 3, "history is kept")
        try await expectConsistent(queue)
    }

    @Test func retryAllDeadRevivesEveryDeadJob() async throws {
        let queue = uniqueQueue("revive")
        let config = testConfiguration(url: url)
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        handlers.register("bad") { _ in throw JobFailure.permanent("never works") }
        let ids = try await client.enqueue((0..<7).map { _ in JobRequest(queue: queue, type: "bad") })
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue], concurrency: 2), handlers: handlers))
        #expect(await eventually { try await client.counts(queue).dead == 7 })
        await worker.stop()
        #expect(try await client.retryAllDead(queue) == 7)
        let counts = try await client.counts(queue)
        #expect(counts.waiting == 7 && counts.dead == 0)
        for id in ids { #expect(try await client.job(id).attempts == 0) }
        // Retrying a job that is not dead is refused.
        await #expect(throws: SpoolError.self) { try await client.retry(ids[0]) }
        try await expectConsistent(queue)
    }

    @Test func heartbeatKeepsALongJobsLease() async throws {
        let queue = uniqueQueue("long")
        let config = testConfiguration(url: url) { $0.defaults.visibilityTimeout = 2 }
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        handlers.register("slow") { context in
            try await Task.sleep(for: .milliseconds(5000))
            return context.leaseLost ? #""lost""# : #""kept""#
        }
        let id = try await client.enqueue(JobRequest(queue: queue, type: "slow"))
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue]), handlers: handlers))
        #expect(await eventually { try await client.job(id).state == .completed })
        await worker.stop()
        let job = try await client.job(id)
        #expect(job.attempts == 1, "the lease was renewed, so it was never redelivered")
        #expect(job.result == #""kept""#)
        #expect(job.errors.isEmpty)
    }

    @Test func retentionBoundsFinishedJobsByCountAndAge() async throws {
        let queue = uniqueQueue("keep")
        let config = testConfiguration(url: url) {
            var p = $0.defaults
            p.keepCompleted = 20
            p.keepCompletedSeconds = -1
            $0.queues[queue] = p
        }
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        handlers.register("noop") { _ in nil }
        let ids = try await client.enqueue((0..<300).map { _ in JobRequest(queue: queue, type: "noop") })
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue], concurrency: 3), handlers: handlers))
        #expect(
            await eventually {
                let counts = try await client.counts(queue)
                return counts.waiting == 0 && counts.active == 0
            })
        await worker.stop()
        #expect(try await client.counts(queue).completed == 20)
        let conn = try RedisConnection(url: url)
        let keys = QueueKeys(prefix: "spool", queue: queue)
        var live = 0
        for id in ids where try conn.command(["EXISTS", keys.job(id)]) == .integer(1) { live += 1 }
        #expect(live == 20, "records of trimmed jobs are deleted")
        try await expectConsistent(queue)

        // By age: with a 0.2 s age limit everything finished goes at the next trim.
        let byAge = testConfiguration(url: url) {
            var p = $0.defaults
            p.keepCompleted = -1
            p.keepCompletedSeconds = 0.2
            $0.queues[queue] = p
        }
        let ageClient = SpoolClient(configuration: byAge)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await ageClient.trim(queue) == 20)
        #expect(try await ageClient.counts(queue).completed == 0)
        try await expectConsistent(queue)
    }

    @Test func badInputIsRejectedWithAPreciseMessageAndNothingStored() async throws {
        let queue = uniqueQueue("bad")
        let config = testConfiguration(url: url) { $0.payloadLimit = 1000 }
        let client = SpoolClient(configuration: config)
        func rejection(_ request: JobRequest) async -> SpoolError? {
            do {
                try await client.enqueue(request)
                return nil
            } catch { return error }
        }
        let badJSON = await rejection(JobRequest(queue: queue, type: "t", payload: "{nope"))
        #expect(badJSON?.code == .invalidPayload)
        #expect(badJSON?.message.hasPrefix("payload is not valid JSON") == true)
        let big = await rejection(JobRequest(queue: queue, type: "t", payload: "\"" + String(repeating: "x", count: 2000) + "\""))
        #expect(big?.message == "payload is 2002 bytes, over the limit of 1000 (payload_limit)")
        let badQueue = await rejection(JobRequest(queue: "no spaces", type: "t"))
        #expect(badQueue?.message.contains("queue name \"no spaces\"") == true)
        let badType = await rejection(JobRequest(queue: queue, type: String(repeating: "t", count: 65)))
        #expect(badType?.message.contains("job type") == true)
        #expect(try await client.counts(queue) == QueueCounts(queue: queue))

        let unknown = "\(queue).0123456789abcdef"
        await #expect(throws: SpoolError.self) { try await client.job(unknown) }
        do { _ = try await client.job(unknown) } catch { #expect(error.code == .jobNotFound) }
        do { _ = try await client.job("not-an-id") } catch { #expect(error.code == .invalidInput) }
    }

    @Test func redisDownIsUnavailable() async throws {
        var config = testConfiguration(url: url)
        config.redisURL = RedisURL(address: .tcp(host: "127.0.0.1", port: TestRedis.closedPort))
        let client = SpoolClient(configuration: config)
        do {
            try await client.enqueue(JobRequest(queue: "q", type: "t"))
            Issue.record("enqueue to a closed port succeeded")
        } catch {
            #expect(error.code == .unavailable)
        }
    }
}
