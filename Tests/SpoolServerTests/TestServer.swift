import Foundation
import Hiredis
import Logging
import Spool
import SpoolServer
import SpoolTestSupport
import Synchronization

/// A `SpoolServer` running in this process on an ephemeral loopback port,
/// talked to over a real socket. `stop()` cancels it.
final class TestServer: Sendable {
    let port: Int
    let configuration: SpoolConfiguration
    let log: CapturedLog
    private let task: Task<Void, any Error>

    private init(port: Int, configuration: SpoolConfiguration, log: CapturedLog, task: Task<Void, any Error>) {
        self.port = port
        self.configuration = configuration
        self.log = log
        self.task = task
    }

    /// Starts a server against `url` (the shared Redis by default) and waits
    /// until it listens.
    static func start(
        url: RedisURL? = nil, prefix: String = "spool", _ adjust: (inout ServerOptions) -> Void = { _ in }
    ) async throws -> TestServer {
        let configuration = testConfiguration(url: try url ?? SharedRedis.url) { $0.prefix = prefix }
        var options = ServerOptions()
        options.port = 0
        options.keepAliveSeconds = 1
        adjust(&options)
        let log = CapturedLog()
        let server = try SpoolServer(configuration: configuration, options: options, logger: log.logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let task = Task {
            try await server.run { _, port in
                continuation.yield(port)
                continuation.finish()
            }
        }
        let port = try await withThrowingTaskGroup(of: Int?.self) { group in
            group.addTask {
                for await port in ports { return port }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: .seconds(20))
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        guard let port, port > 0 else {
            task.cancel()
            throw TestSupportError("the server did not start listening within 20 s")
        }
        return TestServer(port: port, configuration: configuration, log: log, task: task)
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }

    func get(_ path: String) async throws -> HTTPResult { try await HTTPTestClient.get(port: port, path) }

    func post(_ path: String, _ json: String? = nil, token: String? = nil) async throws -> HTTPResult {
        try await HTTPTestClient.post(port: port, path, json: json, token: token)
    }

    var client: SpoolClient { SpoolClient(configuration: configuration) }
}

/// Log lines a server wrote, kept to check what they say (and do not say).
final class CapturedLog: Sendable {
    private let lines = Mutex<[String]>([])

    var logger: Logger {
        var logger = Logger(label: "spool.serve.test") { label in Handler(log: self) }
        logger.logLevel = .debug
        return logger
    }

    var all: [String] { lines.withLock { $0 } }

    fileprivate func append(_ line: String) { lines.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            log.append("\(event.level) \(event.message) \(all)")
        }
    }
}
