import Foundation
import Hiredis
import Spool

#if canImport(Glibc)
    import Glibc
#endif

/// A redis-server the tests start and stop themselves, by pid, on a free
/// loopback port, with its data in a fresh temporary directory.
public final class TestRedis: @unchecked Sendable {
    public let port: Int
    public let directory: String
    public let appendOnly: Bool
    private var process: ChildProcess?
    private let lock = NSLock()

    public var url: RedisURL { RedisURL(address: .tcp(host: "127.0.0.1", port: port)) }
    public var urlString: String { "redis://127.0.0.1:\(port)/0" }
    /// The server also listens on this unix socket.
    public var socketPath: String { directory + "/redis.sock" }

    /// Starts a server; `appendOnly` turns AOF on so a restart keeps the data.
    public init(appendOnly: Bool = true) throws {
        self.port = try Self.freePort()
        self.directory = NSTemporaryDirectory() + "spool-redis-\(getpid())-\(port)-\(UInt32.random(in: 0...UInt32.max))"
        self.appendOnly = appendOnly
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try start()
    }

    deinit { stop() }

    public var pid: Int32 { lock.withLock { process?.pid ?? 0 } }

    public func start() throws {
        let arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--dir", directory, "--save", "",
            "--appendonly", appendOnly ? "yes" : "no", "--appendfsync", "everysec",
            "--hash-max-listpack-value", "1024", "--daemonize", "no", "--loglevel", "warning",
            "--logfile", directory + "/redis.log", "--unixsocket", socketPath, "--unixsocketperm", "700",
        ]
        let p = try ChildProcess.spawn(try Self.which("redis-server"), arguments: arguments, stdout: .null, stderr: .null)
        lock.withLock { process = p }
        try waitForPing(deadline: Date().addingTimeInterval(10))
    }

    /// SHUTDOWN-like stop: SIGTERM makes redis write its AOF and exit.
    public func stop() {
        let p = lock.withLock { () -> ChildProcess? in
            defer { process = nil }
            return process
        }
        guard let p else { return }
        p.signalProcess(SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while p.poll() == nil {
            if Date() > deadline {
                p.signalProcess(SIGKILL)
                _ = p.wait()
                return
            }
            usleep(5000)
        }
    }

    /// SIGKILL: the server dies without writing anything more.
    public func crash() {
        let p = lock.withLock { () -> ChildProcess? in
            defer { process = nil }
            return process
        }
        p?.signalProcess(SIGKILL)
        _ = p?.wait()
    }

    /// Sends SIGTERM and returns at once (for exit handlers).
    func signalStop() {
        lock.withLock { process }?.signalProcess(SIGTERM)
    }

    /// Stops gracefully and starts again on the same port and data directory.
    public func restart(downFor seconds: Double = 0) throws {
        stop()
        if seconds > 0 { Thread.sleep(forTimeInterval: seconds) }
        try start()
    }

    /// A fresh connection (the caller owns it).
    public func connect() throws -> RedisConnection { try RedisConnection(url: url) }

    /// Calls of `command` this server has run, from INFO commandstats (commands
    /// called from Lua included): on a private server, the test's own.
    public func calls(_ command: String) throws -> Int {
        let info = try connect().command(["INFO", "commandstats"]).string ?? ""
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_\(command):") }),
            let field = line.split(separator: ",").first(where: { $0.contains("calls=") })
        else { return 0 }
        return Int(field.split(separator: "=").last ?? "") ?? 0
    }

    private func waitForPing(deadline: Date) throws {
        while Date() < deadline {
            if let conn = try? RedisConnection(url: url, timeouts: RedisTimeouts(connect: 0.5, command: 2)),
                (try? conn.command(["PING"])) == .status("PONG")
            {
                return
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw TestSupportError("redis-server on port \(port) did not answer PING; see \(directory)/redis.log")
    }

    /// Asks the kernel for a free loopback port.
    public static func freePort() throws -> Int {
        let (fd, port) = try boundSocket()
        close(fd)
        return port
    }

    /// A loopback port that refuses connections for as long as the tests run:
    /// bound by a socket that never listens, so no other test's server can
    /// take it (a port from ``freePort()`` can be reused by the time it is
    /// dialled).
    public static let closedPort: Int = {
        guard let (_, port) = try? boundSocket() else { fatalError("cannot bind a loopback port") }
        return port
    }()

    private static func boundSocket() throws -> (fd: Int32, port: Int) {
        // Close-on-exec: the processes the tests start must not hold it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else {
            close(fd)
            throw TestSupportError("cannot bind a loopback port")
        }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    public static func which(_ name: String) throws -> String {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/bin:/usr/sbin"
        guard let found = ChildProcess.which(name, path: path) else {
            throw TestSupportError("\(name) is not installed (make test installs it)")
        }
        return found
    }
}

/// The server most tests share: `SPOOL_TEST_REDIS_URL` when the Makefile
/// started one, else one started here for the whole test process.
public enum SharedRedis {
    nonisolated(unsafe) private static var started: TestRedis?
    private static let lock = NSLock()

    public static var urlString: String {
        get throws {
            if let url = ProcessInfo.processInfo.environment["SPOOL_TEST_REDIS_URL"], !url.isEmpty { return url }
            return try lock.withLock {
                if let started { return started.urlString }
                let server = try TestRedis(appendOnly: false)
                started = server
                // Stop it, by pid, when the test process exits.
                atexit { SharedRedis.shutdown() }
                return server.urlString
            }
        }
    }

    public static var url: RedisURL {
        get throws { try RedisURL(parsing: try urlString) }
    }

    static func shutdown() {
        // Runs in atexit: no waiting, no locks another thread may hold.
        started?.signalStop()
    }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
