import Foundation
import Hiredis
import Spool

/// A queue name no other test uses.
public func uniqueQueue(_ base: String = "t") -> String {
    "\(base)-\(UInt64.random(in: 0...UInt64.max) % 1_000_000_000_000)"
}

/// One job's part of enqueue.lua's ARGV: id, type, payload, run_at,
/// max_attempts, the count of `options`, then `options` (field/value pairs).
public func enqueueJobArgs(_ id: String, type: String = "t", payload: String = "{}", runAt: Int = 0, maxAttempts: Int = 3, options: [String] = [])
    -> [String]
{
    [id, type, payload, String(runAt), String(maxAttempts), String(options.count)] + options
}

/// Polls `condition` every 10 ms until it holds or `timeout` seconds pass.
/// Returns whether it held, so `#expect(await eventually { … })` reads naturally.
public func eventually(timeout: Double = 10, _ condition: @Sendable () async throws -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if (try? await condition()) == true { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return (try? await condition()) == true
}

/// A configuration pointing at `url` with quick timings for tests.
public func testConfiguration(url: RedisURL, _ adjust: (inout SpoolConfiguration) -> Void = { _ in }) -> SpoolConfiguration {
    var config = SpoolConfiguration()
    config.redisURL = url
    config.timeouts = RedisTimeouts(connect: 1, command: 3)
    config.blockSeconds = 0.5
    config.reapInterval = 0.1
    config.promoteInterval = 0.02
    config.defaults.backoffBase = 0.05
    config.defaults.backoffCap = 0.2
    adjust(&config)
    return config
}

/// Runs a worker in the background; `stop()` stops it and waits for `run()`.
public final class RunningWorker: Sendable {
    public let worker: Worker
    private let task: Task<Void, Never>

    public init(_ worker: Worker) {
        self.worker = worker
        self.task = Task { await worker.run() }
    }

    public func stop() async {
        worker.stop()
        await task.value
    }
}

/// Runs blocking work (process control, sleeps) on its own thread, so it never
/// holds one of the cooperative pool's few threads.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
