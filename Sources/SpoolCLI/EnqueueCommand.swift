import ArgumentParser
import Foundation
import Spool

/// `spool enqueue QUEUE TYPE [--payload …]`: adds one job and prints its id.
struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Add a job to a queue and print its id.",
        discussion: """
            The job's id alone is printed on stdout, so a script can keep it. The \
            payload is any JSON value (default {}); a worker's handler for TYPE \
            receives it (an exec handler on its stdin).

            Examples:
              spool enqueue mail send '{"to":"a@example.com"}'
              spool enqueue reports build --payload @report.json --timeout 600
              generate-payload | spool enqueue images resize --payload -
              spool enqueue mail digest --delay 3600 --max-attempts 3
              spool enqueue mail digest --at 2030-01-01T09:00:00Z
              spool enqueue reports build '{"month":"2030-01"}' --wait
            """
    )

    @Argument(help: "Queue name ([A-Za-z0-9._-], at most 64 characters).")
    var queue: String

    @Argument(help: "Job type: the handler name a worker maps to code or a command.")
    var type: String

    @Argument(help: ArgumentHelp("The payload, as --payload takes it (JSON, @FILE or -).", valueName: "payload"))
    var positionalPayload: String?

    @Option(help: ArgumentHelp("JSON payload; @FILE reads a file, - reads stdin (default: {}).", valueName: "json|@file|-"))
    var payload: String?

    @Option(help: ArgumentHelp("Attempts before the job is dead (default: the queue's max_attempts).", valueName: "n"))
    var maxAttempts: Int?

    @Option(help: ArgumentHelp("Seconds a handler may run per attempt (default: the queue's job_timeout).", valueName: "seconds"))
    var timeout: Double?

    @Option(help: ArgumentHelp("Run the job this many seconds from now.", valueName: "seconds"))
    var delay: Double?

    @Option(help: ArgumentHelp("Run the job at this time (RFC 3339, e.g. 2030-01-01T09:00:00Z).", valueName: "time"))
    var at: String?

    // Unconditional: `--priority -10` is a value, not an unknown option.
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("high, normal, low, or -100…100; higher runs first (default: normal = 0).", valueName: "priority"))
    var priority: String?

    @Option(help: ArgumentHelp(
        "Idempotency key: enqueueing again with the same key prints the first job's id while it is kept.", valueName: "key"))
    var key: String?

    @Option(help: ArgumentHelp("URL that gets the job's final state as a JSON POST (http or https).", valueName: "url"))
    var callback: String?

    @Flag(help: "After printing the id, follow the job on stderr and exit with its outcome (as spool watch).")
    var wait = false

    @OptionGroup(title: "Connection Options") var connection: ConnectionOptions

    func validate() throws {
        if positionalPayload != nil && payload != nil { throw ValidationError("Give the payload either as an argument or with --payload, not both.") }
        if delay != nil && at != nil { throw ValidationError("--delay and --at cannot be used together.") }
    }

    func run() async throws {
        var outcome = Watcher.Outcome.completed
        try await reportingErrors {
            let client = try connection.client()
            let text = try Self.readPayload(payload ?? positionalPayload ?? "{}")
            var request = JobRequest(queue: queue, type: type, payload: text, maxAttempts: maxAttempts, timeout: timeout)
            request.runAt = try runAt(now: client.clock.nowMillis())
            if let priority {
                guard let value = JobPriority.parse(priority) else {
                    throw CLIError.usage("--priority \"\(priority)\" must be high, normal, low or a number from -100 to 100")
                }
                request.priority = value
            }
            request.idempotencyKey = key
            request.callback = callback
            let id = try await client.enqueue(request)
            print(id)
            if wait {
                fflush(nil)
                outcome = try await Watcher(json: false, output: .standardError).watch(id, client: client)
            }
        }
        if outcome != .completed { throw ExitCode(outcome.exitCode) }
    }

    /// Unix ms for `--delay` or `--at`; nil runs the job now.
    private func runAt(now: Int) throws(CLIError) -> Int? {
        if let delay {
            guard delay >= 0, delay <= 10 * 365 * 86400 else { throw .usage("--delay must be between 0 and 315360000 seconds") }
            return delay == 0 ? nil : now + Int((delay * 1000).rounded())
        }
        if let at {
            guard let date = Self.parseTime(at) else {
                throw .usage("--at \"\(at)\" is not an RFC 3339 time such as 2030-01-01T09:00:00Z")
            }
            return Int((date.timeIntervalSince1970 * 1000).rounded())
        }
        return nil
    }

    static func parseTime(_ text: String) -> Date? {
        let plain = Date.ISO8601FormatStyle()
        let fractional = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        guard let date = (try? fractional.parse(text)) ?? (try? plain.parse(text)), fieldsInRange(text) else { return nil }
        return date
    }

    /// Whether `YYYY-MM-DDTHH:MM:SS…` names a real day and time: the parser
    /// rolls February 31 over into March and 25:00 into the next day.
    static func fieldsInRange(_ text: String) -> Bool {
        let digits = Array(text.utf8.prefix(19))
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= digits.count else { return nil }
            var n = 0
            for b in digits[range] {
                guard b &- 0x30 < 10 else { return nil }
                n = n * 10 + Int(b - 0x30)
            }
            return n
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
            let minute = number(14..<16), let second = number(17..<19), (1...12).contains(month)
        else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return (1...days).contains(day) && hour < 24 && minute < 60 && second < 60
    }

    /// The payload text for `JSON`, `@FILE` or `-` (stdin).
    static func readPayload(_ argument: String) throws(CLIError) -> String {
        let data: Data
        if argument == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else if argument.hasPrefix("@") {
            let path = String(argument.dropFirst())
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                let reason = (error as NSError).localizedFailureReason ?? "not found or not readable"
                throw CLIError(.noInput, "cannot read payload file \(path): \(reason)")
            }
        } else {
            return argument
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIError(.dataError, "payload is not valid UTF-8")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
