#if canImport(Glibc)
    import Glibc
#endif

/// Wall-clock time in milliseconds, passed into every script as `now` so tests
/// can move time.
public protocol SpoolClock: Sendable {
    func nowMillis() -> Int
}

/// The system's real-time clock.
public struct SystemClock: SpoolClock {
    public init() {}
    public func nowMillis() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }
}
