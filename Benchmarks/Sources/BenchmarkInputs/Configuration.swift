import Benchmark

extension Benchmark.Configuration {
    /// What every Spool micro-benchmark records: wall time per operation,
    /// mallocs and throughput, over samples of 1,000 operations, for 2 s.
    public static var spool: Benchmark.Configuration {
        .init(
            metrics: [.wallClock, .mallocCountTotal, .throughput],
            timeUnits: .nanoseconds,
            scalingFactor: .kilo,
            maxDuration: .seconds(2)
        )
    }
}
