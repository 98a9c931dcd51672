import ArgumentParser
import Foundation
import Spool

#if canImport(Glibc)
    import Glibc
#endif

/// `spool watch ID`: follows one job live and exits with its outcome.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Follow a job live: a progress bar on a terminal, one line per event otherwise.",
        discussion: """
            Shows the job's current state first, then every event until it ends. \
            On a terminal it draws a progress bar with the handler's message; \
            when stdout is not a terminal it prints one plain line per event; \
            --json prints each event as one JSON object per line.

            Exit status: 0 completed, 1 dead (the last error is printed on \
            stderr), 2 cancelled; 66 unknown job (or one purged while \
            watched), 69 Redis unreachable.

            Examples:
              spool watch reports.1hwx2pk2xkt7qmttw
              spool watch "$id" --json | jq .percent
            """
    )

    @Argument(help: "The job's id.")
    var id: String

    @Flag(help: "Print each event as a JSON line.")
    var json = false

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func run() async throws {
        var outcome = Watcher.Outcome.completed
        try await reportingErrors {
            try checkJobID(id)
            let client = try connection.client()
            outcome = try await Watcher(json: json, output: .standardOutput).watch(id, client: client)
        }
        if outcome != .completed { throw ExitCode(outcome.exitCode) }
    }
}

/// Draws a job's events; shared by `watch` and `enqueue --wait`.
struct Watcher {
    enum Outcome: Equatable {
        case completed, dead(String), cancelled(String)

        var exitCode: Int32 {
            switch self {
            case .completed: 0
            case .dead: 1
            case .cancelled: 2
            }
        }
    }

    enum Style { case bar, lines, json }

    let style: Style
    let output: FileHandle

    init(json: Bool, output: FileHandle) {
        self.output = output
        self.style = json ? .json : (isatty(output.fileDescriptor) == 1 ? .bar : .lines)
    }

    func watch(_ id: String, client: SpoolClient) async throws -> Outcome {
        var last: JobEvent?
        var percent = 0.0
        var message = ""
        do {
            for try await event in client.events(job: id) {
                last = event
                if let p = event.percent { percent = p }
                if event.event == "progress" || event.event == "snapshot" { message = event.message ?? message }
                switch style {
                case .json: write(Self.jsonLine(event))
                case .lines: write(Self.line(event) + "\n")
                case .bar: write("\r\u{1B}[2K" + Self.bar(event, percent: percent, message: message))
                }
            }
        } catch {
            // The error goes on a line of its own, not after the bar.
            if style == .bar, last != nil { write("\n") }
            throw error
        }
        if style == .bar { write("\n") }
        guard let last, let state = last.state else {
            throw CLIError(.software, "watch: the event stream ended without a final state")
        }
        let error = last.error ?? last.job?.lastError ?? "no error recorded"
        switch state {
        case .completed: return .completed
        case .dead:
            printError("spool: job \(id) is dead: \(Output.oneLine(error, limit: 2000))")
            return .dead(error)
        case .cancelled:
            printError("spool: job \(id) was cancelled" + (last.error.map { ": " + Output.oneLine($0, limit: 2000) } ?? ""))
            return .cancelled(error)
        default:
            throw CLIError(.software, "watch: the event stream ended in state \(state.rawValue)")
        }
    }

    private func write(_ text: String) {
        output.write(Data(text.utf8))
    }

    static func jsonLine(_ event: JobEvent) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: (try? encoder.encode(event)) ?? Data("{}".utf8), as: UTF8.self) + "\n"
    }

    /// `12:00:01.250 progress active 40% resizing`
    static func line(_ event: JobEvent) -> String {
        var parts = [event.at.map { Output.time($0) } ?? "-", event.event, event.state?.rawValue ?? "-"]
        if let attempt = event.attempt, event.event != "progress" { parts.append("attempt \(attempt)") }
        if let percent = event.percent { parts.append(Self.percentText(percent)) }
        if let message = event.message, !message.isEmpty { parts.append(Output.oneLine(message, limit: 200)) }
        if let error = event.error, event.state != .completed { parts.append("error: " + Output.oneLine(error, limit: 200)) }
        return parts.joined(separator: " ")
    }

    /// `[##########----------]  50% resizing (active)`
    static func bar(_ event: JobEvent, percent: Double, message: String) -> String {
        let width = 30
        let filled = min(width, max(0, Int((percent / 100 * Double(width)).rounded())))
        let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
        let state = event.state?.rawValue ?? event.event
        let text = message.isEmpty ? "" : " " + Output.oneLine(message, limit: 60)
        return "\(bar) \(Self.percentText(percent))\(text) (\(state))"
    }

    static func percentText(_ percent: Double) -> String {
        percent == percent.rounded() ? String(format: "%3.0f%%", percent) : String(format: "%.1f%%", percent)
    }
}
