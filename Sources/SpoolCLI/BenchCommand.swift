import ArgumentParser
import Foundation
import Hiredis
import Logging
import Spool
import Synchronization

/// `spool bench`: a benchmark (not a test) of the core path with no-op jobs.
///
/// 1. Enqueue N jobs one at a time (one round trip each), then N in pipelined
///    batches: jobs per second.
/// 2. Drain 2N jobs with an in-process worker running a no-op Swift handler:
///    jobs per second from the first claim to the last completion.
/// 3. For each phase, Redis's own INFO commandstats and INFO cpu deltas give
///    the commands and the Redis CPU time it spent per job.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure enqueue and drain rates and Redis cost per job (no-op jobs).",
        discussion: """
            Runs against the Redis of --redis / $SPOOL_REDIS_URL on a queue of its \
            own, which it deletes afterwards; `make bench` starts a private Redis \
            for it. Payloads are ~100 bytes. Numbers are for this machine and this \
            Redis: compare runs, not absolute values.

            Examples:
              make bench
              spool bench --jobs 50000 --concurrency 16 --json
            """
    )

    @Option(help: ArgumentHelp("Jobs per phase.", valueName: "n"))
    var jobs: Int = 10_000

    @Option(help: ArgumentHelp("Worker slots draining in one process.", valueName: "n"))
    var concurrency: Int = 8

    @Option(help: ArgumentHelp("Jobs per pipelined batch in the bulk phase.", valueName: "n"))
    var batch: Int = 1000

    @Flag(help: "Print the results as JSON.")
    var json = false

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func validate() throws {
        guard jobs >= 1, concurrency >= 1, batch >= 1 else { throw ValidationError("--jobs, --concurrency and --batch must be at least 1") }
    }

    struct Phase: Encodable {
        var name: String
        var jobs: Int
        var seconds: Double
        var jobsPerSecond: Double
        var redisCommandsPerJob: Double
        var redisCPUMicrosPerJob: Double
        var commands: [String: Double]
    }

    func run() async throws {
        try await reportingErrors {
            var configuration = try connection.load()
            let queue = "bench-\(JobID.randomHex(bytes: 4))"
            var policy = configuration.defaults
            policy.keepCompleted = 1000
            configuration.queues[queue] = policy
            let client = SpoolClient(configuration: configuration, label: "spool.bench")
            let stats = RedisStats(client: client.redis)
            do { try await client.redis.command(["PING"]) } catch { throw CLIError(.unavailable, "bench: cannot reach Redis: \(error)") }
            let payload = #"{"user":12345,"template":"welcome","locale":"en-GB","to":"someone@example.com","pad":"xxxxxxxxxx"}"#
            let request = JobRequest(queue: queue, type: "noop", payload: payload)
            let phases: [Phase]
            do {
                phases = try await measure(configuration, client, stats, queue, request)
            } catch {
                _ = try? await Self.cleanUp(client, queue)
                throw error
            }
            try await Self.cleanUp(client, queue)
            if json {
                try Output.printJSON(phases)
            } else {
                Self.printPhases(phases)
            }
        }
    }

    private func measure(_ configuration: SpoolConfiguration, _ client: SpoolClient, _ stats: RedisStats, _ queue: String, _ request: JobRequest)
        async throws -> [Phase]
    {
        var phases: [Phase] = []

        // 1. Enqueue one by one.
        var before = try await stats.snapshot()
        var start = ContinuousClock.now
        for _ in 0..<jobs { try await client.enqueue(request) }
        phases.append(try await stats.phase("enqueue (one by one)", jobs: jobs, since: before, elapsed: start.duration(to: .now)))

        // 2. Enqueue in pipelined batches.
        before = try await stats.snapshot()
        start = ContinuousClock.now
        var left = jobs
        while left > 0 {
            let n = min(batch, left)
            _ = try await client.enqueue(Array(repeating: request, count: n))
            left -= n
        }
        phases.append(try await stats.phase("enqueue (bulk, \(batch) per pipeline)", jobs: jobs, since: before, elapsed: start.duration(to: .now)))

        // 3. Drain everything with a no-op handler.
        let total = 2 * jobs
        let done = Atomic<Int>(0)
        let finished = AsyncStream<Void>.makeStream()
        var handlers = JobHandlers()
        handlers.register("noop") { _ in
            if done.add(1, ordering: .relaxed).newValue == total { finished.continuation.yield() }
            return nil
        }
        var quiet = Logger(label: "spool.bench")
        quiet.logLevel = .error
        let worker = Worker(
            configuration: configuration, options: WorkerOptions(queues: [queue], concurrency: concurrency), handlers: handlers, logger: quiet)
        before = try await stats.snapshot()
        start = ContinuousClock.now
        let running = Task { await worker.run() }
        for await _ in finished.stream { break }
        let elapsed = start.duration(to: .now)
        // Let the last completions land before reading the counters.
        try await Task.sleep(for: .milliseconds(50))
        phases.append(try await stats.phase("drain (1 process, concurrency \(concurrency))", jobs: total, since: before, elapsed: elapsed))
        worker.stop()
        await running.value
        return phases
    }

    static func cleanUp(_ client: SpoolClient, _ queue: String) async throws {
        for state in JobState.allCases where state != .active { _ = try await client.purge(queue, state: state) }
        try await client.redis.command(["SREM", GlobalKeys(prefix: client.configuration.prefix).queues, queue])
    }

    static func printPhases(_ phases: [Phase]) {
        let rows = phases.map { p in
            [
                p.name, String(p.jobs), String(format: "%.0f", p.jobsPerSecond), String(format: "%.2f", p.redisCommandsPerJob),
                String(format: "%.1f", p.redisCPUMicrosPerJob),
            ]
        }
        Output.printTable(["phase", "jobs", "jobs/s", "redis cmds/job", "redis CPU µs/job"], rows, numeric: [1, 2, 3, 4])
        print("")
        for p in phases {
            let top = p.commands.sorted { $0.value > $1.value }.prefix(6).map { String(format: "%@ %.2f", $0.key, $0.value) }
            print("\(p.name): per job \(top.joined(separator: ", "))")
        }
    }
}

