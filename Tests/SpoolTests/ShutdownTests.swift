import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Graceful shutdown, the worker registry and the supervisor")
struct ShutdownTests {
    let url: RedisURL
    let environment: [String: String]
    init() throws {
        url = try SharedRedis.url
        environment = try testEnvironment(redis: try SharedRedis.urlString)
    }

    func sleeper(_ seconds: Double) throws -> String {
        try shellScript("sleep \(seconds)\nprintf '\"slept\"'\n")
    }

    @Test func aJobStillRunningAfterTheGracePeriodIsReleasedNotFailed() async throws {
        let queue = uniqueQueue("grace")
        let client = SpoolClient(configuration: testConfiguration(url: url))
        let script = try sleeper(3)
        let id = try await client.enqueue(JobRequest(queue: queue, type: "long"))
        let first = try SpoolProcess(["worker", "--queue", queue, "--exec", "long=\(script)", "--grace", "0.5"], environment: environment)
        defer { first.kill() }
        #expect(await eventually { try await client.job(id).state == .active })
        let firstWorker = try await client.job(id).worker

        first.signal(SIGTERM)
        #expect(try await first.waitForExit(timeout: 5) == .exited(0), "\(first.log)")
        // Released at once, not after a lease expiry: back to waiting with the attempt not counted.
        let released = try await client.job(id)
        #expect(released.state == .waiting && released.attempts == 0 && released.errors.isEmpty, "\(released)")
        #expect(first.log.contains("releasing the job"))

        let second = try SpoolProcess(["worker", "--queue", queue, "--exec", "long=\(script)"], environment: environment)
        defer { second.kill() }
        #expect(await eventually(timeout: 15) { try await client.job(id).state == .completed })
        let job = try await client.job(id)
        #expect(job.attempts == 1 && job.errors.isEmpty && job.worker != firstWorker)
        #expect(try await InvariantChecker.check(queue: queue, url: url).isEmpty)
        second.signal(SIGTERM)
        _ = try await second.waitForExit(timeout: 10)
    }

