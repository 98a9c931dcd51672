import ArgumentParser
import Foundation
import Spool

/// `spool workers`: the live worker registry.
struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "List live worker processes: host, pid, queues, running jobs, counts, last heartbeat.",
        discussion: """
            Every worker process registers itself and refreshes its entry \
            every 3 s; an entry expires 10 s after its worker stops \
            heartbeating (killed, hung or cut off), and a worker that stops \
            cleanly removes its own.

            Examples:
              spool workers
              spool workers --json | jq '.[].pid'
            """
    )

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            let client = try connection.client()
            let workers = try await client.workers()
            if json {
                try Output.printJSON(workers)
                return
            }
            let now = client.clock.nowMillis()
            let rows = workers.map { w in
                [
                    w.id, String(w.pid), w.queues.joined(separator: ","), "\(w.jobs.count)/\(w.concurrency)",
                    String(w.processed), String(w.failed), Output.age(since: w.startedAt, now: now), Output.age(since: w.lastSeen, now: now) + " ago",
                ]
            }
            Output.printTable(["WORKER", "PID", "QUEUES", "BUSY", "PROCESSED", "FAILED", "UP", "SEEN"], rows, numeric: [1, 3, 4, 5])
        }
    }
}
