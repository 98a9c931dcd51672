import ArgumentParser
import Foundation
import Spool

/// `spool cron …`: repeating jobs.
struct CronCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cron",
        abstract: "Repeating jobs: list, add and remove schedules.",
        discussion: """
            A schedule enqueues one job per tick, however many worker processes \
            run: the workers serving its queue fire due ticks, and each tick's job \
            carries the idempotency key cron:NAME:TICK, so it is made once. Ticks \
            missed while no worker ran are skipped (one job, then the next tick).

            Schedules: cron expressions with 5 fields (minute hour day month \
            weekday) or 6 (seconds first), macros (@hourly, @daily, @weekly, \
            @monthly, @yearly, @minutely), or intervals (every 30s, every 5m, \
            every 2h). Times are UTC.

            Examples:
              spool cron add nightly-report reports build "0 2 * * *" --payload '{"kind":"daily"}'
              spool cron add heartbeat ops ping "every 30s"
              spool cron list
              spool cron remove reports nightly-report
            """,
        subcommands: [CronListCommand.self, CronAddCommand.self, CronRemoveCommand.self]
    )
}

struct CronListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List every schedule and its next run.")

    @Option(help: ArgumentHelp("Only this queue.", valueName: "queue"))
    var queue: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            if let queue { try checkName(queue, "queue name") }
            let entries = try await connection.client().cronEntries(queues: queue.map { [$0] })
            if json {
                try Output.printJSON(entries)
                return
            }
            let rows = entries.map { e in
                [e.queue, e.name, e.type, e.schedule, e.nextRun.map { Output.time($0) } ?? "-", Output.oneLine(e.payload, limit: 40)]
            }
            Output.printTable(["QUEUE", "NAME", "TYPE", "SCHEDULE", "NEXT RUN (UTC)", "PAYLOAD"], rows)
        }
    }
}

struct CronAddCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Add or replace a schedule.")

    @Argument(help: "The schedule's name, unique within its queue.")
    var name: String

    @Argument(help: "The queue its jobs go to.")
    var queue: String

    @Argument(help: "The job type.")
    var type: String

    @Argument(help: "When: a cron expression, a macro such as @hourly, or 'every 30s'.")
    var schedule: String

    @Option(help: ArgumentHelp("JSON payload of every job (default: {}).", valueName: "json"))
    var payload: String = "{}"

    @Option(help: ArgumentHelp("Attempts per job (default: the queue's max_attempts).", valueName: "n"))
    var maxAttempts: Int?

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            let entry = CronEntry(name: name, queue: queue, type: type, payload: payload, schedule: schedule, maxAttempts: maxAttempts)
            let stored = try await connection.client().addCron(entry)
            print("cron \(stored.name) on \(stored.queue): \(stored.schedule), next run \(stored.nextRun.map { Output.time($0) } ?? "-")")
        }
    }
}

struct CronRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a schedule.")

    @Argument(help: "The schedule's queue.")
    var queue: String

    @Argument(help: "The schedule's name.")
    var name: String

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            guard try await connection.client().removeCron(queue: queue, name: name) else {
                throw CLIError(.noInput, "cron remove: no schedule \(name) on queue \(queue)")
            }
            print("removed cron \(name) from \(queue)")
        }
    }
}
