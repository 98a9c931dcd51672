import ArgumentParser
import Foundation
import Spool

/// `spool events QUEUE`: tails a queue's events.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print a queue's events as they happen, until interrupted.",
        discussion: """
            One line per event (enqueued, active, progress, completed, failed, \
            dead, stalled, waiting, cancelled), or one JSON object per line with \
            --json: the messages published on the queue's channel, as \
            docs/PROTOCOL.md describes them.

            Examples:
              spool events mail
              spool events reports --json | jq 'select(.event == "dead")'
            """
    )

    @Argument(help: "The queue to follow.")
    var queue: String

    @Flag(help: "Print each event as a JSON line.")
    var json = false

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            try checkName(queue, "queue name")
            let client = try connection.client()
            for try await event in client.events(queue: queue) {
                let text = json ? Watcher.jsonLine(event) : event.id + " " + Watcher.line(event) + "\n"
                FileHandle.standardOutput.write(Data(text.utf8))
            }
        }
    }
}
