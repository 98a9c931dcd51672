import Foundation
import Logging

/// Delayed-job promotion, the reaper and retention, guarded fleet-wide.
extension Worker {

    /// Promotion and due cron ticks about every `promoteInterval`, reaping and
    /// trimming about every `reapInterval`, fleet-wide per queue.
    ///
    /// The guard keys let one sweep per interval through however many workers
    /// try; so that the tries do not grow with the fleet either, each worker
    /// tries every interval × (workers serving the queue), jittered to 50–150 %.
    /// The fleet as a whole then tries about once per interval, and an idle
    /// fleet of any size costs Redis about what one worker does.
    func housekeepingLoop() async {
        let promoteMs = Int(configuration.promoteInterval * 1000)
        let reapMs = Int(configuration.reapInterval * 1000)
        var nextPromote: [String: ContinuousClock.Instant] = [:]
        var nextReap: [String: ContinuousClock.Instant] = [:]
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
                    nextReap[queue] = later(configuration.reapInterval, queue)
                    let reaped = try await client.reap(queue, guardMs: reapMs)
                    if reaped.stalled + reaped.orphans + reaped.dead > 0 {
                        logger.warning(
                            "redelivered stalled jobs",
                            metadata: [
                                "queue": "\(queue)", "stalled": "\(reaped.stalled)", "orphans": "\(reaped.orphans)", "dead": "\(reaped.dead)",
                            ])
                    }
                    try await client.trim(queue, guardMs: reapMs)
                }
            } catch {
                outage.failed(error)
            }
            do { try await Task.sleep(for: .seconds(configuration.promoteInterval)) } catch { return }
        }
    }
}
