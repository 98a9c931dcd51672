import Foundation
import Synchronization

/// Jobs finished per minute, from two samples of a queue's stats counters.
struct Throughput: Encodable, Sendable, Equatable {
    /// Completed jobs per minute; absent until two samples a second apart exist.
    var completedPerMinute: Double?
    /// Failed attempts (retried or dead) per minute.
    var failedPerMinute: Double?
    /// Seconds between the two samples the rates come from (at most 60).
    var windowSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case completedPerMinute = "completed_per_minute"
        case failedPerMinute = "failed_per_minute"
        case windowSeconds = "window_seconds"
    }
}

/// Keeps recent samples of each queue's `completed` and `failed + dead`
/// counters and turns them into rates.
///
/// 1. Every read of a queue's stats (requests, metrics scrapes, and the
///    server's own sampling every few seconds) records a sample.
/// 2. The rate compares the newest sample with the oldest one of the last 60
///    seconds, if they are at least a second apart.
/// 3. A counter that went down (Redis lost its data) starts over.
final class ThroughputTracker: Sendable {
    private struct Sample {
        let time: Double
        let completed: Int
        let failed: Int
    }

    static let window: Double = 60
    private let samples = Mutex<[String: [Sample]]>([:])

    /// Records `stats` of `queue` taken at `time` (seconds) and returns the rates.
    func record(_ queue: String, _ stats: QueueResource.Stats, at time: Double = Date().timeIntervalSince1970) -> Throughput {
        let sample = Sample(time: time, completed: stats.completed, failed: stats.failed + stats.dead)
        return samples.withLock { all in
            var list = all[queue] ?? []
            if let last = list.last, sample.completed < last.completed || sample.failed < last.failed { list = [] }
            list.append(sample)
            list.removeAll { $0.time < time - Self.window }
            // One sample per second is plenty to keep.
            if list.count > 2, list[list.count - 2].time > time - 1 { list.remove(at: list.count - 2) }
            all[queue] = list
            guard let first = list.first, time - first.time >= 1 else { return Throughput() }
            let minutes = (time - first.time) / 60
            return Throughput(
                completedPerMinute: Double(sample.completed - first.completed) / minutes,
                failedPerMinute: Double(sample.failed - first.failed) / minutes,
                windowSeconds: time - first.time)
        }
    }
}
