import ArgumentParser
import Foundation
import Spool

/// `spool pause QUEUE`: workers stop claiming from a queue.
struct PauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Pause a queue: workers stop claiming from it; jobs keep arriving; running jobs go on.",
        discussion: """
            Takes effect at the next claim of every worker (well under a second). \
            `spool resume QUEUE` undoes it and wakes idle workers at once.

            Examples:
              spool pause reports
              spool status        # PAUSED column
            """
    )

    @Argument(help: "The queue to pause.")
    var queue: String

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            try checkName(queue, "queue name")
            let changed = try await connection.client().pause(queue)
            print(changed ? "paused \(queue)" : "\(queue) was already paused")
        }
    }
}

/// `spool resume QUEUE`: workers claim from a paused queue again.
struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Resume a paused queue; idle workers are woken at once.",
        discussion: """
            Examples:
              spool resume reports
            """
    )

    @Argument(help: "The queue to resume.")
    var queue: String

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            try checkName(queue, "queue name")
            let changed = try await connection.client().resume(queue)
            print(changed ? "resumed \(queue)" : "\(queue) was not paused")
        }
    }
}
