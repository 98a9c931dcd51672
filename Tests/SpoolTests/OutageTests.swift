import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

@Suite("Redis outages")
struct OutageTests {
    @Test func idleWorkersResumeAfterRedisRestarts() async throws {
        let server = try await offPool { try TestRedis(appendOnly: true) }
        defer { server.stop() }
        let queue = uniqueQueue("outage")
        let config = testConfiguration(url: server.url)
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        handlers.register("echo") { context in context.payload }
        let before = try await client.enqueue(JobRequest(queue: queue, type: "echo", payload: "1"))
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue], concurrency: 3), handlers: handlers))
        #expect(await eventually { try await client.job(before).state == .completed })

        // The workers are now blocked on the empty queue. Take Redis away and bring it back.
        try await offPool { try server.restart(downFor: 1.0) }
        let after = try await client.enqueue(JobRequest(queue: queue, type: "echo", payload: "2"))
        #expect(await eventually(timeout: 15) { try await client.job(after).state == .completed })
        #expect(try await client.job(after).result == "2")
        // The AOF kept the first job's record across the restart.
        #expect(try await client.job(before).state == .completed)
        await worker.stop()
        #expect(try await InvariantChecker.check(queue: queue, url: server.url).isEmpty)
    }

    @Test func aJobRunningDuringAnOutageIsStoredWhenRedisReturns() async throws {
        let server = try await offPool { try TestRedis(appendOnly: true) }
        defer { server.stop() }
        let queue = uniqueQueue("midjob")
        let config = testConfiguration(url: server.url) { $0.defaults.visibilityTimeout = 10 }
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        handlers.register("slow") { _ in
            try await Task.sleep(for: .milliseconds(800))
            return #""done""#
        }
        let id = try await client.enqueue(JobRequest(queue: queue, type: "slow"))
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue]), handlers: handlers))
        #expect(await eventually { try await client.job(id).state == .active })
        // Down while the handler runs, back before the lease (10 s) runs out:
        // the worker retries the completion until it is stored.
        try await offPool { server.stop() }
        try await Task.sleep(for: .milliseconds(1500))
        try await offPool { try server.start() }
        #expect(await eventually(timeout: 15) { try await client.job(id).state == .completed })
        let job = try await client.job(id)
        #expect(job.attempts == 1 && job.result == #""done""#)
        await worker.stop()
    }
}
