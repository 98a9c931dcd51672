import ArgumentParser
import Foundation

/// The `spool` command: one subcommand per file in this directory.
@main
struct SpoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool",
        abstract: "A Redis-backed job queue: enqueue jobs, run workers, read job state.",
        discussion: """
            Every subcommand reads the configuration file, then the environment, \
            then its own options:

              --config PATH   else $SPOOL_CONFIG, else ./config/spool.yaml if present
              --redis URL     else $SPOOL_REDIS_URL, else redis.url in the file,
                              else redis://127.0.0.1:6379
            Redis URLs: redis://[user:password@]host[:port][/db] or
            unix:///path/to/socket[?db=N]. Also read from the environment:
            SPOOL_PREFIX, SPOOL_LOG_LEVEL, SPOOL_PAYLOAD_LIMIT.

            Errors print one line on stderr ("spool: <message>") and exit with a \
            sysexits(3) code:
              64  bad arguments, bad queue or type name, bad option value
              65  invalid JSON payload, payload over the limit, job in the wrong state
              66  unknown job id, unreadable payload file
              69  Redis unreachable
              70  unexpected internal or Redis error
              78  configuration error

            Examples:
              id=$(spool enqueue mail send '{"to":"a@example.com"}')
              spool worker --queue mail --exec send='/usr/local/bin/send-mail'
              spool status "$id"
              spool status --json
            """,
        subcommands: [
            EnqueueCommand.self,
            WorkerCommand.self,
            StatusCommand.self,
            JobsCommand.self,
            RetryCommand.self,
            PurgeCommand.self,
            WatchCommand.self,
            EventsCommand.self,
            CancelCommand.self,
            PauseCommand.self,
            ResumeCommand.self,
            CronCommand.self,
            WorkersCommand.self,
            ServeCommand.self,
            BenchCommand.self,
        ]
    )

    /// As argument-parser's `main`, but a usage error is one line on stderr
    /// (`spool: <message> (see 'spool enqueue --help')`, exit 64) like every
    /// other error, and `spool` alone prints its help on stderr and exits 64.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.isEmpty {
            printError(helpMessage())
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        // Swift reads an argument that is not UTF-8 with U+FFFD in place of
        // its bad bytes: a payload would change without a word.
        for index in 1..<Int(CommandLine.argc) {
            guard let argument = CommandLine.unsafeArgv[index], String(validatingCString: argument) == nil else { continue }
            printError("spool: argument \(index) is not valid UTF-8")
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        do {
            var command = try parseAsRoot(arguments)
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            // Help, --version and exit codes thrown after an error was printed.
            if code == .success || error is ExitCode { exit(withError: error) }
            printError("spool: \(usageLine(message(for: error))) (see '\(helpCommand(for: arguments))')")
            Foundation.exit(code.rawValue)
        }
    }

    /// The first line of argument-parser's message, worded like Spool's
    /// own: "Missing expected argument" → "missing expected argument", no
    /// closing full stop.
    static func usageLine(_ message: String) -> String {
        var line = message.split(separator: "\n").first.map(String.init) ?? ""
        if line.hasSuffix(".") { line.removeLast() }
        if let first = line.first, first.isUppercase, line.dropFirst().first?.isLowercase == true {
            line = first.lowercased() + line.dropFirst()
        }
        return line
    }

    /// `spool cron add --help` for `spool cron add …`: the deepest subcommand named.
    static func helpCommand(for arguments: [String]) -> String {
        var words = ["spool"]
        var command: any ParsableCommand.Type = SpoolCommand.self
        for argument in arguments {
            guard let sub = command.configuration.subcommands.first(where: { $0.configuration.commandName == argument }) else { break }
            words.append(argument)
            command = sub
        }
        return (words + ["--help"]).joined(separator: " ")
    }
}
