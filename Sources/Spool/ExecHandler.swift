import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a job as a child process: the way to handle jobs without writing Swift.
///
/// 1. The command is an argv (split on whitespace, never given to a shell);
///    a bare name is looked up on PATH.
/// 2. The payload goes to stdin; SPOOL_JOB_ID, SPOOL_QUEUE, SPOOL_JOB_TYPE,
///    SPOOL_ATTEMPT, SPOOL_MAX_ATTEMPTS, SPOOL_WORKER_ID (host:pid:random) and
///    SPOOL_PROGRESS_FD are set in the environment.
/// 3. Exit status 0 completes the job with stdout as its result: stored as is
///    when it is JSON, else as a JSON string. Anything else fails the attempt
///    with the exit status (or signal) and the tail of stderr.
/// 4. Progress: lines written to descriptor 3 (also named by SPOOL_PROGRESS_FD)
///    of the form `progress PERCENT [MESSAGE]` become `progress(PERCENT, MESSAGE)`
///    calls; other lines there are ignored.
/// 5. When the attempt is cancelled (its timeout, a cancel request, or the end
///    of a shutdown's grace period), the child's process group gets SIGTERM,
///    then SIGKILL after `killGrace` seconds.
public struct ExecHandler: Sendable {
    public let argv: [String]
    /// Bytes of stdout kept as the result; more fails the attempt.
    public var stdoutLimit = 4 << 20
    /// Bytes from the end of stderr kept in the error.
    public var stderrTail = 2048
    /// Seconds between SIGTERM and SIGKILL.
    public var killGrace: Double = 2

    public init(argv: [String]) {
        precondition(!argv.isEmpty, "an exec handler needs a command")
        self.argv = argv
    }

    /// The child's descriptor for progress lines.
    public static let progressDescriptor: Int32 = 3

