import ArgumentParser

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
}