/// Redis's own counters: calls per command (INFO commandstats) and CPU seconds (INFO cpu).
struct RedisStats {
    let client: RedisClient

    struct Snapshot {
        var calls: [String: Int]
        var cpu: Double
    }

    func snapshot() async throws -> Snapshot {
        let commandstats = try await client.command(["INFO", "commandstats"]).string ?? ""
        let cpuInfo = try await client.command(["INFO", "cpu"]).string ?? ""
        var calls: [String: Int] = [:]
        for line in commandstats.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            let name = line.dropFirst("cmdstat_".count).prefix { $0 != ":" }
            if let field = line.split(separator: ",").first, let n = Int(field.split(separator: "=").last ?? "") {
                calls[String(name)] = n
            }
        }
        var cpu = 0.0
        for line in cpuInfo.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":")
            if parts.count == 2, parts[0] == "used_cpu_sys" || parts[0] == "used_cpu_user" {
                cpu += Double(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        return Snapshot(calls: calls, cpu: cpu)
    }

    /// One phase's figures; the two INFO calls of each snapshot are not counted.
    func phase(_ name: String, jobs: Int, since before: Snapshot, elapsed: Duration) async throws -> BenchCommand.Phase {
        let after = try await snapshot()
        var perCommand: [String: Double] = [:]
        var total = 0
        for (command, n) in after.calls {
            var delta = n - (before.calls[command] ?? 0)
            if command == "info" { delta -= 2 }
            if delta > 0 {
                perCommand[command] = Double(delta) / Double(jobs)
                total += delta
            }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return BenchCommand.Phase(
            name: name, jobs: jobs, seconds: seconds, jobsPerSecond: Double(jobs) / seconds,
            redisCommandsPerJob: Double(total) / Double(jobs),
            redisCPUMicrosPerJob: (after.cpu - before.cpu) * 1e6 / Double(jobs), commands: perCommand)
    }
}
