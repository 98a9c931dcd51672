import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Real `spool worker` processes, killed and paused on purpose.
@Suite("Worker processes under SIGKILL and SIGSTOP")
struct WorkerProcessTests {
    let url: RedisURL
    let environment: [String: String]
    init() throws {
        url = try SharedRedis.url
        environment = try testEnvironment(redis: try SharedRedis.urlString)
    }

    /// An executable script that sleeps, then prints which attempt it was.
    func slowJob(seconds: Double) throws -> String {
        try shellScript("sleep \(seconds)\nprintf '\"attempt-%s\"' \"$SPOOL_ATTEMPT\"\n")
    }

    func worker(_ queue: String, script: String, visibility: Double) throws -> SpoolProcess {
        try SpoolProcess(
            ["worker", "--queue", queue, "--exec", "slow=\(script)", "--visibility-timeout", String(visibility)],
            environment: environment)
    }

    /// Enqueues a 3 s job on `queue`, starts a worker (2 s leases), waits
    /// until the job runs, and SIGKILLs that worker. 3 s: long enough that a
    /// test process starved by its neighbours still kills the worker before
    /// the job finishes.
    func jobOfAKilledWorker(_ queue: String, _ client: SpoolClient) async throws -> (id: String, script: String) {
        let script = try slowJob(seconds: 3)
        let id = try await client.enqueue(JobRequest(queue: queue, type: "slow"))
        let first = try worker(queue, script: script, visibility: 2)
        defer { first.kill() }
        #expect(await eventually { try await client.job(id).state == .active })
        first.signal(SIGKILL)
        #expect(try await first.waitForExit(timeout: 5) == .signaled(SIGKILL))
        return (id, script)
    }

    @Test func aJobOfAKilledWorkerIsRedeliveredAndCompletesOnItsSecondAttempt() async throws {
        let queue = uniqueQueue("crash")
        let client = SpoolClient(configuration: testConfiguration(url: url))
        let (id, script) = try await jobOfAKilledWorker(queue, client)

        let second = try worker(queue, script: script, visibility: 2)
        defer { second.kill() }
        #expect(await eventually(timeout: 20) { try await client.job(id).state == .completed })
        let job = try await client.job(id)
        #expect(job.attempts == 2, "\(job.errors)")
        #expect(job.result == #""attempt-2""#)
        #expect(job.errors.count == 1 && job.errors[0].error.contains("stalled"))
        #expect(try await InvariantChecker.check(queue: queue, url: url).isEmpty)

        second.signal(SIGTERM)
        #expect(try await second.waitForExit(timeout: 10) == .exited(0), "\(second.log)")
    }

    /// A cancel asked of a running job whose worker was SIGKILLed (so nobody
    /// confirms it) ends the job when its lease expires: reaped, not run again.
    @Test func aCancelAskedOfAJobWhoseWorkerDiedEndsItInsteadOfARedelivery() async throws {
        let queue = uniqueQueue("cancel-dead")
        let client = SpoolClient(configuration: testConfiguration(url: url))
        let (id, script) = try await jobOfAKilledWorker(queue, client)
        #expect(try await client.cancel(id, reason: "not wanted any more") == .requested)

        // Its housekeeping reaps the expired lease; before the fix it claimed
        // the job again and completed it as attempt 2.
        let second = try worker(queue, script: script, visibility: 2)
        defer { second.kill() }
        #expect(await eventually(timeout: 20) { try await client.job(id).state.isTerminal })
        let job = try await client.job(id)
        #expect(job.state == .cancelled && job.attempts == 1 && job.result == nil, "\(job)")
        #expect(job.lastError == "not wanted any more")
        #expect(try await InvariantChecker.check(queue: queue, url: url).isEmpty)

        second.signal(SIGTERM)
        #expect(try await second.waitForExit(timeout: 10) == .exited(0), "\(second.log)")
    }

    @Test func aPausedWorkerPastItsLeaseCannotOverwriteTheResult() async throws {
        let queue = uniqueQueue("fence")
        let client = SpoolClient(configuration: testConfiguration(url: url))
        let script = try slowJob(seconds: 3)
        let id = try await client.enqueue(JobRequest(queue: queue, type: "slow"))

        let paused = try worker(queue, script: script, visibility: 2)
        defer { paused.kill() }
        #expect(await eventually { try await client.job(id).state == .active })
        let firstWorker = try await client.job(id).worker
        paused.signal(SIGSTOP)

        // Its lease runs out; a second worker's reaper redelivers the job and completes it.
        let other = try worker(queue, script: script, visibility: 2)
        defer { other.kill() }
        #expect(await eventually(timeout: 20) { try await client.job(id).state == .completed })
        var job = try await client.job(id)
        #expect(job.result == #""attempt-2""#)
        #expect(job.worker != firstWorker)

        // Resumed, the first worker finishes its attempt, and the script rejects it.
        paused.signal(SIGCONT)
        #expect(await eventually(timeout: 10) { paused.log.contains("completion rejected") }, "\(paused.log)")
        job = try await client.job(id)
        #expect(job.result == #""attempt-2""#)
        #expect(job.attempts == 2 && job.state == .completed, "\(job.errors)")
        #expect(try await InvariantChecker.check(queue: queue, url: url).isEmpty)

        paused.signal(SIGTERM)
        other.signal(SIGTERM)
        #expect(try await paused.waitForExit(timeout: 10) == .exited(0))
        #expect(try await other.waitForExit(timeout: 10) == .exited(0))
    }
}
