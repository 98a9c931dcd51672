import ArgumentParser
import Foundation
import Spool

/// `spool cancel ID`: ends a job that has not started.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a job: at once if it has not started, through its worker if it is running.",
        discussion: """
            The job ends in state cancelled and is never retried. A waiting, delayed \
            or failed job is cancelled at once; for a running job its worker is told \
            over pub/sub and stops the handler (a Swift handler sees task \
            cancellation; an exec handler gets SIGTERM, then SIGKILL), which takes \
            about a second. A job that already finished cannot be cancelled (exit \
            status 65).

            Examples:
              spool cancel mail.1hwx2pk2xkt7qmttw --reason "sent by hand"
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
            switch try await connection.client().cancel(id, reason: reason) {
            case .cancelled: print("cancelled \(id)")
            case .requested: print("cancel requested for running job \(id); its worker is stopping it")
            }
        }
    }
}
