import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A `Sendable` handle on one Redis connection, confined to a serial dispatch
/// queue so blocking hiredis calls never run on Swift's cooperative pool.
///
/// The connection is made on first use and made again after it breaks; a call
/// that finds Redis unreachable throws ``RedisError`` with kind `.connection`,
/// and the caller decides how long to wait (see ``Backoff``).
public final class RedisClient: @unchecked Sendable {
    public let url: RedisURL
    public let timeouts: RedisTimeouts
    private let queue: DispatchQueue
    // Touched only on `queue`.
    private var connection: RedisConnection?
    private var lastUsed = ContinuousClock.now

    public init(url: RedisURL, timeouts: RedisTimeouts = RedisTimeouts(), label: String = "spool.redis") {
        self.url = url
        self.timeouts = timeouts
        self.queue = DispatchQueue(label: label)
    }

    /// Runs `body` with the live connection on the client's queue.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try self.onQueue(body) })
            }
        }
    }

    /// The blocking form of ``withConnection(_:)`` for code already on its own thread.
    public func withConnectionSync<T>(_ body: (RedisConnection) throws -> T) throws -> T {
        try queue.sync { try onQueue(body) }
    }

    private func onQueue<T>(_ body: (RedisConnection) throws -> T) throws -> T {
        let conn = try live()
        do {
            return try body(conn)
        } catch let error as RedisError where error.isConnectionLost {
            socket.withLock { $0 = -1 }
            conn.close()
            connection = nil
            throw error
        }
    }

    private func live() throws(RedisError) -> RedisConnection {
        // A connection used in the last 50 ms is trusted without the poll(2)
        // that checks for a peer close: under load that is one syscall per
        // round trip saved, and a close in that window fails one call, which
        // its caller retries.
        let now = ContinuousClock.now
        defer { lastUsed = now }
        if let connection, lastUsed.duration(to: now) < .milliseconds(50) || !connection.peerClosed { return connection }
        connection?.close()
        connection = nil
        socket.withLock { $0 = -1 }
        let fresh = try RedisConnection(url: url, timeouts: timeouts)
        connection = fresh
        socket.withLock { $0 = fresh.fileDescriptor }
        return fresh
    }

    @discardableResult
    public func command(_ arguments: [String]) async throws -> RedisValue {
        try await withConnection { try $0.command(arguments) }
    }

    public func pipeline(_ commands: [[String]]) async throws -> [RedisValue] {
        try await withConnection { try $0.pipeline(commands) }
    }

    @discardableResult
    public func eval(_ script: RedisScript, keys: [String], args: [String]) async throws -> RedisValue {
        try await withConnection { try $0.eval(script, keys: keys, args: args) }
    }

    /// Closes the connection; the next call connects again.
    public func close() {
        queue.sync {
            socket.withLock { $0 = -1 }
            connection?.close()
            connection = nil
        }
    }

    /// Closes the socket from any thread, waking a call blocked on it (which
    /// then fails with a connection error). Used to interrupt a blocking pop at
    /// shutdown without waiting for its timeout.
    public func interrupt() {
        socket.withLock { fd in
            if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    // The live connection's descriptor, readable from any thread for `interrupt`.
    private let socket = Mutex<Int32>(-1)

    // MARK: Shared writes

    /// Sends `calls` in one pipeline that it shares with every other task's
    /// calls made while the previous write was in flight, and returns this
    /// caller's replies in order (error replies in their place, as in
    /// ``RedisConnection/run(_:)``).
    ///
    /// 1. A call appends its batch to `pending`; the first one to find no
    ///    flush scheduled schedules one on the client's queue.
    /// 2. The flush takes everything pending, writes it in one go and reads all
    ///    the replies; calls that arrive meanwhile wait for the next flush,
    ///    which is scheduled behind any other work on the queue.
    ///
    /// So an idle client sends at once (no added latency), and N tasks storing
    /// outcomes at the same moment cost Redis one read instead of N. A broken
    /// connection fails every batch of that flush with the same error.
    public func send(_ calls: [RedisCall]) async throws -> [RedisValue] {
        if calls.isEmpty { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            let schedule = batches.withLock { state in
                state.pending.append(PendingBatch(calls: calls, continuation: continuation))
                if state.scheduled { return false }
                state.scheduled = true
                return true
            }
            if schedule { queue.async { self.flushBatches() } }
        }
    }

    private struct PendingBatch {
        let calls: [RedisCall]
        let continuation: CheckedContinuation<[RedisValue], any Error>
    }

    private struct BatchState {
        var pending: [PendingBatch] = []
        var scheduled = false
    }

    private let batches = Mutex(BatchState())

    // On `queue`.
    private func flushBatches() {
        let taken = batches.withLock { state in
            defer { state.pending = [] }
            return state.pending
        }
        do {
            let replies = try onQueue { try $0.run(taken.flatMap(\.calls)) }
            var start = 0
            for batch in taken {
                batch.continuation.resume(returning: Array(replies[start..<start + batch.calls.count]))
                start += batch.calls.count
            }
        } catch {
            for batch in taken { batch.continuation.resume(throwing: error) }
        }
        // Calls that came during this flush go in the next one, queued behind
        // other work on the connection so they cannot starve it.
        let again = batches.withLock { state in
            if state.pending.isEmpty { state.scheduled = false }
            return state.scheduled
        }
        if again { queue.async { self.flushBatches() } }
    }
}

/// Capped exponential backoff with jitter, for reconnect loops.
public struct Backoff: Sendable {
    public var base: Double
    public var cap: Double
    public private(set) var attempt = 0

    public init(base: Double = 0.05, cap: Double = 2) {
        self.base = base
        self.cap = cap
    }

    /// The next delay in seconds: `min(cap, base · 2^attempt)`, jittered to 50–100 %.
    public mutating func next() -> Double {
        let exp = min(cap, base * Double(1 << min(attempt, 30)))
        attempt += 1
        return exp * Double.random(in: 0.5...1)
    }

    public mutating func reset() { attempt = 0 }
}
