import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Invariants 1–4 under fire: `spool worker --processes 4` while worker
/// processes are SIGKILLed every 300 ms and Redis restarts once.
/// SPOOL_CHAOS_SECONDS and SPOOL_CHAOS_JOBS make it longer (`make chaos`).
/// The tests that run several worker processes flat out: one at a time, in
/// this order, so that the measurements of one are not the CPU starvation of
/// another.
@Suite("Multi-process scenarios", .serialized)
struct ChaosTests {
    let url: RedisURL
    let environment: [String: String]
    init() throws {
        url = try SharedRedis.url
        environment = try testEnvironment(redis: try SharedRedis.urlString)
    }

    @Test func aCronScheduleRunByFourProcessesMakesOneJobPerTick() async throws {
        let queue = uniqueQueue("cron")
        let client = SpoolClient(configuration: testConfiguration(url: url) { $0.defaults.keepCompleted = -1 })
        let env = try testEnvironment(redis: try SharedRedis.urlString, extraYAML: "defaults:\n  keep_completed: -1")
        let supervisor = try SpoolProcess(["worker", "--queue", queue, "--processes", "4"], environment: env)
        defer {
            for pid in childPids(of: supervisor.pid) { kill(pid, SIGKILL) }
            supervisor.kill()
        }
        #expect(await eventually { try await client.workers().filter { $0.queues == [queue] }.count == 4 })
        let added = try await runSpool(["cron", "add", "tick", queue, "spool.noop", "every 1s"], environment: env)
        #expect(added.status == 0, "\(added.stderr)")
        let first = try #require(try await client.cronEntries(queues: [queue]).first?.nextRun)
        // Ten ticks: first … first + 9 s.
        #expect(await eventually(timeout: 20) { try await client.counts(queue).completed >= 10 })
        try await Task.sleep(until: .now + .milliseconds(max(0, first + 9_500 - client.clock.nowMillis())), clock: .continuous)
        #expect(try await client.removeCron(queue: queue, name: "tick"))
        try await Task.sleep(for: .milliseconds(500))
        let jobs = try await client.jobs(queue, state: .completed, limit: 100)
        let ticks = jobs.compactMap { $0.idempotencyKey?.split(separator: ":").last.flatMap { Int($0) } }.sorted()
        // One job per tick, every tick from the first on, none twice. (On a
        // loaded machine the removal may land after an eleventh tick.)
        #expect(ticks.count == jobs.count && Set(ticks).count == jobs.count, "one job per tick: \(ticks)")
        #expect(jobs.count >= 10 && jobs.count <= 12, "\(jobs.count) jobs for about ten ticks")
        // The first tick may fire between `cron add` and reading nextRun, so
        // the run starts at first or one tick before it.
        let start = ticks.first ?? first
        #expect(start == first || start == first - 1000, "first tick \(start), next run read as \(first)")
        #expect(ticks == (0..<ticks.count).map { start + $0 * 1000 }, "consecutive ticks from the first: \(ticks)")
        let listed = try await runSpool(["cron", "list", "--json"], environment: env)
        #expect(listed.status == 0 && !listed.stdout.contains("\"\(queue)\""))
        supervisor.signal(SIGTERM)
        _ = try await supervisor.waitForExit(timeout: 15)
    }

