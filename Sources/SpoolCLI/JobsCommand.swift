import ArgumentParser
import Foundation
import Spool

/// `spool jobs QUEUE --state STATE`: lists jobs in one state.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List a queue's jobs in one state.",
        discussion: """
            Order: waiting in the order workers will take them (higher \
            priority first, then oldest), active soonest lease deadline first, \
            delayed and failed (retry scheduled) soonest due first, completed, dead and cancelled most \
            recently finished first. The text form shows id, type, attempts, age \
            and the last error; --json prints an array of job records.

            Examples:
              spool jobs mail --state dead
              spool jobs mail --state waiting --limit 20
              spool jobs mail --state dead --json | jq -r '.[].id'
            """
    )

    @Argument(help: "Queue name.")
    var queue: String

    @Option(help: ArgumentHelp("Job state.", valueName: "state"))
    var state: JobState

    @Option(help: ArgumentHelp("Jobs listed at most.", valueName: "n"))
    var limit: Int = 100

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            let client = try connection.client()
            try checkName(queue, "queue name")
            guard (1...100_000).contains(limit) else { throw CLIError.usage("--limit must be between 1 and 100000") }
            let jobs = try await client.jobs(queue, state: state, limit: limit)
            if json {
                try Output.printJSON(jobs)
            } else if jobs.isEmpty {
                print("no \(state.rawValue) jobs on queue \(queue)")
            } else {
                let now = client.clock.nowMillis()
                let rows = jobs.map { job in
                    [
                        job.id, job.state.rawValue, job.type, "\(job.attempts)/\(job.maxAttempts)",
                        Output.age(since: job.createdAt, now: now),
                        // last_error: the latest attempt's error, or a cancel's reason.
                        Output.oneLine(job.lastError ?? job.errors.last?.error ?? "", limit: 80),
                    ]
                }
                Output.printTable(["ID", "STATE", "TYPE", "ATTEMPTS", "AGE", "LAST ERROR"], rows, numeric: [3, 4])
            }
        }
    }
}
