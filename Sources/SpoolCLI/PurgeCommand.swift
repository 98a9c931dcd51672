import ArgumentParser
import Foundation
import Spool

/// `spool purge QUEUE --state STATE`: deletes every job of a queue in one state.
struct PurgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Delete every job of a queue in one state.",
        discussion: """
            The jobs and their records are removed for good. Active jobs are held \
            by workers and cannot be purged (exit status 64).

            Examples:
              spool purge mail --state dead
              spool purge mail --state completed --json
            """
    )

    @Argument(help: "Queue name.")
    var queue: String

    @Option(help: ArgumentHelp("Job state (any but active).", valueName: "state"))
    var state: JobState

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            let client = try connection.client()
            try checkName(queue, "queue name")
            if state == .active {
                throw CLIError.usage("purge: active jobs are held by workers and cannot be purged; stop the workers or cancel the jobs")
            }
            let count = try await client.purge(queue, state: state)
            if json {
                try Output.printJSON(PurgeResult(queue: queue, state: state, deleted: count))
            } else {
                print("deleted \(count) \(state.rawValue) job\(count == 1 ? "" : "s") from queue \(queue)")
            }
        }
    }
}

private struct PurgeResult: Encodable {
    var queue: String
    var state: JobState
    var deleted: Int
}
