import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

/// Work that Redis does once per batch instead of once per job: a worker's
/// slots that finish while a batch is in flight share the next one (one
/// complete.lua call and one counted claim.lua call per queue), and a bulk
/// enqueue checks its ids in one call. Counted on private servers.
@Suite("Batched script calls")
struct CompletionBatchTests {

    @Test func aBusyWorkerCompletesAndClaimsInBatchesAndRunsEachJobOnce() async throws {
        // A private server: its command counts are this test's alone.
        let server = try await offPool { try TestRedis(appendOnly: false) }
        defer { server.stop() }
        let conn = try server.connect()
        let queue = uniqueQueue("batch")
        let config = testConfiguration(url: server.url)
        let client = SpoolClient(configuration: config)
        let jobs = 400
        try await client.pause(queue)
        let ids = try await client.enqueue((0..<jobs).map { n in JobRequest(queue: queue, type: "echo", payload: "{\"n\":\(n)}") })
        var handlers = JobHandlers()
        handlers.register("echo") { job in job.payload }
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue], concurrency: 8), handlers: handlers))
        let keys = QueueKeys(prefix: config.prefix, queue: queue)
        let before = (zrem: try server.calls("zrem"), rpop: try server.calls("rpop"))
        try await client.resume(queue)
        #expect(await eventually(timeout: 60) { try await client.counts(queue).completed == jobs })
        let after = (zrem: try server.calls("zrem"), rpop: try server.calls("rpop"))
        await worker.stop()

        // Each job ran once, with its own payload as its result.
        #expect(worker.worker.processedCount == jobs)
        for (n, id) in ids.enumerated() {
            let fields = try conn.command(["HMGET", keys.job(id), "state", "attempts", "result"])
            #expect(fields == .array([.string("completed"), .string("1"), .string("{\"n\":\(n)}")]), "\(id)")
        }
        #expect(try conn.command(["ZCARD", keys.leases]).int == 0)
        // One ZREM of the leases per complete.lua call and one RPOP per claim
        // call: fewer calls than jobs means slots shared them.
        let completeCalls = after.zrem - before.zrem
        let claimCalls = after.rpop - before.rpop
        #expect(completeCalls > 0 && completeCalls < jobs * 3 / 4, "\(completeCalls) complete calls for \(jobs) jobs")
        #expect(claimCalls > 0 && claimCalls < jobs * 3 / 4, "\(claimCalls) claim calls for \(jobs) jobs")
        #expect(try await InvariantChecker.check(queue: queue, url: server.url).isEmpty)
    }

    /// A batch of new ids asks whether any is taken, and whether anybody
    /// follows a job of the queue (watch.lua), in one EXISTS, not one per job.
    /// With nobody following, the batch's events go out in one PUBLISH on the
    /// queue's channel.
    @Test func aBulkEnqueueChecksItsIdsInOneCall() async throws {
        let server = try await offPool { try TestRedis(appendOnly: false) }
        defer { server.stop() }
        let queue = uniqueQueue("bulk")
        let client = SpoolClient(configuration: testConfiguration(url: server.url))
        let before = (exists: try server.calls("exists"), publish: try server.calls("publish"), zscore: try server.calls("zscore"))
        let ids = try await client.enqueue((0..<150).map { _ in JobRequest(queue: queue, type: "t") })
        #expect(Set(ids).count == 150)
        #expect(try server.calls("exists") - before.exists == 1, "one EXISTS for the ids and the watched set")
        #expect(try server.calls("publish") - before.publish == 1, "the queue's channel only, in one message")
        #expect(try server.calls("zscore") - before.zscore == 0)
        #expect(try await client.counts(queue).waiting == 150)
    }
}
