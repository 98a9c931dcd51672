import ArgumentParser
import Foundation
import Logging
import Spool
import SpoolServer

/// `spool serve`: the HTTP status reader (JSON API, event streams, dashboard,
/// metrics), until SIGTERM or SIGINT.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the status reader over HTTP: JSON API, live events, dashboard, metrics.",
        discussion: """
            Endpoints (docs/openapi.json, also served at /openapi.json):
              GET  /                           the dashboard
              GET  /healthz                    200 when Redis answers, else 503
              GET  /queues, /queues/Q          counts per state, stats, throughput
              GET  /queues/Q/jobs?state=S&offset=N&limit=N
              GET  /jobs/ID, /workers
              GET  /jobs/ID/events, /queues/Q/events   Server-Sent Events
              GET  /metrics                    Prometheus text
              POST /queues/Q/jobs, /queues/Q/jobs/batch, /jobs/ID/cancel,
                   /jobs/ID/retry, /queues/Q/dead/retry, /queues/Q/pause,
                   /queues/Q/resume

            POST requests need "Authorization: Bearer TOKEN" when a token is \
            set (--token or, better, $SPOOL_TOKEN: arguments are visible to \
            other users in ps). Binding an address other than loopback \
            without a token is refused. Once listening, one line is printed \
            on stdout: "spool serve: listening on http://HOST:PORT" (with \
            --port 0, the port the kernel chose).

            Examples:
              spool serve
              SPOOL_TOKEN=$(openssl rand -hex 16) spool serve --host 0.0.0.0 --port 8080
              curl -s localhost:8080/queues | jq .
            """
    )

    @Option(help: "Address to listen on; anything but loopback needs a token.")
    var host = "127.0.0.1"

    @Option(help: "TCP port; 0 picks a free one (printed once listening).")
    var port = 8080

    @Option(help: ArgumentHelp("Bearer token for POST requests (default: $SPOOL_TOKEN).", valueName: "token"))
    var token: String?

    @Option(help: ArgumentHelp("Largest request body in bytes; larger ones get 413.", valueName: "bytes"))
    var maxBodyBytes = 1024 * 1024

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            let configuration = try connection.load()
            var options = ServerOptions()
            options.host = host
            options.port = port
            options.token = token ?? ProcessInfo.processInfo.environment["SPOOL_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            options.maxBodyBytes = maxBodyBytes
            guard let level = Logger.Level(rawValue: configuration.logLevel.lowercased()) else {
                throw CLIError(.config, "log_level \"\(configuration.logLevel)\" is not one of trace, debug, info, notice, warning, error, critical")
            }
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let server: SpoolServer
            do {
                server = try SpoolServer(configuration: configuration, options: options, logger: Logger(label: "spool.serve"))
            } catch {
                throw CLIError.usage("serve: \(error)")
            }
            server.bootstrapMetricsSystem()
            do {
                try await server.runUntilSignalled { host, port in
                    let shown = host.contains(":") ? "[\(host)]" : host
                    FileHandle.standardOutput.write(Data("spool serve: listening on http://\(shown):\(port)\n".utf8))
                }
            } catch {
                throw CLIError(.unavailable, "serve: cannot serve on \(host):\(port): \(error)")
            }
        }
    }
}
