import Foundation
import Logging

/// Delayed-job promotion, the reaper and retention, guarded fleet-wide.
extension Worker {

    /// Reaping every `reapInterval` from every worker; promotion with due cron
    /// ticks about every `promoteInterval`, and trimming about every
    /// `reapInterval`, fleet-wide per queue.
    ///
    /// The guard keys let one sweep per interval through however many workers
    /// try. The reaper is tried by every worker every interval, because
    /// invariant 3 promises redelivery within the visibility timeout plus one
    /// reaper interval. Promotion and trimming promise no such bound, so that
    /// their tries do not grow with the fleet each worker tries every interval
    /// × (workers serving the queue), jittered to 50–150 %: the fleet as a whole
    /// tries about once per interval.
    func housekeepingLoop() async {
        let promoteMs = Int(configuration.promoteInterval * 1000)
        let reapMs = Int(configuration.reapInterval * 1000)
        var nextPromote: [String: ContinuousClock.Instant] = [:]
        var nextReap: [String: ContinuousClock.Instant] = [:]
        var nextTrim: [String: ContinuousClock.Instant] = [:]
        func later(_ interval: Double, _ queue: String) -> ContinuousClock.Instant {
            .now + .seconds(interval * Double(queuePeers(queue)) * Double.random(in: 0.5...1.5))
        }
        while !Task.isCancelled {
            do {
                for queue in options.queues where nextPromote[queue].map({ $0 <= .now }) ?? true {
                    nextPromote[queue] = later(configuration.promoteInterval, queue)
                    try await client.promote(queue, guardMs: promoteMs)
                    do {
                        try await client.fireDueCron(queue)
                    } catch  where error.code != .unavailable {
                        logger.warning("cron tick failed", metadata: ["queue": "\(queue)", "error": "\(error)"])
                    }
                }
                for queue in options.queues where nextReap[queue].map({ $0 <= .now }) ?? true {
                    nextReap[queue] = .now + .seconds(configuration.reapInterval)
                    let reaped = try await client.reap(queue, guardMs: reapMs)
                    if reaped.stalled + reaped.orphans + reaped.dead > 0 {
                        logger.warning(
                            "redelivered stalled jobs",
                            metadata: [
                                "queue": "\(queue)", "stalled": "\(reaped.stalled)", "orphans": "\(reaped.orphans)", "dead": "\(reaped.dead)",
                            ])
                    }
                }
                for queue in options.queues where nextTrim[queue].map({ $0 <= .now }) ?? true {
                    nextTrim[queue] = later(configuration.reapInterval, queue)
                    try await client.trim(queue, guardMs: reapMs)
                }
            } catch {
                outage.failed(error)
            }
            do { try await Task.sleep(for: .seconds(configuration.promoteInterval)) } catch { return }
        }
    }
}
