import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Synchronization
import Testing

/// How idle workers wait: one blocked connection per process, and no polling
/// (a lost wake token is re-armed by the reaper).
@Suite("Idle workers: one waiter per process, tokens re-armed by the reaper")
struct IdleWaitTests {

    /// Clients blocked in BLPOP on `server` (a private server: no other test's
    /// workers are counted).
    func blockedClients(_ server: TestRedis) throws -> Int {
        let info = try server.connect().command(["INFO", "clients"]).string ?? ""
        let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("blocked_clients:") }
        return Int(line?.split(separator: ":").last ?? "") ?? -1
    }

    @Test func idleSlotsOfOneProcessShareOneBlockedConnectionAndStillRunTogether() async throws {
        let server = try await offPool { try TestRedis(appendOnly: false) }
        defer { server.stop() }
        let queue = uniqueQueue("idle")
        let config = testConfiguration(url: server.url)
        let client = SpoolClient(configuration: config)
        let running = Mutex((now: 0, most: 0))
        var handlers = JobHandlers()
        handlers.register("hold") { _ in
            running.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
            try await Task.sleep(for: .milliseconds(2500))  // long enough for the hand-offs on a loaded machine
            running.withLock { $0.now -= 1 }
            return nil
        }
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue], concurrency: 8), handlers: handlers))

        // Idle: one slot blocks, seven wait in memory (before: eight BLPOPs).
        #expect(await eventually { try blockedClients(server) == 1 })
        // Over two block timeouts, never more than one. Sampled, not read once:
        // between two waits the one slot is briefly not blocked at all.
        var most = 0
        for _ in 0..<24 {
            most = max(most, try blockedClients(server))
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(most == 1)

        // A burst still spreads over all eight slots.
        let ids = try await client.enqueue((0..<8).map { _ in JobRequest(queue: queue, type: "hold", payload: "{}") })
        #expect(await eventually(timeout: 15) {
            var done = true
            for id in ids where try await client.job(id).state != .completed { done = false }
            return done
        })
        #expect(running.withLock { $0.most } == 8, "the parked slots must wake and take jobs")
        #expect(await eventually { try blockedClients(server) == 1 })
        await worker.stop()
        #expect(await eventually { try blockedClients(server) == 0 })
        #expect(try await InvariantChecker.check(queue: queue, url: server.url).isEmpty)
    }

    @Test func aJobWhoseWakeTokenWasLostStartsWithinAReaperInterval() async throws {
        let url = try SharedRedis.url
        let queue = uniqueQueue("lost")
        // Block far longer than the reaper's interval: only the reaper can
        // find the job in time, because idle workers do not poll.
        let config = testConfiguration(url: url) {
            $0.timeouts = RedisTimeouts(connect: 1, command: 10)
            $0.blockSeconds = 8
            $0.reapInterval = 0.1
        }
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        handlers.register("t") { _ in "1" }
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue]), handlers: handlers))
        let keys = QueueKeys(prefix: config.prefix, queue: queue)
        let conn = try RedisConnection(url: url)
        try await Task.sleep(for: .milliseconds(500))  // its first claim found nothing; it blocks now

        // A job that is ready with no token, as when a worker took the token
        // and was killed before its claim.
        let id = JobID.make(queue: queue, nowMillis: Int(Date().timeIntervalSince1970 * 1000))
        let now = String(Int(Date().timeIntervalSince1970 * 1000))
        _ = try conn.pipeline([
            ["HSET", keys.job(id), "type", "t", "payload", "{}", "created_at", now, "max_attempts", "3", "seq", "1", "state", "waiting"],
            ["LPUSH", keys.waiting, id],
        ])
        #expect(await eventually(timeout: 4) { try await client.job(id).state == .completed }, "well before the 8 s block timeout")
        await worker.stop()
        #expect(try await InvariantChecker.check(queue: queue, url: url).isEmpty)
    }

    @Test func batchesEnqueuedWhileWorkersRunWakeThemAndRunEachJobOnce() async throws {
        let url = try SharedRedis.url
        let queue = uniqueQueue("batch-wake")
        // The reaper sweeps once at start and then not for a minute: only the
        // batches' own wake tokens, passed on by claims, can start the jobs.
        let config = testConfiguration(url: url) { $0.reapInterval = 60 }
        let client = SpoolClient(configuration: config)
        let ran = Mutex<[String: Int]>([:])
        var handlers = JobHandlers()
        handlers.register("t") { context in
            ran.withLock { $0[context.id, default: 0] += 1 }
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...2)))
            return nil
        }
        let workers = (0..<2).map { _ in
            RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue], concurrency: 3), handlers: handlers))
        }
        var ids: [String] = []
        for round in 0..<4 {
            try await Task.sleep(for: .milliseconds(700))  // the workers are idle, blocked or parked
            // Two script calls per round; the second lands while the first's jobs are being claimed.
            let batch = (0..<(SpoolClient.enqueueBatch + 50)).map { JobRequest(queue: queue, type: "t", payload: #"{"r":\#(round),"i":\#($0)}"#) }
            ids += try await client.enqueue(batch)
            let total = ids.count
            #expect(await eventually(timeout: 20) { try await client.counts(queue).completed == total }, "round \(round)")
        }
        for worker in workers { await worker.stop() }
        let runs = ran.withLock { $0 }
        #expect(Set(runs.keys) == Set(ids))
        #expect(runs.values.allSatisfy { $0 == 1 }, "a job ran twice")
        #expect(try await InvariantChecker.check(queue: queue, url: url).isEmpty)
    }
}
