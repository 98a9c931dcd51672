import ArgumentParser
import Foundation
import Spool

/// `spool status [ID]`: one job in detail, or every queue's counts.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a job's state, or job counts for every queue.",
        discussion: """
            With a job id: its state, queue, type, attempts, times (ISO 8601, UTC), \
            worker, progress, result and the error of every failed attempt. \
            With --json the job record is printed as one JSON object (times in \
            Unix milliseconds; payload and result as JSON text).

            Without an id: one line per queue with the number of jobs in each \
            state; with --json an array of objects.

            Examples:
              spool status mail.1hwx2pk2xkt7qmttw
              spool status mail.1hwx2pk2xkt7qmttw --json | jq -r .state
              spool status
            """
    )

    @Argument(help: "A job id, as printed by spool enqueue; omit it for queue counts.")
    var id: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        try await reportingErrors {
            let client = try connection.client()
            if let id {
                try checkJobID(id)
                let job = try await client.job(id)
                if json { try Output.printJSON(job) } else { Self.describe(job) }
            } else {
                let counts = try await client.counts(try await client.queues())
                if json { try Output.printJSON(counts) } else { Self.table(counts) }
            }
        }
    }

    static func describe(_ job: Job) {
        var lines: [(String, String)] = [
            ("id", job.id),
            ("state", job.state.rawValue),
            ("queue", job.queue),
            ("type", job.type),
            ("attempts", "\(job.attempts)/\(job.maxAttempts)"),
            ("created", Output.time(job.createdAt)),
        ]
        if let runAt = job.runAt, runAt > 0, job.state == .delayed || job.state == .failed || runAt > job.createdAt {
            lines.append((job.state == .failed ? "retry at" : "run at", Output.time(runAt)))
        }
        if let startedAt = job.startedAt { lines.append(("started", Output.time(startedAt))) }
        if let finishedAt = job.finishedAt { lines.append(("finished", Output.time(finishedAt))) }
        if let startedAt = job.startedAt, let finishedAt = job.finishedAt, finishedAt >= startedAt {
            lines.append(("duration", String(format: "%.3fs", Double(finishedAt - startedAt) / 1000)))
        }
        if let timeoutMs = job.timeoutMs, timeoutMs > 0 { lines.append(("timeout", "\(Double(timeoutMs) / 1000)s")) }
        if let priority = job.priority { lines.append(("priority", "\(priority)")) }
        if let worker = job.worker { lines.append(("worker", worker)) }
        if job.progress != nil || job.progressMessage != nil {
            var text = job.progress.map { String(format: "%g%%", $0) } ?? ""
            if let message = job.progressMessage, !message.isEmpty { text += (text.isEmpty ? "" : " ") + Output.oneLine(message, limit: 200) }
            lines.append(("progress", text))
        }
        if let key = job.idempotencyKey { lines.append(("key", key)) }
        if let callback = job.callback {
            var text = Output.oneLine(callback, limit: 2048)
            switch job.callbackStatus {
            case "delivered"?: text += " (delivered)"
            case let status?: text += " (\(status): " + Output.oneLine(job.callbackError ?? "no error recorded", limit: 200) + ")"
            // Only completed and dead jobs have their end reported.
            case nil: if job.state == .completed || job.state == .dead { text += " (not delivered yet)" }
            }
            lines.append(("callback", text))
        }
        // A cancel's reason, or an error that is no attempt's (a job that
        // stalled without a claim): last_error alone says it.
        if let lastError = job.lastError, !lastError.isEmpty, lastError != job.errors.last?.error {
            lines.append((job.state == .cancelled ? "reason" : "last error", Output.oneLine(lastError, limit: 2000)))
        }
        lines.append(("payload", Output.oneLine(job.payload, limit: 200)))
        if let result = job.result { lines.append(("result", Output.oneLine(result, limit: 2000))) }
        let width = (lines.map(\.0.count) + ["errors".count]).max()! + 2
        for (label, value) in lines {
            print((label + ":").padding(toLength: width, withPad: " ", startingAt: 0) + value)
        }
        if !job.errors.isEmpty {
            print("errors:")
            for e in job.errors {
                let by = e.worker.map { " on \($0)" } ?? ""
                print("  attempt \(e.attempt) at \(Output.time(e.at))\(by): \(Output.oneLine(e.error, limit: 2000))")
            }
        }
    }

    static func table(_ counts: [QueueCounts]) {
        if counts.isEmpty {
            print("no queues yet (a queue appears when a job is first enqueued to it)")
            return
        }
        let states = JobState.allCases
        let header = ["QUEUE"] + states.map { $0.rawValue.uppercased() } + ["PAUSED"]
        let rows = counts.map { c in [c.queue] + states.map { String(c[$0]) } + [c.paused ? "yes" : "no"] }
        Output.printTable(header, rows, numeric: Set(1...states.count))
    }
}
