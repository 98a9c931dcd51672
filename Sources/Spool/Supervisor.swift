import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How a supervisor runs its worker processes.
public struct SupervisorOptions: Sendable {
    /// The program and arguments of one worker process.
    public var executable: String
    public var arguments: [String]
    /// Between `minProcesses` and `maxProcesses` run; equal bounds mean a fixed count.
    public var minProcesses: Int
    public var maxProcesses: Int
    /// The queues the workers serve and their concurrency, to judge the backlog.
    public var queues: [String]
    public var concurrency: Int
    /// Seconds between scaling decisions.
    public var scaleInterval: Double = 2
    /// Seconds of spare capacity before one process is retired.
    public var idleBeforeScaleDown: Double = 10
    /// A process that dies within this many seconds of starting counts as a
    /// crash loop: its restart waits `restartBase · 2^n` seconds, at most `restartCap`.
    public var quickExit: Double = 5
    public var restartBase: Double = 0.5
    public var restartCap: Double = 30

    public init(executable: String, arguments: [String], minProcesses: Int, maxProcesses: Int, queues: [String], concurrency: Int) {
        self.executable = executable
        self.arguments = arguments
        self.minProcesses = minProcesses
        self.maxProcesses = maxProcesses
        self.queues = queues
        self.concurrency = concurrency
    }
}

/// Runs N worker processes and keeps them running.
///
/// 1. Starts `minProcesses` children, each in its own process group.
/// 2. Every 100 ms reaps children that exited and restarts them. One that
///    crashed (an exit or a crash signal) soon after it started waits with capped
///    exponential backoff, so a broken handler cannot make it spin; one killed
///    with SIGKILL was stopped from outside (an operator, the OOM killer) and
///    restarts at once.
/// 3. With `minProcesses < maxProcesses`, every `scaleInterval` it reads the
///    queues' counts: a backlog adds a process, spare capacity held for
///    `idleBeforeScaleDown` retires one (SIGTERM, so it drains). Each change is logged.
/// 4. `signal(_:)` forwards SIGTERM/SIGINT to every child (a second signal
///    makes them exit at once); `run()` returns 0 when all have stopped.
public final class Supervisor: Sendable {
    private struct Child {
        var process: ChildProcess?
        var startedAt = ContinuousClock.now
        var crashes = 0
        var nextStart = ContinuousClock.now
        var retiring = false
    }

    private struct State {
        var children: [Child] = []
        var stopping = false
        var idleSince: ContinuousClock.Instant?
        var lastScale = ContinuousClock.now
    }

    public let options: SupervisorOptions
    private let client: SpoolClient
    private let logger: Logger
    private let outage: OutageLog
    private let state = Mutex(State())

    public init(options: SupervisorOptions, configuration: SpoolConfiguration, logger: Logger = Logger(label: "spool.supervisor")) {
        precondition(options.minProcesses >= 1 && options.maxProcesses >= options.minProcesses)
        self.options = options
        self.client = SpoolClient(configuration: configuration, label: "spool.supervisor")
        self.logger = logger
        self.outage = OutageLog(logger: logger)
        state.withLock { s in s.children = (0..<options.minProcesses).map { _ in Child() } }
    }

    /// Pids of the running worker processes.
    public var pids: [Int32] { state.withLock { $0.children.compactMap { $0.process?.pid } } }

    /// Forwards a stop signal to every worker; the first one also stops restarts.
    public func signal(_ number: Int32) {
        let targets = state.withLock { s -> [ChildProcess] in
            s.stopping = true
            return s.children.compactMap(\.process)
        }
        logger.notice("forwarding signal to worker processes", metadata: ["signal": "\(number)", "processes": "\(targets.count)"])
        for child in targets { child.signalProcess(number) }
    }

    public func run() async -> Int32 {
        logger.info(
            "supervisor started",
            metadata: [
                "processes":
                    "\(options.minProcesses == options.maxProcesses ? "\(options.minProcesses)" : "\(options.minProcesses)..\(options.maxProcesses)")"
            ])
        while true {
            if tick() { break }
            if options.maxProcesses > options.minProcesses { await autoscale() }
            try? await Task.sleep(for: .milliseconds(100))
        }
        client.redis.close()
        logger.info("supervisor stopped: every worker process has exited")
        return 0
    }

