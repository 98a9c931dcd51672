import Foundation

/// The scenarios `spool bench` knows, in the order it runs them.
enum BenchScenario: String, CaseIterable, Sendable {
    case enqueueSingle = "enqueue-single"
    case enqueueConcurrent = "enqueue-concurrent"
    case enqueueBulk = "enqueue-bulk"
    case drain1 = "drain-1"
    case drain2 = "drain-2"
    case drainSweep = "drain-sweep"
    case steadyState = "steady-state"
    case latency
    case memory
    case workerRSS = "worker-rss"
    case progress
    case idleFleet = "idle-fleet"

    /// The concurrencies drain-sweep tries, each with one worker process.
    static let sweep = [1, 4, 16, 64]

    /// Progress scenario: jobs run at once, reports per job, and the pause
    /// between reports (over the reporter's 50 ms coalescing, so each is stored).
    static let progressJobs = 10
    static let progressReports = 20
    static let progressPause = Duration.milliseconds(60)

    /// Whether the scenario polls a counter while it measures (and so needs
    /// the cost of a poll, see `BenchContext.calibratePolling`).
    var polls: Bool {
        switch self {
        case .drain1, .drain2, .drainSweep, .steadyState, .workerRSS, .progress: true
        case .enqueueSingle, .enqueueConcurrent, .enqueueBulk, .latency, .memory, .idleFleet: false
        }
    }

    /// One line for the report, with this run's numbers filled in.
    func summary(_ p: BenchParameters) -> String {
        switch self {
        case .enqueueSingle: "\(p.jobs) jobs enqueued one at a time on one connection"
        case .enqueueConcurrent: "\(p.jobs) jobs enqueued one at a time by \(p.producers) producers, one connection each"
        case .enqueueBulk: "\(p.jobs) jobs enqueued in pipelined batches of \(p.batch)"
        case .drain1: "\(p.jobs) waiting no-op jobs drained by 1 worker process at concurrency \(p.concurrency)"
        case .drain2: "\(p.jobs) waiting no-op jobs drained by 2 worker processes at concurrency \(p.concurrency) each"
        case .drainSweep:
            "\(p.sweepJobs) waiting no-op jobs drained by 1 worker process at concurrency \(Self.sweep.map(String.init).joined(separator: ", "))"
        case .steadyState:
            "\(p.jobs) jobs enqueued one at a time by \(p.producers) producers while 2 worker processes (concurrency \(p.concurrency)) run them; costs cover enqueue, claim and complete"
        case .latency: "enqueue to handler start on an idle queue, one in-process worker, \(p.samples) jobs one after another"
        case .memory:
            "Redis used_memory growth per waiting job, \(p.jobs) jobs on a paused queue; overhead = per job minus the \(p.payloadBytes)-byte payload"
        case .workerRSS: "peak (VmHWM), current (VmRSS) and own (RssAnon, without shared library pages) memory of a worker process at concurrency \(p.concurrency) after draining \(p.jobs) jobs"
        case .progress:
            "\(Self.progressJobs) jobs reporting progress \(Self.progressReports) times each, against the same jobs without progress"
        case .idleFleet: "Redis CPU over \(Self.format(p.idleWindow)) s with \(p.fleet) idle worker processes (concurrency \(p.concurrency)) against none"
        }
    }

    private static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }
}

/// What the bench was asked to do; checked before anything runs.
struct BenchParameters: Sendable, Encodable {
    var runs: Int
    var jobs: Int
    var producers: Int
    var batch: Int
    var concurrency: Int
    var samples: Int
    var fleet: Int
    var idleWindow: Double
    var payloadBytes: Int

    /// Fewer jobs per sweep step: four steps, and concurrency 1 drains slowly.
    var sweepJobs: Int { max(1, jobs / 2) }
}

/// One figure a scenario reports: its JSON key, its table label and how many
/// decimals the table shows.
struct BenchMetric: Sendable, Hashable {
    let key: String
    let label: String
    let decimals: Int

    init(_ key: String, _ label: String, decimals: Int) {
        self.key = key
        self.label = label
        self.decimals = decimals
    }

    static let jobsPerSecond = BenchMetric("jobs_per_s", "jobs/s", decimals: 0)
    static let roundTripsPerJob = BenchMetric("round_trips_per_job", "Redis round trips/job", decimals: 2)
    static let commandsPerJob = BenchMetric("commands_per_job", "Redis commands/job", decimals: 2)
    static let cpuPerJob = BenchMetric("redis_cpu_us_per_job", "Redis CPU µs/job", decimals: 1)
    static let workerCPUPerJob = BenchMetric("worker_cpu_us_per_job", "worker CPU µs/job", decimals: 1)
}

/// The figures of one run of one scenario, in the order the table shows them.
struct BenchSample: Sendable {
    private(set) var metrics: [(metric: BenchMetric, value: Double)] = []
    /// Command name -> calls per job (throughput scenarios only).
    var commandCallsPerJob: [String: Double] = [:]

    /// Adds a figure; one that is not finite (nothing to divide by) is left
    /// out rather than written as a number it is not.
    mutating func add(_ metric: BenchMetric, _ value: Double) {
        if value.isFinite { metrics.append((metric, value)) }
    }

    /// The four figures every throughput scenario reports.
    static func throughput(jobs: Int, elapsed: Duration, redis: RedisDelta) -> BenchSample {
        var sample = BenchSample()
        let n = Double(jobs)
        sample.add(.jobsPerSecond, n / elapsed.inSeconds)
        sample.add(.roundTripsPerJob, Double(redis.roundTrips) / n)
        sample.add(.commandsPerJob, Double(redis.commands) / n)
        sample.add(.cpuPerJob, redis.cpuMicros / n)
        sample.commandCallsPerJob = redis.calls.mapValues { Double($0) / n }
        return sample
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// The duration in milliseconds, as a Double.
    var inMilliseconds: Double { inSeconds * 1000 }
}
