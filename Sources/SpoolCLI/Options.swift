import ArgumentParser
import Spool

/// Where Redis and the configuration file are: shared by every subcommand.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Redis URL, e.g. redis://127.0.0.1:6379/0 (overrides $SPOOL_REDIS_URL and the config file).",
            valueName: "url"))
    var redis: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Configuration file (default: $SPOOL_CONFIG, else ./config/spool.yaml when present).",
            valueName: "path"))
    var config: String?

    /// The file, then the environment, then `--redis`.
    func load() throws(CLIError) -> SpoolConfiguration {
        var configuration: SpoolConfiguration
        do {
            configuration = try SpoolConfiguration.load(path: config)
        } catch {
            throw CLIError(error)
        }
        if let redis {
            do {
                try configuration.setRedisURL(redis, source: "--redis")
            } catch {
                throw .usage(error.message)
            }
        }
        return configuration
    }

    func client() throws(CLIError) -> SpoolClient {
        SpoolClient(configuration: try load(), label: "spool.cli")
    }
}

extension JobState: ExpressibleByArgument {}
