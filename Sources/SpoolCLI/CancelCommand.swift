import ArgumentParser
import Foundation
import Spool

/// `spool cancel ID`: ends a job that has not started.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a job that has not started (waiting, delayed or awaiting a retry).",
        discussion: """
            The job ends in state cancelled and is never retried. A job that is \
            running or already finished cannot be cancelled (exit status 65).

            Examples:
              spool cancel mail.018f3a2b4c5d9e8f7a6b5c --reason "sent by hand"
            """
    )

    @Argument(help: "The job's id.")
    var id: String

    @Option(help: ArgumentHelp("Why, kept on the job as its last error.", valueName: "text"))
    var reason: String = ""

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            try checkJobID(id)
            try await connection.client().cancel(id, reason: reason)
            print("cancelled \(id)")
        }
    }
}
