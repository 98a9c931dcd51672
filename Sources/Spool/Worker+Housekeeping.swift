import Foundation
import Hiredis
import Logging

/// Delayed-job promotion, the reaper, retention and the registry entry,
/// guarded fleet-wide and sent together.
extension Worker {

    /// Reaping every `reapInterval` from every worker; promotion with due cron
    /// ticks about every `promoteInterval`, and trimming about every
    /// `reapInterval`, fleet-wide per queue; this worker's registry entry every
    /// `registryInterval`.
    ///
    /// The guard keys let one sweep per interval through however many workers
    /// try. The reaper is tried by every worker every interval, because
    /// invariant 3 promises redelivery within the visibility timeout plus one
    /// reaper interval. Promotion and trimming promise no such bound, so that
    /// their tries do not grow with the fleet each worker tries every interval
    /// × (workers serving the queue), jittered to 50–150 %: the fleet as a whole
    /// tries about once per interval.
    ///
    /// Whatever is due in a tick goes out in one write (one round trip): an
    /// idle worker's periodic cost is counted in round trips, not scripts.
    func housekeepingLoop() async {
        let promoteMs = Int(configuration.promoteInterval * 1000)
        let reapMs = Int(configuration.reapInterval * 1000)
        var nextPromote: [String: ContinuousClock.Instant] = [:]
        var nextReap: [String: ContinuousClock.Instant] = [:]
        var nextTrim: [String: ContinuousClock.Instant] = [:]
        var nextRegistry = ContinuousClock.now
        while !Task.isCancelled {
            var sweeps = Sweeps()
            for queue in options.queues {
                if nextPromote[queue].map({ $0 <= .now }) ?? true {
                    nextPromote[queue] = paced(configuration.promoteInterval, queue)
                    sweeps.add(.promote, queue, client.promoteCall(queue, guardMs: promoteMs))
                    // Cron: only the probe here; firing, when one is due, follows.
                    let cronNext = QueueKeys(prefix: configuration.prefix, queue: queue).cronNext
                    sweeps.add(.cron, queue, .command(["ZRANGEBYSCORE", cronNext, "-inf", String(clock.nowMillis()), "LIMIT", "0", "1"]))
                }
                if nextReap[queue].map({ $0 <= .now }) ?? true {
                    nextReap[queue] = .now + .seconds(configuration.reapInterval)
                    sweeps.add(.reap, queue, client.reapCall(queue, guardMs: reapMs))
                }
                if nextTrim[queue].map({ $0 <= .now }) ?? true {
                    nextTrim[queue] = paced(configuration.reapInterval, queue)
                    sweeps.add(.trim, queue, client.trimCall(queue, guardMs: reapMs))
                }
            }
            let registry = nextRegistry <= .now ? registryCommands() : []
            if !registry.isEmpty { nextRegistry = .now + .seconds(Self.registryInterval) }
            if !sweeps.calls.isEmpty || !registry.isEmpty {
                do {
                    let replies = try await client.redis.send(sweeps.calls + registry.map(RedisCall.command))
                    if !registry.isEmpty { readPeers(replies[sweeps.calls.count...]) }
                    try await read(sweeps, replies)
                } catch {
                    outage.failed(error)
                }
            }
            do { try await Task.sleep(for: .seconds(configuration.promoteInterval)) } catch { return }
        }
    }

    /// Fires `queue`'s due cron ticks; a failure other than Redis being away is
    /// logged, not thrown, so that one bad tick does not stop the sweeps.
    private func fireDueCron(_ queue: String) async {
        do {
            _ = try await client.fireDueCron(queue)
        } catch {
            if error.code != .unavailable {
                logger.warning("cron tick failed", metadata: ["queue": "\(queue)", "error": "\(error)"])
            } else {
                outage.failed(error)
            }
        }
    }

    /// When this worker next tries a paced sweep: the fleet as a whole tries
    /// about once per `interval`.
    private func paced(_ interval: Double, _ queue: String) -> ContinuousClock.Instant {
        .now + .seconds(interval * Double(queuePeers(queue)) * Double.random(in: 0.5...1.5))
    }

    /// One tick's calls, and what each one was.
    struct Sweeps {
        enum Kind { case promote, cron, reap, trim }
        var kinds: [(Kind, String)] = []
        var calls: [RedisCall] = []
        mutating func add(_ kind: Kind, _ queue: String, _ call: RedisCall) {
            kinds.append((kind, queue))
            calls.append(call)
        }
    }

    /// Acts on the replies: logs redeliveries, fires due cron ticks, trims on
    /// past a full batch. Stops at the first error reply, as the separate calls
    /// used to.
    private func read(_ sweeps: Sweeps, _ replies: [RedisValue]) async throws {
        for (i, reply) in replies.prefix(sweeps.kinds.count).enumerated() {
            let (kind, queue) = sweeps.kinds[i]
            switch kind {
            case .promote:
                _ = try client.promoteResult(reply, queue: queue)
            case .cron:
                if reply.array?.isEmpty == false { await fireDueCron(queue) }
            case .reap:
                let reaped = try client.reapResult(reply, queue: queue)
                if reaped.stalled + reaped.orphans + reaped.dead > 0 {
                    logger.warning(
                        "redelivered stalled jobs",
                        metadata: [
                            "queue": "\(queue)", "stalled": "\(reaped.stalled)", "orphans": "\(reaped.orphans)", "dead": "\(reaped.dead)",
                        ])
                }
            case .trim:
                _ = try await client.trimRest(queue, after: reply)
            }
        }
    }
}