    @Test func killedWorkersAndARedisRestartLoseNothing() async throws {
        let env = ProcessInfo.processInfo.environment
        let seconds = Double(env["SPOOL_CHAOS_SECONDS"] ?? "") ?? 20
        let jobCount = Int(env["SPOOL_CHAOS_JOBS"] ?? "") ?? 5000
        let server = try await offPool { try TestRedis(appendOnly: true) }
        defer { server.stop() }
        let queue = uniqueQueue("chaos")
        let runs = "chaos:\(queue):runs"
        let environment = try testEnvironment(
            redis: server.urlString,
            extraYAML: """
                queues:
                  \(queue):
                    keep_completed: -1
                    max_attempts: 25
                """)
        let client = SpoolClient(configuration: testConfiguration(url: server.url) { $0.defaults.keepCompleted = -1 })

        // Each execution records (job, attempt, worker pid) first, retrying
        // through the Redis restart (redis-cli exits 0 even on an error reply
        // such as LOADING, so it checks for the integer reply), then works 1–20 ms.
        let redisCli = try TestRedis.which("redis-cli")
        let handler = try shellScript(
            """
            read ms
            pid=${SPOOL_WORKER_ID#*:}; pid=${pid%%:*}
            until "\(redisCli)" -p \(server.port) RPUSH '\(runs)' "$SPOOL_JOB_ID $SPOOL_ATTEMPT $pid" 2>/dev/null | grep -q '^[0-9]'; do sleep 0.05; done
            sleep "0.$(printf '%03d' "$ms")"
            echo "$ms"
            """)
        var ids: [String] = []
        for start in stride(from: 0, to: jobCount, by: 1000) {
            let batch = (start..<min(jobCount, start + 1000)).map { _ in
                JobRequest(queue: queue, type: "chaos", payload: String(Int.random(in: 1...20)))
            }
            ids += try await client.enqueue(batch)
        }

        let supervisor = try SpoolProcess(
            [
                "worker", "--queue", queue, "--processes", "4", "--concurrency", "4", "--exec", "chaos=\(handler)",
                "--visibility-timeout", "5", "--grace", "5", "--log-level", "warning",
            ], environment: environment)
        defer {
            for pid in childPids(of: supervisor.pid) { kill(pid, SIGKILL) }
            supervisor.kill()
        }
        #expect(await eventually { childPids(of: supervisor.pid).filter(isAlive).count == 4 })

        // The chaos: a random worker process SIGKILLed every 300 ms; Redis restarted halfway.
        var killed: Set<Int> = []
        let began = Date()
        var restarted = false
        while Date().timeIntervalSince(began) < seconds {
            if !restarted && Date().timeIntervalSince(began) >= seconds / 2 {
                restarted = true
                try await offPool { try server.restart() }
            }
            if let victim = childPids(of: supervisor.pid).filter({ isAlive($0) && !killed.contains(Int($0)) }).randomElement() {
                kill(victim, SIGKILL)
                killed.insert(Int(victim))
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(restarted)

        // Everything finishes: nothing lost.
        let finished = await eventually(timeout: 240) { try await client.counts(queue).completed == jobCount }
        let counts = try await client.counts(queue)
        #expect(finished, "\(counts)")
        #expect(counts.dead == 0 && counts.waiting == 0 && counts.active == 0 && counts.failed == 0)
        #expect(try await InvariantChecker.check(queue: queue, url: server.url).isEmpty)

        // Every execution is accounted for; a job ran twice only because a kill
        // took its first run.
        let conn = try server.connect()
        let lines = (try conn.command(["LRANGE", runs, "0", "-1"]).array ?? []).compactMap(\.string)
        var byJob: [String: [(attempt: Int, pid: Int)]] = [:]
        for line in lines {
            let parts = line.split(separator: " ")
            guard parts.count == 3, let attempt = Int(parts[1]), let pid = Int(parts[2]) else { continue }
            byJob[String(parts[0]), default: []].append((attempt, pid))
        }
        let missing = Set(ids).subtracting(byJob.keys)
        #expect(missing.isEmpty, "\(missing.count) jobs have no recorded run, e.g. \(missing.prefix(3))")
        #expect(Set(byJob.keys).subtracting(ids).isEmpty)
        var duplicates = 0
        var unexplained: [String] = []
        for (id, executions) in byJob where executions.count > 1 {
            duplicates += executions.count - 1
            let ordered = executions.sorted { $0.attempt < $1.attempt }
            for earlier in ordered.dropLast() where !killed.contains(earlier.pid) {
                unexplained.append("\(id): run on pid \(earlier.pid) (attempt \(earlier.attempt)) was not killed")
            }
        }
        print(
            "chaos: \(jobCount) jobs, \(killed.count) workers killed, Redis restarted once, \(duplicates) duplicate executions, \(unexplained.count) unexplained"
        )
        #expect(unexplained.isEmpty, "\(unexplained.prefix(5))")

        // The supervisor and its workers stop cleanly within the grace period.
        let children = childPids(of: supervisor.pid)
        supervisor.signal(SIGTERM)
        #expect(try await supervisor.waitForExit(timeout: 15) == .exited(0), "\(supervisor.log.suffix(2000))")
        for pid in children { #expect(!isAlive(pid)) }
    }

    // Last: by now the parallel suites are done, so the machine is quiet enough
    // to measure a rate.
    @Test func aRateLimitHoldsAcrossFourProcesses() async throws {
        let queue = uniqueQueue("rate")
        let env = try testEnvironment(
            redis: try SharedRedis.urlString,
            extraYAML: """
                queues:
                  \(queue):
                    rate_limit: 50
                    rate_interval: 1
                    keep_completed: -1
                """)
        let client = SpoolClient(configuration: testConfiguration(url: url) { $0.defaults.keepCompleted = -1 })
        _ = try await client.enqueue((0..<600).map { _ in JobRequest(queue: queue, type: "spool.noop") })
        let supervisor = try SpoolProcess(["worker", "--queue", queue, "--processes", "4", "--concurrency", "4"], environment: env)
        defer {
            for pid in childPids(of: supervisor.pid) { kill(pid, SIGKILL) }
            supervisor.kill()
        }
        #expect(await eventually { try await client.counts(queue).completed >= 50 })
        try await Task.sleep(for: .seconds(6))
        supervisor.signal(SIGTERM)
        _ = try await supervisor.waitForExit(timeout: 15)
        let started = try await client.jobs(queue, state: .completed, limit: 1000).compactMap(\.startedAt).sorted()
        // Over 5 s in the middle of the run: at most 250 + 10 %. Below, 20 %
        // of slack: a slot woken late by a loaded machine leaves room in the
        // window unused (alone: 243-250; in CI after the whole suite: 224).
        let from = started[started.count / 10]
        let inWindow = started.filter { $0 >= from && $0 < from + 5000 }.count
        #expect((200...275).contains(inWindow), "\(inWindow) jobs started in 5 s")
        // And never much more than 50 in any 1 s window. The limit counts on
        // Redis's clock; started_at is each worker's clock when it sent the
        // claim, which a busy machine can delay: within 10 %.
        let peak = started.indices.map { i in started[i...].prefix { $0 < started[i] + 1000 }.count }.max() ?? 0
        #expect(peak <= 55, "peak \(peak) in one second")
    }
}
