import Foundation
import Spool

#if canImport(Glibc)
    import Glibc
#endif

/// The `spool` executable built beside the test bundle.
public enum SpoolBinary {
    public static var path: String {
        get throws {
            let bundleDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            var candidates = [bundleDir.appendingPathComponent("spool").path]
            // `swift test` runs the bundle from inside .build/<triple>/debug.
            if bundleDir.lastPathComponent.hasSuffix(".xctest") {
                candidates.append(bundleDir.deletingLastPathComponent().appendingPathComponent("spool").path)
            }
            let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            candidates.append(repo.appendingPathComponent(".build/debug/spool").path)
            for candidate in candidates where access(candidate, X_OK) == 0 { return candidate }
            throw TestSupportError("the spool binary is not built (looked in \(candidates)); run `swift build` first")
        }
    }
}

/// A finished CLI run.
public struct CommandResult: Sendable {
    public let termination: ChildProcess.Termination
    public let stdout: String
    public let stderr: String
    public var status: Int32? {
        if case .exited(let code) = termination { return code }
        return nil
    }
}

/// A config file with quick timings for process tests, and the environment that uses it.
public func testEnvironment(redis: String, extraYAML: String = "") throws -> [String: String] {
    let path = NSTemporaryDirectory() + "spool-test-\(UUID().uuidString).yaml"
    let yaml = """
        redis:
          command_timeout: 3
        block_seconds: 0.5
        reap_interval: 0.1
        promote_interval: 0.05
        defaults:
          backoff_base: 0.05
          backoff_cap: 0.2
        \(extraYAML)
        """
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    var environment = ProcessInfo.processInfo.environment
    environment["SPOOL_CONFIG"] = path
    environment["SPOOL_REDIS_URL"] = redis
    environment.removeValue(forKey: "SPOOL_PREFIX")
    return environment
}

/// Runs `spool ARGS…` to completion and captures its output.
public func runSpool(
    _ arguments: [String], environment: [String: String], stdin: String? = nil, binaryOverride: String? = nil
) async throws -> CommandResult {
    let binary = try binaryOverride ?? SpoolBinary.path
    return try await offPool {
        let child = try ChildProcess.spawn(binary, arguments: arguments, environment: environment, stdin: .pipe, stdout: .pipe, stderr: .pipe)
        let out = PipeReader(child.stdout)
        let err = PipeReader(child.stderr)
        if let stdin { _ = stdin.withCString { write(child.stdin, $0, strlen($0)) } }
        close(child.stdin)
        let termination = child.wait()
        return CommandResult(termination: termination, stdout: out.finish(), stderr: err.finish())
    }
}

/// A long-running `spool` process (a worker), its stderr in a log file.
public final class SpoolProcess: Sendable {
    public let child: ChildProcess
    public let logFile: String

    public init(_ arguments: [String], environment: [String: String]) throws {
        logFile = NSTemporaryDirectory() + "spool-proc-\(UUID().uuidString).log"
        child = try ChildProcess.spawn(
            try SpoolBinary.path, arguments: arguments, environment: environment, stdout: .append(logFile), stderr: .append(logFile))
    }

    public var pid: pid_t { child.pid }
    public var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    /// Signals the worker process itself (not its exec children).
    public func signal(_ signal: Int32) { child.signalProcess(signal) }

    /// Waits for the process to exit, up to `timeout` seconds; nil if it did not.
    public func waitForExit(timeout: Double) async throws -> ChildProcess.Termination? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let t = child.poll() { return t }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// SIGKILL and reap, for cleanup.
    public func kill() {
        if child.poll() == nil {
            child.signalProcess(SIGKILL)
            _ = child.wait()
        }
    }
}

/// Drains a pipe on its own thread.
final class PipeReader: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)
    private let fd: Int32

    init(_ fd: Int32) {
        self.fd = fd
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                self.data.append(contentsOf: buffer[0..<n])
            }
            self.done.signal()
        }
    }

    func finish() -> String {
        done.wait()
        close(fd)
        return String(decoding: data, as: UTF8.self)
    }
}

/// Pids whose parent is `pid`, read from /proc.
public func childPids(of pid: pid_t) -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var children: [pid_t] = []
    for entry in entries {
        guard let candidate = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { continue }
        // After "pid (comm)": state, ppid, …
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        if fields.count > 1, pid_t(fields[1]) == pid { children.append(candidate) }
    }
    return children.sorted()
}

/// Whether a process exists (and is not a zombie).
public func isAlive(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
}

/// Writes a shell script and returns the command that runs it, `/bin/sh PATH`.
/// Running it through sh rather than exec'ing the file avoids ETXTBSY: a child
/// spawned by another thread at the moment of writing may hold the file open.
public func shellScript(_ body: String) throws -> String {
    let path = NSTemporaryDirectory() + "spool-script-\(UUID().uuidString).sh"
    try body.write(toFile: path, atomically: true, encoding: .utf8)
    return "/bin/sh \(path)"
}
