import ArgumentParser
import Foundation
import Hiredis
import Spool

#if canImport(Glibc)
    import Glibc
#endif

/// `spool bench`: a benchmark (not a test) of Spool on this machine.
///
/// 1. Check the options, reach Redis and load every script, so no run pays
///    for a first SCRIPT LOAD.
/// 2. Run each selected scenario `--runs` times, each run on a queue of its
///    own that is deleted afterwards (BenchContext and the Bench*.swift files
///    next to it hold the scenarios).
/// 3. Report the median, minimum and maximum of every figure as a table, or
///    as JSON with `--json`; `--json-file` also writes the JSON.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure enqueue and drain rates, latency, memory and Redis cost per job (no-op jobs).",
        discussion: """
            Runs against the Redis of --redis / $SPOOL_REDIS_URL, on queues of its \
            own that it deletes afterwards; `make bench` starts a private Redis for \
            it (or uses $SPOOL_REDIS_URL when set) and writes \
            bench-results/latest.json. Payloads are 100 bytes. Worker processes are \
            this binary's `spool worker`, stopped by pid. Numbers are for this \
            machine and this Redis: compare runs, not absolute values.

            Throughput scenarios report jobs/s, Redis round trips per job (INFO \
            stats total_reads_processed), commands per job (INFO commandstats, \
            which counts commands called from Lua) and Redis CPU µs per job (INFO \
            cpu), the bench's own polling taken out. Scenarios with worker \
            processes also report their CPU µs per job (/proc/PID/stat).

            Scenarios (default: all, in this order):
              enqueue-single      --jobs jobs enqueued one at a time, one connection
              enqueue-concurrent  the same from --producers connections at once
              enqueue-bulk        pipelined batches of --batch jobs
              drain-1, drain-2    --jobs waiting jobs drained by 1 or 2 worker
                                  processes at --concurrency, timed from resume
                                  to the last completion
              drain-sweep         1 worker process at concurrency 1, 4, 16, 64
              steady-state        --producers enqueue while 2 worker processes run
              latency             enqueue to handler start on an idle queue:
                                  p50/p99/max of --samples jobs (in-process)
              memory              Redis memory per waiting job, and minus payload
              worker-rss          VmHWM and VmRSS of a worker process after a drain
              progress            Redis cost of one progress update (in-process)
              idle-fleet          Redis CPU with --fleet idle worker processes at
                                  --concurrency and with none, --idle-window
                                  seconds each

            A full run takes 2 to 3 minutes on 2 cores.

            Examples:
              make bench
              make bench BENCH_ARGS="--scenario drain-1 --scenario drain-2 --runs 5"
              spool bench --scenario enqueue-single,latency --json
              spool bench --jobs 50000 --concurrency 16 --json-file results.json
              spool bench --scenario idle-fleet --fleet 100 --idle-window 5
            """
    )

    @Option(
        name: .customLong("scenario"),
        help: ArgumentHelp("A scenario to run; repeat (or separate with commas) for several (default: all).", valueName: "name"))
    var scenarios: [String] = []

    @Option(help: ArgumentHelp("Times each scenario runs; the report gives median, min and max.", valueName: "n"))
    var runs: Int = 3

    @Option(help: ArgumentHelp("Jobs per run of the enqueue, drain, steady-state and memory scenarios.", valueName: "n"))
    var jobs: Int = 10_000

    @Option(help: ArgumentHelp("Producer connections in enqueue-concurrent and steady-state.", valueName: "n"))
    var producers: Int = 4

    @Option(help: ArgumentHelp("Jobs per pipelined batch in enqueue-bulk (and when filling queues).", valueName: "n"))
    var batch: Int = 1000

    @Option(help: ArgumentHelp("Worker slots per process in drain-1, drain-2, steady-state and worker-rss.", valueName: "n"))
    var concurrency: Int = 10

    @Option(help: ArgumentHelp("Jobs timed one by one in the latency scenario.", valueName: "n"))
    var samples: Int = 1000

    @Option(help: ArgumentHelp("Idle worker processes in the idle-fleet scenario.", valueName: "n"))
    var fleet: Int = 50

    @Option(help: ArgumentHelp("Seconds idle-fleet measures with and without the fleet.", valueName: "seconds"))
    var idleWindow: Double = 10

    @Flag(help: "Print the results as JSON instead of a table.")
    var json = false

    @Option(help: ArgumentHelp("Also write the results as JSON to this file (its directory is created).", valueName: "path"))
    var jsonFile: String?

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            let selected = try selectedScenarios()
            let parameters = try checkedParameters()
            if let jsonFile { try Self.checkWritable(jsonFile) }
            var context = BenchContext(configuration: try connection.load(), parameters: parameters, launcher: WorkerLauncher(connection: connection))
            defer { context.client.redis.close() }
            let redisVersion = try await Self.prepare(context)
            if selected.contains(where: \.polls) { try await context.calibratePolling() }
            let startedAt = Output.time(context.client.clock.nowMillis())
            let signals = BenchChildren.killOnSignal()
            defer { Self.restoreSignals(signals) }
            var results: [BenchScenarioResult] = []
            for scenario in selected {
                var samples: [BenchSample] = []
                for run in 1...parameters.runs {
                    Self.note("bench: \(scenario.rawValue), run \(run) of \(parameters.runs)")
                    samples.append(try await Self.measure(scenario, context))
                }
                results.append(BenchScenarioResult(scenario, parameters, samples: samples))
            }
            let report = BenchReport(
                machine: BenchMachine(redisVersion: redisVersion), runs: parameters.runs, startedAt: startedAt, parameters: parameters,
                pollCPUMicros: context.pollCPUMicros, scenarios: results)
            try output(report)
        }
    }

    /// The table or the JSON on stdout, and the JSON file when asked for.
    private func output(_ report: BenchReport) throws {
        let text = try report.json()
        if let jsonFile {
            do {
                try (text + "\n").write(toFile: jsonFile, atomically: true, encoding: .utf8)
            } catch {
                throw CLIError(.software, "bench: cannot write \(jsonFile): \(error.localizedDescription)")
            }
        }
        if json { print(text) } else { report.printTable() }
    }

    /// The scenarios named by `--scenario`, in the canonical order; all when none.
    private func selectedScenarios() throws(CLIError) -> [BenchScenario] {
        let names = scenarios.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) } }
        if names.isEmpty { return BenchScenario.allCases }
        var chosen: Set<BenchScenario> = []
        for name in names {
            guard let scenario = BenchScenario(rawValue: name) else {
                throw .usage("--scenario \"\(name)\" is not one of \(BenchScenario.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            chosen.insert(scenario)
        }
        return BenchScenario.allCases.filter(chosen.contains)
    }

    /// The numeric options, each checked against a sane range.
    private func checkedParameters() throws(CLIError) -> BenchParameters {
        let limits: [(String, Int, ClosedRange<Int>)] = [
            ("--runs", runs, 1...1000), ("--jobs", jobs, 1...10_000_000), ("--producers", producers, 1...256),
            ("--batch", batch, 1...100_000), ("--concurrency", concurrency, 1...1024), ("--samples", samples, 1...1_000_000),
            ("--fleet", fleet, 1...500),
        ]
        for (name, value, range) in limits where !range.contains(value) {
            throw .usage("\(name) must be between \(range.lowerBound) and \(range.upperBound)")
        }
        guard (0.1...3600).contains(idleWindow) else { throw .usage("--idle-window must be between 0.1 and 3600 seconds") }
        return BenchParameters(
            runs: runs, jobs: jobs, producers: producers, batch: batch, concurrency: concurrency, samples: samples, fleet: fleet,
            idleWindow: idleWindow, payloadBytes: 100)
    }

    /// Fails before minutes of benchmarking rather than after, when the JSON
    /// file cannot be written.
    private static func checkWritable(_ path: String) throws(CLIError) {
        let directory = (path as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw .usage("--json-file \(path) is a directory")
        }
        if !directory.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw .usage("--json-file: cannot create \(directory): \(error.localizedDescription)")
            }
        }
        guard access(directory.isEmpty ? "." : directory, W_OK) == 0 else { throw .usage("--json-file: cannot write in \(directory)") }
    }

    /// Checks that Redis answers (exit 69 if not), loads every script so no
    /// measurement pays for a NOSCRIPT round trip, and returns Redis's version.
    private static func prepare(_ context: BenchContext) async throws -> String {
        do {
            try await context.client.redis.command(["PING"])
        } catch {
            throw CLIError(.unavailable, "bench: cannot reach Redis: \(error)")
        }
        for script in Scripts.all { try await context.client.redis.command(["SCRIPT", "LOAD", script.source]) }
        return try await context.stats.field("server", "redis_version") ?? "unknown"
    }

    /// One run of one scenario; a failure names the scenario.
    private static func measure(_ scenario: BenchScenario, _ context: BenchContext) async throws -> BenchSample {
        do {
            return try await context.run(scenario)
        } catch let error as CLIError {
            throw CLIError(error.status, "bench: \(scenario.rawValue): \(error.message)")
        } catch let error as SpoolError {
            throw CLIError(CLIError.status(for: error.code), "bench: \(scenario.rawValue): \(error.description)")
        } catch let error as RedisError {
            throw CLIError(error.isConnectionLost ? .unavailable : .software, "bench: \(scenario.rawValue): Redis: \(error)")
        } catch {
            throw CLIError(.software, "bench: \(scenario.rawValue): \(error)")
        }
    }

    /// Where the bench is, on stderr, only when a person is watching it.
    private static func note(_ line: String) {
        if isatty(STDERR_FILENO) == 1 { printError(line) }
    }

    private static func restoreSignals(_ sources: [any DispatchSourceSignal]) {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