    /// Parses `progress PERCENT [MESSAGE]` lines until the pipe closes.
    static func readProgress(_ fd: Int32, into context: JobContext) {
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            for byte in buffer[0..<n] {
                if byte == UInt8(ascii: "\n") {
                    if let (percent, message) = parseProgress(String(decoding: line, as: UTF8.self)) { context.progress(percent, message) }
                    line.removeAll(keepingCapacity: true)
                } else if line.count < 4096 {
                    line.append(byte)
                }
            }
        }
        if let (percent, message) = parseProgress(String(decoding: line, as: UTF8.self)) { context.progress(percent, message) }
        close(fd)
    }

    /// `progress 40 resizing` -> (40, "resizing"); nil for any other line.
    static func parseProgress(_ line: String) -> (Double, String?)? {
        let parts = line.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0] == "progress", let percent = Double(parts[1]), percent.isFinite else { return nil }
        return (percent, parts.count == 3 ? String(parts[2]) : nil)
    }

    /// Splits a command line on spaces and tabs. No quoting, no expansion: what
    /// you write is what the program gets.
    public static func split(_ command: String) -> [String] {
        command.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
    }

    public var handler: JobHandler {
        let me = self
        return { context in try await me.run(context) }
    }

    public func run(_ context: JobContext) async throws -> String? {
        let child = Child()
        let grace = killGrace
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String?, any Error>) in
                // Its own thread: it blocks in waitpid, and the global queues'
                // pool is only as wide as the CPU count.
                Thread.detachNewThread {
                    continuation.resume(with: Result { try self.runBlocking(context, child: child) })
                }
            }
        } onCancel: {
            child.cancelled.store(true, ordering: .relaxed)
            let p = child.pid.withLock { $0 }
            if p > 0 {
                // The child leads its own process group: signal everything it started.
                kill(-p, SIGTERM)
                DispatchQueue.global().asyncAfter(deadline: .now() + grace) {
                    // Only if that same child still runs: `pid` is cleared once it is reaped.
                    child.pid.withLock { current in if current == p { kill(-p, SIGKILL) } }
                }
            }
        }
    }

    /// The running child, shared with the cancellation handler.
    private final class Child: Sendable {
        let pid = Mutex<Int32>(0)
        let cancelled = Atomic<Bool>(false)
    }

    private func runBlocking(_ context: JobContext, child: Child) throws -> String? {
        guard let executable = ChildProcess.which(argv[0]) else {
            throw JobFailure("cannot run \(argv[0]): not found or not executable")
        }
        var environment = ProcessInfo.processInfo.environment
        environment["SPOOL_JOB_ID"] = context.id
        environment["SPOOL_QUEUE"] = context.queue
        environment["SPOOL_JOB_TYPE"] = context.type
        environment["SPOOL_ATTEMPT"] = String(context.attempt)
        environment["SPOOL_MAX_ATTEMPTS"] = String(context.maxAttempts)
        environment["SPOOL_WORKER_ID"] = context.workerID
        environment["SPOOL_PROGRESS_FD"] = String(Self.progressDescriptor)
        let process: ChildProcess
        do {
            process = try ChildProcess.spawn(
                executable, arguments: Array(argv.dropFirst()), environment: environment,
                stdin: .pipe, stdout: .pipe, stderr: .pipe, extraOutputs: [Self.progressDescriptor])
        } catch {
            throw JobFailure(error.message)
        }
        child.pid.withLock { $0 = process.pid }
        if child.cancelled.load(ordering: .relaxed) { process.signal(SIGTERM) }

        let readers = DispatchGroup()
        let out = Capture(limit: stdoutLimit, keepTail: false)
        let err = Capture(limit: stderrTail, keepTail: true)
        for (capture, fd) in [(out, process.stdout), (err, process.stderr)] {
            readers.enter()
            Thread.detachNewThread {
                capture.drain(fd)
                readers.leave()
            }
        }
        let progressFD = process.extra[Self.progressDescriptor] ?? -1
        readers.enter()
        Thread.detachNewThread {
            Self.readProgress(progressFD, into: context)
            readers.leave()
        }
        // A child that does not read its stdin gets EPIPE, not SIGPIPE (ignored by the worker).
        let input = Array(context.payload.utf8)
        input.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(process.stdin, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                offset += n
            }
        }
        close(process.stdin)

        let termination = process.wait()
        child.pid.withLock { $0 = 0 }
        // Grandchildren may hold the pipes open; do not wait on them for long.
        // Each reader closes its own descriptor when its pipe ends.
        _ = readers.wait(timeout: .now() + 1)

        switch termination {
        case .signaled(let signal):
            let why = child.cancelled.load(ordering: .relaxed) ? " (stopped: attempt cancelled or timed out)" : ""
            throw JobFailure("killed by signal \(signal)\(why)" + err.suffix)
        case .exited(let status) where status != 0:
            throw JobFailure("exit status \(status)" + err.suffix)
        case .exited:
            break
        }
        if out.overflowed { throw JobFailure("stdout is larger than \(stdoutLimit) bytes") }
        let text = out.text.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty { return nil }
        return JSONValidator.isValid(text) ? text : JSONCheck.quote(text)
    }

}

/// Reads a pipe to its end, keeping the first (or last) `limit` bytes, and
/// closes it. Readable from another thread at any time.
private final class Capture: Sendable {
    private let limit: Int
    private let keepTail: Bool
    private let state = Mutex<(bytes: [UInt8], overflowed: Bool)>(([], false))

    init(limit: Int, keepTail: Bool) {
        self.limit = limit
        self.keepTail = keepTail
    }

    func drain(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            state.withLock { s in
                s.bytes.append(contentsOf: buffer[0..<n])
                if s.bytes.count > limit {
                    s.overflowed = true
                    if keepTail { s.bytes.removeFirst(s.bytes.count - limit) } else { s.bytes.removeLast(s.bytes.count - limit) }
                }
            }
        }
        close(fd)
    }

    var overflowed: Bool { state.withLock { $0.overflowed } }
    var text: String { state.withLock { String(decoding: $0.bytes, as: UTF8.self) } }

    /// ": <stderr tail>" or "" when stderr was empty.
    var suffix: String {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? "" : ": " + (overflowed ? "…" : "") + t
    }
}
