import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with posix_spawn.
///
/// Not Foundation's `Process`: on Linux it hands the child the blocked signal
/// mask of the Dispatch thread that spawned it (swift-corelibs-foundation
/// issue 4772), so SIGTERM never reaches the child. Here the child starts with
/// an empty mask and default dispositions, in its own process group, so one
/// signal reaches it and anything it started.
public final class ChildProcess: Sendable {
    /// What a child's standard stream is connected to.
    public enum Stdio: Sendable {
        case inherit
        case null
        /// A pipe; the parent's end is in ``stdin``/``stdout``/``stderr``.
        case pipe
        /// A file opened for appending (created if missing).
        case append(String)
    }

    /// How a child ended.
    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        public var description: String {
            switch self {
            case .exited(let code): "exit status \(code)"
            case .signaled(let signal): "killed by signal \(signal)"
            }
        }
    }

    public let pid: pid_t
    /// The parent's ends of piped streams (-1 when not piped); the caller closes them.
    public let stdin: Int32
    public let stdout: Int32
    public let stderr: Int32
    /// Child descriptor -> the parent's read end, for `extraOutputs`.
    public let extra: [Int32: Int32]

    private init(pid: pid_t, stdin: Int32, stdout: Int32, stderr: Int32, extra: [Int32: Int32]) {
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.extra = extra
    }

    /// Starts `path` with `arguments` (argv[1...]). `environment` nil inherits
    /// ours. Each descriptor in `extraOutputs` (3 or more) is a pipe the child
    /// writes and the parent reads (see ``extra``).
    public static func spawn(
        _ path: String, arguments: [String] = [], environment: [String: String]? = nil,
        stdin: Stdio = .null, stdout: Stdio = .inherit, stderr: Stdio = .inherit, extraOutputs: [Int32] = []
    ) throws(SpawnError) -> ChildProcess {
        spawnLock.lock()
        defer { spawnLock.unlock() }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var all = sigset_t()
        sigfillset(&all)
        sigdelset(&all, SIGKILL)
        sigdelset(&all, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        var parentEnds = [Int32](repeating: -1, count: 3 + extraOutputs.count)
        var childEnds: [Int32] = []
        defer { for fd in childEnds { close(fd) } }
        func fail(_ message: String) -> SpawnError {
            for fd in parentEnds where fd >= 0 { close(fd) }
            return SpawnError(message: message)
        }
        let streams: [(Int32, Stdio)] = [(0, stdin), (1, stdout), (2, stderr)] + extraOutputs.map { ($0, .pipe) }
        for (index, (target, stdio)) in streams.enumerated() {
            switch stdio {
            case .inherit:
                break
            case .null:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case .append(let file):
                posix_spawn_file_actions_addopen(&actions, target, file, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            case .pipe:
                var fds: [Int32] = [-1, -1]
                guard pipe(&fds) == 0 else { throw fail("pipe: \(String(cString: strerror(errno)))") }
                // Close-on-exec, so no other child inherits this pipe (spawns are serialized by `spawnLock`).
                _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
                _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
                let (parent, child) = target == 0 ? (fds[1], fds[0]) : (fds[0], fds[1])
                parentEnds[index] = parent
                childEnds.append(child)
                posix_spawn_file_actions_adddup2(&actions, child, target)
            }
        }

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let status: Int32
        if let environment {
            let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { for p in envp { free(p) } }
            status = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        } else {
            status = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        }
        guard status == 0 else { throw fail("cannot run \(path): \(String(cString: strerror(status)))") }
        var extra: [Int32: Int32] = [:]
        for (i, fd) in extraOutputs.enumerated() { extra[fd] = parentEnds[3 + i] }
        return ChildProcess(pid: pid, stdin: parentEnds[0], stdout: parentEnds[1], stderr: parentEnds[2], extra: extra)
    }

    /// Sends `signal` to the child's whole process group (it leads one).
    public func signal(_ signal: Int32) {
        kill(-pid, signal)
    }

    /// Sends `signal` to the child alone.
    public func signalProcess(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Blocks until the child exits and reaps it.
    public func wait() -> Termination {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return .exited(-1) }
        }
        return Self.decode(status)
    }

    /// Reaps the child if it has exited; nil while it runs.
    public func poll() -> Termination? {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        return r == pid ? Self.decode(status) : nil
    }

    static func decode(_ status: Int32) -> Termination {
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }

    /// The first executable named `name` on PATH, or `name` itself when it has a slash.
    public static func which(_ name: String, path: String? = nil) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let search = path ?? (getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin")
        for dir in search.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}

/// Serializes spawns, so a pipe made for one child is close-on-exec before any
/// other child can be started (glibc's pipe2 is not visible to Swift).
private let spawnLock = NSLock()

public struct SpawnError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