    @Test func aJobThatFinishesWithinTheGracePeriodCompletes() async throws {
        let queue = uniqueQueue("drain")
        let config = testConfiguration(url: url)
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        handlers.register("short") { _ in
            try await Task.sleep(for: .milliseconds(400))
            return #""finished""#
        }
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue], grace: 5), handlers: handlers))
        let id = try await client.enqueue(JobRequest(queue: queue, type: "short"))
        let other = try await client.enqueue(JobRequest(queue: queue, type: "short"))
        #expect(await eventually { try await client.job(id).state == .active })
        await worker.stop()
        #expect(try await client.job(id).result == #""finished""#)
        #expect(try await client.job(other).state == .waiting, "no new claims after stop()")
    }

    @Test func workersRegisterThemselvesAndLeaveOnAStop() async throws {
        let queue = uniqueQueue("registry")
        let client = SpoolClient(configuration: testConfiguration(url: url))
        // Longer than one registry refresh (3 s) plus a heartbeat tick, so a
        // refresh falls while the job runs.
        let script = try sleeper(5)
        let worker = try SpoolProcess(["worker", "--queue", queue, "--concurrency", "3", "--exec", "long=\(script)"], environment: environment)
        defer { worker.kill() }
        let id = try await client.enqueue(JobRequest(queue: queue, type: "long"))
        #expect(await eventually { try await client.workers().contains { $0.pid == worker.pid && $0.jobs == [id] } })
        let info = try #require(try await client.workers().first { $0.pid == worker.pid })
        #expect(info.queues == [queue] && info.concurrency == 3 && !info.host.isEmpty)
        let listed = try await runSpool(["workers", "--json"], environment: environment)
        #expect(listed.status == 0 && listed.stdout.contains("\"pid\" : \(worker.pid)"), "\(listed.stdout)")
        // Entries expire unless refreshed.
        let ttl = try RedisConnection(url: url).command(["PTTL", GlobalKeys(prefix: "spool").worker(info.id)]).int ?? -1
        #expect(ttl > 0 && ttl <= 10_000)

        worker.signal(SIGTERM)
        #expect(try await worker.waitForExit(timeout: 15) == .exited(0))
        #expect(try await client.workers().contains { $0.pid == worker.pid } == false)
        #expect(try await client.job(id).state == .completed)
    }

    @Test func theSupervisorRestartsDeadWorkersWithBackoffAndStopsThemAll() async throws {
        let queue = uniqueQueue("super")
        let supervisor = try SpoolProcess(["worker", "--queue", queue, "--processes", "2"], environment: environment)
        defer {
            for pid in childPids(of: supervisor.pid) { kill(pid, SIGKILL) }
            supervisor.kill()
        }
        #expect(await eventually { childPids(of: supervisor.pid).count == 2 })
        // Make a process die three times, each right after it starts: the
        // restarts wait 0.5 s, 1 s, 2 s. (SIGUSR1 ends it like a crash, without a
        // core dump; SIGKILL would restart it at once.)
        // The victim each time is the replacement of the last one: a pid not
        // seen before (not the highest pid, which wraps around).
        var seen = Set(childPids(of: supervisor.pid))
        var victim = try #require(seen.first)
        for round in 0..<3 {
            kill(victim, SIGUSR1)
            if round == 2 { break }
            let known = seen
            #expect(await eventually(timeout: 10) { childPids(of: supervisor.pid).contains { !known.contains($0) && isAlive($0) } })
            victim = try #require(childPids(of: supervisor.pid).first { !known.contains($0) })
            seen.insert(victim)
        }
        #expect(await eventually(timeout: 10) { supervisor.log.contains("in=2s") }, "\(supervisor.log)")
        let log = supervisor.log
        #expect(log.contains("in=0.5s") && log.contains("in=1s"))
        #expect(await eventually(timeout: 10) { childPids(of: supervisor.pid).filter(isAlive).count == 2 })

        let children = childPids(of: supervisor.pid)
        supervisor.signal(SIGTERM)
        #expect(try await supervisor.waitForExit(timeout: 15) == .exited(0), "\(supervisor.log)")
        for pid in children { #expect(!isAlive(pid)) }
    }

    @Test func theSupervisorScalesWithTheBacklog() async throws {
        let queue = uniqueQueue("scale")
        let client = SpoolClient(configuration: testConfiguration(url: url))
        _ = try await client.enqueue((0..<40).map { _ in JobRequest(queue: queue, type: "spool.sleep", payload: #"{"ms":150}"#) })
        let supervisor = try SpoolProcess(["worker", "--queue", queue, "--processes", "1..3"], environment: environment)
        defer {
            for pid in childPids(of: supervisor.pid) { kill(pid, SIGKILL) }
            supervisor.kill()
        }
        #expect(await eventually(timeout: 20) { supervisor.log.contains("to=3") }, "\(supervisor.log)")
        #expect(await eventually(timeout: 30) { try await client.counts(queue).completed == 40 })
        // Idle for 10 s: back down towards one process, a step at a time.
        #expect(await eventually(timeout: 40) { supervisor.log.contains("scaling down") }, "\(supervisor.log)")
        supervisor.signal(SIGTERM)
        #expect(try await supervisor.waitForExit(timeout: 15) == .exited(0))
    }

    @Test func aRedisOutageIsLoggedOnceAndTheWorkerCarriesOn() async throws {
        let server = try await offPool { try TestRedis(appendOnly: true) }
        defer { server.stop() }
        let queue = uniqueQueue("outage-log")
        let env = try testEnvironment(redis: server.urlString)
        let worker = try SpoolProcess(["worker", "--queue", queue, "--concurrency", "4"], environment: env)
        defer { worker.kill() }
        let client = SpoolClient(configuration: testConfiguration(url: server.url))
        #expect(await eventually { try await client.workers().count == 1 })
        try await offPool { server.stop() }
        try await Task.sleep(for: .seconds(2))
        try await offPool { try server.start() }
        let id = try await client.enqueue(JobRequest(queue: queue, type: "spool.noop"))
        #expect(await eventually(timeout: 15) { try await client.job(id).state == .completed })
        #expect(await eventually { worker.log.contains("redis is back") })
        let log = worker.log
        #expect(log.components(separatedBy: "redis unavailable").count - 1 == 1, "\(log)")
        #expect(log.components(separatedBy: "redis is back").count - 1 == 1)
        worker.signal(SIGTERM)
        #expect(try await worker.waitForExit(timeout: 10) == .exited(0))
    }
}
