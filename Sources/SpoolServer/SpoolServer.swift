import Foundation
import Hummingbird
import Logging
import Metrics
import ServiceLifecycle
import Spool

/// `spool serve`: the HTTP status reader.
///
/// 1. JSON for queues, jobs and workers, read from Redis through a few
///    pooled clients (hiredis calls run on their own queues, never on the
///    event loop).
/// 2. Server-Sent Events for one job (snapshot first, ends after the terminal
///    event), one queue, or several queues (the dashboard's).
/// 3. Enqueue, cancel, retry, pause and resume for services that would rather
///    not speak Redis, behind a bearer token when one is set.
/// 4. The dashboard at `/`, `/metrics` for Prometheus, `/healthz`, and the
///    OpenAPI document at `/openapi.json`.
/// Every error is JSON with a stable code; Redis down is 503 and the server
/// recovers by itself when Redis is back.
public struct SpoolServer: Sendable {
    public let configuration: SpoolConfiguration
    public let options: ServerOptions
    let logger: Logger
    let metrics: QueueMetrics
    let reader: StatusReader

    /// Checks `options` (a non-loopback host needs a token) and prepares the
    /// server; nothing connects until `run`.
    public init(configuration: SpoolConfiguration, options: ServerOptions, logger: Logger = Logger(label: "spool.serve")) throws(ServerOptionsError) {
        try options.validate()
        self.configuration = configuration
        self.options = options
        self.logger = logger
        self.metrics = QueueMetrics()
        self.reader = StatusReader(pool: ClientPool(configuration: configuration, size: options.connections), throughput: ThroughputTracker())
    }

    /// The swift-metrics factory that writes into the registry `/metrics`
    /// serves. Bootstrap `MetricsSystem` with it (once per process) to add
    /// Hummingbird's request metrics.
    public var metricsFactory: any MetricsFactory { metrics.factory }

    /// Runs until the task is cancelled or an enclosing service group shuts
    /// down gracefully. `onListening` gets the bound host and port (the real
    /// one when `options.port` is 0).
    public func run(onListening: @escaping @Sendable (_ host: String, _ port: Int) async -> Void = { _, _ in }) async throws {
        try await application(onListening: onListening).run()
    }

    /// Runs until SIGTERM or SIGINT, then closes event streams and stops.
    public func runUntilSignalled(onListening: @escaping @Sendable (_ host: String, _ port: Int) async -> Void = { _, _ in }) async throws {
        try await application(onListening: onListening).runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    func application(onListening: @escaping @Sendable (String, Int) async -> Void) -> some ApplicationProtocol {
        let redactor = Redactor(secrets: [configuration.redisURL.password, options.token])
        let routes = Routes(server: self, redactor: redactor)
        let router = Router(context: BasicRequestContext.self)
        // Outermost first: request metrics see the final status of every response.
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: ErrorMiddleware(routes: routes.table, redactor: redactor, metrics: metrics, logger: logger))
        routes.register(on: router)
        let host = options.host
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: options.port), serverName: "spool"),
            services: [ThroughputSampler(reader: reader)],
            onServerRunning: { channel in await onListening(host, channel.localAddress?.port ?? 0) },
            logger: logger)
    }
}

/// Samples every queue's stats every few seconds, so throughput has two
/// samples to compare even when nobody asked recently.
struct ThroughputSampler: Service {
    let reader: StatusReader
    var interval: Duration = .seconds(5)

    func run() async {
        // Ends with the server: the sleep throws when shutdown cancels it.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                _ = try? await reader.queues()
                try await Task.sleep(for: interval)
            }
        }
    }
}

extension SpoolServer {
    /// Makes swift-metrics (Hummingbird's request metrics among them) write
    /// into this server's registry. Call it once per process, before `run`.
    public func bootstrapMetricsSystem() {
        MetricsSystem.bootstrap(metricsFactory)
    }
}
