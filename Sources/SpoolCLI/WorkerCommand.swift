import ArgumentParser
import Dispatch
import Foundation
import Logging
import Spool
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `spool worker --queue Q …`: claims and runs jobs until SIGTERM or SIGINT.
///
/// 1. Load the configuration, check the queues, build the handlers: the
///    built-in `spool.noop` and `spool.sleep`, then every exec mapping from the
///    config file and `--exec` (the flag wins).
/// 2. Check that Redis answers, so a wrong URL fails at once with exit 69;
///    once running, the worker rides out outages by reconnecting.
/// 3. The first SIGTERM/SIGINT stops claiming and lets running jobs finish;
///    a second one exits at once (their leases expire and they are redelivered).
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run jobs from one or more queues until stopped.",
        discussion: """
            Queues are served in strict order (a free slot claims from the first \
            listed queue that has a job), or, when any --queue has a weight \
            (NAME:WEIGHT), in an order drawn by weight for every claim. Each job type a worker runs needs a \
            handler; an exec handler maps a type to a command, run directly \
            (split on spaces, never through a shell). The command gets the \
            payload on stdin and SPOOL_JOB_ID, SPOOL_QUEUE, SPOOL_JOB_TYPE, \
            SPOOL_ATTEMPT, SPOOL_MAX_ATTEMPTS, SPOOL_WORKER_ID and SPOOL_PROGRESS_FD \
            (write "progress PERCENT MESSAGE" lines there) in its environment. Exit status 0 \
            completes the job with stdout as its result (kept as is when it is \
            JSON, else as a JSON string); any other status fails the attempt with \
            the tail of stderr, and the job is retried with backoff.

            Built-in types: spool.noop (does nothing) and spool.sleep (sleeps \
            payload {"ms": N} milliseconds), for demos and benchmarks.

            SIGTERM or SIGINT stops claiming and gives running jobs --grace \
            seconds to finish; jobs still running then are cancelled and released \
            (back to the front of their queue, the attempt not counted), so another \
            worker starts them at once. A second signal exits at once (status 143 \
            or 130) and the interrupted jobs are redelivered when their leases expire.

            --processes N runs N worker processes under a supervisor, which \
            restarts any that die (with backoff when one dies right after it \
            starts) and forwards SIGTERM/SIGINT to them. --processes MIN..MAX adds \
            a process while jobs wait and retires one after 10 s of spare capacity.

            Examples:
              spool worker --queue mail --exec send='/usr/local/bin/send-mail --quiet'
              spool worker --queue urgent --queue default --concurrency 8
              spool worker --queue text --exec upper='tr a-z A-Z' --log-level debug
              spool worker --queue mail --processes 4 --concurrency 8 --grace 60
              spool worker --queue reports --processes 1..8
              spool worker --queue critical:6 --queue default:3 --queue bulk:1
            """
    )

    @Option(
        name: .customLong("queue"),
        help: ArgumentHelp(
            "A queue to serve; repeat (or separate with commas) for several, in strict order; NAME:WEIGHT on any makes the order weighted.",
            valueName: "queue"))
    var queues: [String] = []

    @Option(help: ArgumentHelp("Jobs run at once in this process.", valueName: "n"))
    var concurrency: Int = 1

    @Option(
        name: .customLong("exec"),
        help: ArgumentHelp(
            "Run jobs of TYPE with COMMAND (argv split on spaces, no shell); repeatable, overrides the config file's exec.",
            valueName: "type=command"))
    var execMappings: [String] = []

    @Option(help: ArgumentHelp("Seconds a claim lasts without a heartbeat (default: each queue's visibility_timeout).", valueName: "seconds"))
    var visibilityTimeout: Double?

    @Option(
        help: ArgumentHelp(
            "Seconds running jobs get to finish after SIGTERM/SIGINT; then they are released to other workers.", valueName: "seconds"))
    var grace: Double = 25

    @Option(
        help: ArgumentHelp(
            "Run N worker processes under a supervisor that restarts them, or MIN..MAX to scale with the backlog.", valueName: "n|min..max"))
    var processes: String?

    @Option(
        help: ArgumentHelp(
            "trace, debug, info, notice, warning, error or critical (default: the config's log_level, else info).", valueName: "level"))
    var logLevel: String?

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func validate() throws {
        if queues.isEmpty { throw ValidationError("Missing expected argument '--queue <queue>'.") }
    }

    func run() async throws {
        var worker: Worker?
        var supervisor: Supervisor?
        try await reportingErrors {
            let configuration = try connection.load()
            let level = try resolvedLevel(configuration)
            let options = try workerOptions()
            let exec = try execTable(configuration)
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "spool.worker")
            let client = SpoolClient(configuration: configuration, label: "spool.worker.check")
            do {
                try await client.redis.command(["PING"])
            } catch {
                throw CLIError(.unavailable, "worker: cannot reach Redis: \(error)")
            }
            client.redis.close()
            if let processes {
                supervisor = try makeSupervisor(processes, options: options, configuration: configuration)
                return
            }
            if exec.isEmpty {
                logger.notice("no exec handlers: this worker runs only spool.noop and spool.sleep jobs")
            }
            for (type, argv) in exec.sorted(by: { $0.key < $1.key }) where ChildProcess.which(argv[0]) == nil {
                logger.warning(
                    "exec command not found or not executable; its jobs will fail", metadata: ["type": "\(type)", "command": "\(argv[0])"])
            }
            worker = Worker(configuration: configuration, options: options, handlers: Self.handlers(exec), logger: logger)
        }
        if let supervisor {
            let signals = [SIGINT, SIGTERM].map { number in
                Self.onSignal(number) { supervisor.signal(number) }
            }
            let status = await supervisor.run()
            withExtendedLifetime(signals) {}
            if status != 0 { throw ExitCode(status) }
            return
        }
        guard let worker else { return }
        let signals = Self.installSignalHandlers(worker: worker)
        await worker.run()
        withExtendedLifetime(signals) {}
    }

    /// A supervisor that runs this same command, minus --processes, N times.
    private func makeSupervisor(_ spec: String, options: WorkerOptions, configuration: SpoolConfiguration) throws(CLIError) -> Supervisor {
        // "N" or "MIN..MAX" exactly: not "1...3", "1.3" or "..3".
        let bounds = spec.split(separator: "..", omittingEmptySubsequences: false).map { part in
            part.allSatisfy { $0.isASCII && $0.isNumber } ? Int(part) : nil
        }
        let range: (Int, Int)
        if bounds.count == 1, let n = bounds[0] {
            range = (n, n)
        } else if bounds.count == 2, let low = bounds[0], let high = bounds[1] {
            range = (low, high)
        } else {
            throw .usage("--processes \"\(spec)\" must be N or MIN..MAX")
        }
        guard range.0 >= 1, range.1 >= range.0, range.1 <= 256 else {
            throw .usage("--processes needs 1 <= MIN <= MAX <= 256")
        }
        var arguments: [String] = []
        var skipNext = false
        for argument in CommandLine.arguments.dropFirst() {
            if skipNext {
                skipNext = false
            } else if argument == "--processes" {
                skipNext = true
            } else if !argument.hasPrefix("--processes=") {
                arguments.append(argument)
            }
        }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var supervisorOptions = SupervisorOptions(
            executable: executable, arguments: arguments, minProcesses: range.0, maxProcesses: range.1,
            queues: options.queues, concurrency: options.concurrency)
        supervisorOptions.quickExit = 5
        return Supervisor(options: supervisorOptions, configuration: configuration)
    }

    /// Runs `action` on each delivery of `number` (the default action is ignored).
    private static func onSignal(_ number: Int32, _ action: @escaping @Sendable () -> Void) -> any DispatchSourceSignal {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler(handler: action)
        source.resume()
        return source
    }

    private func resolvedLevel(_ configuration: SpoolConfiguration) throws(CLIError) -> Logger.Level {
        if let logLevel {
            guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
                throw .usage("--log-level \"\(logLevel)\" is not one of \(Self.levelNames)")
            }
            return level
        }
        guard let level = Logger.Level(rawValue: configuration.logLevel.lowercased()) else {
            throw CLIError(.config, "configuration: log_level (or SPOOL_LOG_LEVEL) \"\(configuration.logLevel)\" is not one of \(Self.levelNames)")
        }
        return level
    }

    private static var levelNames: String { Logger.Level.allCases.map(\.rawValue).joined(separator: ", ") }

    private func workerOptions() throws(CLIError) -> WorkerOptions {
        var names: [String] = []
        var weights: [String: Int] = [:]
        for entry in queues {
            for item in entry.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
                let parts = item.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                let name = parts[0]
                try checkName(name, "queue name")
                if parts.count == 2 {
                    guard let weight = Int(parts[1]), (1...1000).contains(weight) else {
                        throw .usage("--queue \(item): the weight must be a whole number from 1 to 1000")
                    }
                    weights[name] = weight
                }
                if !names.contains(name) { names.append(name) }
            }
        }
        guard (1...1024).contains(concurrency) else { throw .usage("--concurrency must be between 1 and 1024") }
        if let visibilityTimeout {
            guard visibilityTimeout >= 0.1, visibilityTimeout <= 86400 else {
                throw .usage("--visibility-timeout must be between 0.1 and 86400 seconds")
            }
        }
        guard grace >= 0, grace <= 86400 else { throw .usage("--grace must be between 0 and 86400 seconds") }
        if !weights.isEmpty { for name in names where weights[name] == nil { weights[name] = 1 } }
        return WorkerOptions(queues: names, concurrency: concurrency, visibilityTimeout: visibilityTimeout, grace: grace, weights: weights)
    }

    /// Job type -> argv: the config file's exec, overridden by --exec.
    private func execTable(_ configuration: SpoolConfiguration) throws(CLIError) -> [String: [String]] {
        var exec = configuration.exec
        for mapping in execMappings {
            let (type, argv) = try Self.parseExec(mapping)
            exec[type] = argv
        }
        return exec
    }

    /// The built-ins, then one exec handler per mapped type.
    private static func handlers(_ exec: [String: [String]]) -> JobHandlers {
        var handlers = JobHandlers()
        handlers.register("spool.noop") { _ in nil }
        handlers.register("spool.sleep") { context in
            let ms = try context.decode(SleepPayload.self).ms ?? 0
            try await Task.sleep(for: .milliseconds(max(0, ms)))
            return nil
        }
        for (type, argv) in exec { handlers.register(type, ExecHandler(argv: argv).handler) }
        return handlers
    }

    static func parseExec(_ mapping: String) throws(CLIError) -> (String, [String]) {
        guard let eq = mapping.firstIndex(of: "=") else {
            throw .usage("--exec \"\(mapping)\" must be TYPE=COMMAND")
        }
        let type = String(mapping[..<eq])
        try checkName(type, "job type")
        let argv = ExecHandler.split(String(mapping[mapping.index(after: eq)...]))
        guard !argv.isEmpty else { throw .usage("--exec \(type)= needs a command") }
        return (type, argv)
    }

    /// First signal: stop claiming and drain. Second: exit now, 128 + signal.
    private static func installSignalHandlers(worker: Worker) -> [any DispatchSourceSignal] {
        let signalled = SignalCount()
        return [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let name = number == SIGINT ? "SIGINT" : "SIGTERM"
                guard let count = signalled.record() else { return }
                if count > 1 {
                    printError("spool: worker: \(name) again, exiting without waiting for running jobs")
                    Glibc.exit(128 + number)
                }
                printError("spool: worker: \(name) received, finishing running jobs (signal again to exit now)")
                worker.stop()
            }
            source.resume()
            return source
        }
    }
}

private struct SleepPayload: Decodable {
    var ms: Int?
}

/// Signals seen so far, shared by the signal sources. A repeat within 200 ms
/// is the same request delivered twice (`timeout(1)` signals the child and
/// then its process group), not an operator insisting.
private final class SignalCount: Sendable {
    private let state = Mutex<(count: Int, last: UInt64)>((0, 0))

    /// How many distinct signals have arrived, this one included; nil for a repeat.
    func record() -> Int? {
        let now = DispatchTime.now().uptimeNanoseconds
        return state.withLock { s in
            if s.count > 0 && now - s.last < 200_000_000 { return nil }
            s.count += 1
            s.last = now
            return s.count
        }
    }
}
