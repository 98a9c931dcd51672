import ArgumentParser
import Foundation
import Spool

/// `spool retry ID` or `spool retry --all-dead QUEUE`.
struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Send a dead job, or every dead job of a queue, back to waiting.",
        discussion: """
            A retried job starts again with fresh attempts; the errors of its \
            earlier attempts are kept. Retrying a job that is not dead fails with \
            exit status 65.

            Examples:
              spool retry mail.1hwx2pk2xkt7qmttw
              spool retry --all-dead mail
            """
    )

    @Argument(help: "The id of a dead job.")
    var id: String?

    @Option(name: .customLong("all-dead"), help: ArgumentHelp("Retry every dead job of this queue.", valueName: "queue"))
    var allDeadQueue: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func validate() throws {
        if (id == nil) == (allDeadQueue == nil) {
            throw ValidationError("Give either a job id or --all-dead QUEUE.")
        }
    }

    func run() async throws {
        try await reportingErrors {
            let client = try connection.client()
            let queue: String
            let count: Int
            if let id {
                try checkJobID(id)
                try await client.retry(id)
                queue = JobID.queue(of: id) ?? ""
                count = 1
            } else {
                queue = allDeadQueue ?? ""
                try checkName(queue, "queue name")
                count = try await client.retryAllDead(queue)
            }
            if json {
                try Output.printJSON(RetryResult(queue: queue, retried: count))
            } else {
                print("retried \(count) dead job\(count == 1 ? "" : "s") on queue \(queue)")
            }
        }
    }
}

private struct RetryResult: Encodable {
    var queue: String
    var retried: Int
}