    /// Reaps and (re)starts children; true once stopping and none is left.
    private func tick() -> Bool {
        state.withLock { s in
            var i = 0
            while i < s.children.count {
                if let process = s.children[i].process, let end = process.poll() {
                    let lived = s.children[i].startedAt.duration(to: .now)
                    s.children[i].process = nil
                    if s.stopping || s.children[i].retiring {
                        logger.info("worker process exited", metadata: ["pid": "\(process.pid)", "status": "\(end)"])
                        s.children.remove(at: i)
                        continue
                    }
                    if end == .signaled(SIGKILL) {
                        s.children[i].crashes = 0
                    } else if lived < .seconds(options.quickExit) {
                        s.children[i].crashes += 1
                    } else {
                        s.children[i].crashes = 0
                    }
                    let delay =
                        s.children[i].crashes == 0 ? 0 : min(options.restartCap, options.restartBase * pow(2, Double(s.children[i].crashes - 1)))
                    s.children[i].nextStart = ContinuousClock.now.advanced(by: .seconds(delay))
                    logger.warning(
                        "worker process died; restarting", metadata: ["pid": "\(process.pid)", "status": "\(end)", "in": "\(Worker.seconds(delay))"])
                }
                if s.stopping && s.children[i].process == nil {
                    s.children.remove(at: i)
                    continue
                }
                if !s.stopping && s.children[i].process == nil && s.children[i].nextStart <= .now {
                    start(&s.children[i])
                }
                i += 1
            }
            return s.stopping && s.children.isEmpty
        }
    }

    private func start(_ child: inout Child) {
        do {
            let process = try ChildProcess.spawn(options.executable, arguments: options.arguments)
            child.process = process
            child.startedAt = .now
            logger.info("worker process started", metadata: ["pid": "\(process.pid)"])
        } catch {
            child.crashes += 1
            child.nextStart = ContinuousClock.now.advanced(by: .seconds(min(options.restartCap, options.restartBase * pow(2, Double(child.crashes)))))
            logger.error("cannot start a worker process", metadata: ["error": "\(error)"])
        }
    }

    /// One scaling decision per `scaleInterval`, from the queues' counts.
    private func autoscale() async {
        let due = state.withLock { s -> Bool in
            guard !s.stopping, s.lastScale.duration(to: .now) >= .seconds(options.scaleInterval) else { return false }
            s.lastScale = .now
            return true
        }
        guard due else { return }
        let counts: [QueueCounts]
        do {
            counts = try await client.counts(options.queues)
            outage.succeeded()
        } catch {
            outage.failed(error)
            return
        }
        let backlog = counts.reduce(0) { $0 + $1.waiting }
        let active = counts.reduce(0) { $0 + $1.active }
        state.withLock { s in
            let serving = s.children.filter { !$0.retiring }.count
            if backlog > 0 && serving < options.maxProcesses {
                s.idleSince = nil
                s.children.append(Child())
                logger.notice("scaling up", metadata: ["from": "\(serving)", "to": "\(serving + 1)", "waiting": "\(backlog)"])
            } else if backlog == 0 && serving > options.minProcesses && active <= (serving - 1) * options.concurrency {
                let since = s.idleSince ?? .now
                s.idleSince = since
                if since.duration(to: .now) >= .seconds(options.idleBeforeScaleDown),
                    let newest = s.children.indices.last(where: { !s.children[$0].retiring && s.children[$0].process != nil })
                {
                    s.children[newest].retiring = true
                    s.children[newest].process?.signalProcess(SIGTERM)
                    s.idleSince = nil
                    logger.notice("scaling down", metadata: ["from": "\(serving)", "to": "\(serving - 1)", "active": "\(active)"])
                }
            } else {
                s.idleSince = nil
            }
        }
    }
}
