import Foundation
import Logging

/// Delayed-job promotion, the reaper and retention, guarded fleet-wide.
extension Worker {

    /// Promotion and due cron ticks every `promoteInterval`; reaping and
    /// trimming every `reapInterval`.
    func housekeepingLoop() async {
        let promoteMs = Int(configuration.promoteInterval * 1000)
        let reapMs = Int(configuration.reapInterval * 1000)
        var lastReap = 0
        while !Task.isCancelled {
            do {
                for queue in options.queues {
                    try await client.promote(queue, guardMs: promoteMs)
                    do {
                        try await client.fireDueCron(queue)
                    } catch  where error.code != .unavailable {
                        logger.warning("cron tick failed", metadata: ["queue": "\(queue)", "error": "\(error)"])
                    }
                }
                let now = clock.nowMillis()
                if now - lastReap >= reapMs {
                    lastReap = now
                    for queue in options.queues {
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
                }
            } catch {
                outage.failed(error)
            }
            do { try await Task.sleep(for: .seconds(configuration.promoteInterval)) } catch { return }
        }
    }
}
