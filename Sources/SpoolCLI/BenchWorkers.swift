import Dispatch
import Foundation
import Spool
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How the bench starts `spool worker` processes: this very binary, with the
/// Redis and configuration file the bench itself uses.
struct WorkerLauncher: Sendable {
    let executable: String
    let environment: [String: String]

    init(connection: ConnectionOptions) {
        executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var environment = ProcessInfo.processInfo.environment
        if let redis = connection.redis { environment["SPOOL_REDIS_URL"] = redis }
        if let config = connection.config { environment["SPOOL_CONFIG"] = config }
        self.environment = environment
    }
}

/// A group of `spool worker` processes serving one queue.
///
/// 1. `start` spawns them, each logging to its own file in a temporary
///    directory (their stderr would garble the bench's output).
/// 2. `waitUntilRegistered` waits for each pid to appear in the worker
///    registry, then lets the claim loops settle, so process start-up is
///    never part of a measurement.
/// 3. `stop` sends SIGTERM to each pid, waits, and SIGKILLs any that linger.
///    Every pid is also listed in `BenchChildren`, so a bench that is
///    interrupted takes its workers with it.
final class BenchWorkers: Sendable {
    let queue: String
    let children: [ChildProcess]
    private let logs: [String]
    private let directory: String
    private let ended = Mutex<[pid_t: ChildProcess.Termination]>([:])

    private init(queue: String, children: [ChildProcess], logs: [String], directory: String) {
        self.queue = queue
        self.children = children
        self.logs = logs
        self.directory = directory
    }

    static func start(_ count: Int, queue: String, concurrency: Int, launcher: WorkerLauncher) throws -> BenchWorkers {
        let directory = NSTemporaryDirectory() + "spool-bench-\(JobID.randomHex(bytes: 4))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let arguments = ["worker", "--queue", queue, "--concurrency", String(concurrency), "--log-level", "warning"]
        var children: [ChildProcess] = []
        var logs: [String] = []
        do {
            for i in 0..<count {
                let log = "\(directory)/worker-\(i).log"
                let child = try ChildProcess.spawn(
                    launcher.executable, arguments: arguments, environment: launcher.environment, stdout: .append(log), stderr: .append(log))
                BenchChildren.add(child, logs: directory)
                children.append(child)
                logs.append(log)
            }
        } catch {
            killNow(children)
            for child in children { BenchChildren.remove(child, logs: directory) }
            try? FileManager.default.removeItem(atPath: directory)
            throw CLIError(.software, "cannot start a worker process: \(error)")
        }
        return BenchWorkers(queue: queue, children: children, logs: logs, directory: directory)
    }

    /// Waits until every process is in the registry, then `settle` more.
    func waitUntilRegistered(_ client: SpoolClient, settle: Duration) async throws {
        let pids = Set(children.map { Int($0.pid) })
        let deadline = ContinuousClock.now.advanced(by: .seconds(20 + children.count / 2))
        while true {
            try checkRunning()
            let registered = Set(try await client.workers().filter { $0.queues == [queue] }.map(\.pid))
            if pids.isSubset(of: registered) { break }
            guard ContinuousClock.now < deadline else {
                throw CLIError(.software, "only \(pids.intersection(registered).count) of \(pids.count) worker processes registered in time")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: settle)
    }

    /// Throws, with the end of its log, when a worker process has exited.
    func checkRunning() throws {
        for (child, log) in zip(children, logs) {
            guard let termination = termination(of: child) else { continue }
            throw CLIError(.software, "worker process \(child.pid) ended (\(termination)) while the bench needed it: \(Self.lastLine(of: log))")
        }
    }

    /// Peak and current resident memory of one worker, and the part of it that
    /// is the process's own (RssAnon: not pages of shared libraries and of the
    /// binary, which every worker on the machine shares), in kB (/proc/PID/status).
    func memory(of index: Int) throws -> (hwm: Int, rss: Int, anon: Int) {
        let pid = children[index].pid
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else {
            throw CLIError(.software, "cannot read /proc/\(pid)/status")
        }
        func kB(_ field: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return nil }
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        guard let hwm = kB("VmHWM"), let rss = kB("VmRSS"), let anon = kB("RssAnon") else {
            throw CLIError(.software, "/proc/\(pid)/status has no VmHWM, VmRSS or RssAnon")
        }
        return (hwm, rss, anon)
    }

    /// CPU time (user + system) the worker processes have used so far, in µs,
    /// from /proc/PID/stat (clock ticks, usually 10 ms each).
    func cpuMicros() throws -> Double {
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        return try children.reduce(0) { total, child in
            // The fields after the command name, which is in parentheses and may hold spaces.
            guard let text = try? String(contentsOfFile: "/proc/\(child.pid)/stat", encoding: .utf8),
                let close = text.lastIndex(of: ")")
            else { throw CLIError(.software, "cannot read /proc/\(child.pid)/stat") }
            let fields = text[text.index(after: close)...].split(separator: " ")
            guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
                throw CLIError(.software, "/proc/\(child.pid)/stat has no utime and stime")
            }
            return total + (user + system) / tick * 1e6
        }
    }

    /// SIGTERM to each pid; after `grace` seconds SIGKILL to any still running.
    func stop(grace: Duration = .seconds(10)) async {
        for child in children where termination(of: child) == nil { child.signalProcess(SIGTERM) }
        let deadline = ContinuousClock.now.advanced(by: grace)
        while children.contains(where: { termination(of: $0) == nil }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        killNow(children.filter { termination(of: $0) == nil })
        for child in children { BenchChildren.remove(child, logs: directory) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// How a child ended, remembered: a pid can be reaped only once.
    private func termination(of child: ChildProcess) -> ChildProcess.Termination? {
        ended.withLock { ended in
            if let known = ended[child.pid] { return known }
            let now = child.poll()
            if let now { ended[child.pid] = now }
            return now
        }
    }

    private static func lastLine(of log: String) -> String {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").last.map(String.init) ?? "(its log is empty)"
    }
}

/// SIGKILL and reap: for processes that must go now.
private func killNow(_ children: [ChildProcess]) {
    for child in children {
        child.signalProcess(SIGKILL)
        _ = child.wait()
    }
}

/// Every worker process the bench has running, and their log directories.
/// The workers lead their own process groups, so a Ctrl-C at the terminal
/// does not reach them: the bench's own SIGINT/SIGTERM handler kills them by
/// pid and removes their logs before it exits.
enum BenchChildren {
    private static let live = Mutex<(children: [pid_t: ChildProcess], logs: Set<String>)>(([:], []))

    static func add(_ child: ChildProcess, logs: String) {
        live.withLock {
            $0.children[child.pid] = child
            $0.logs.insert(logs)
        }
    }

    static func remove(_ child: ChildProcess, logs: String) {
        live.withLock {
            $0.children.removeValue(forKey: child.pid)
            $0.logs.remove(logs)
        }
    }

    /// Installs the handlers; keep the returned sources alive while benchmarking.
    static func killOnSignal() -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let (children, logs) = live.withLock { (Array($0.children.values), $0.logs) }
                if !children.isEmpty { printError("spool: bench: interrupted; stopping \(children.count) worker processes") }
                killNow(children)
                for directory in logs { try? FileManager.default.removeItem(atPath: directory) }
                exit(128 + number)
            }
            source.resume()
            return source
        }
    }
}
