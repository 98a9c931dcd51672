import Foundation
import Hiredis
import Logging

/// Lease renewal for running jobs. (The registry entry is refreshed by the
/// housekeeper, in the same write as its sweeps.)
extension Worker {

    /// Renews leases every third of the shortest visibility timeout.
    func heartbeatLoop() async {
        let redis = RedisClient(url: configuration.redisURL, timeouts: configuration.timeouts, label: "spool.worker.heartbeat")
        defer { redis.close() }
        let shortest = options.queues.map(leaseMs).min() ?? 30000
        // One batched renewal per third of the shortest lease.
        let renewEvery = Duration.milliseconds(max(20, shortest / 3))
        let tick = min(Duration.seconds(1), renewEvery / 2)
        var lastRenewed = ContinuousClock.now
        while !Task.isCancelled {
            do { try await Task.sleep(for: tick) } catch { return }
            // 90 %: a tick that wakes a hair early must not push renewal a whole tick late.
            guard lastRenewed.duration(to: .now) >= renewEvery * 0.9 else { continue }
            lastRenewed = .now
            let jobs = running.withLock { Array($0.values) }
            if jobs.isEmpty { continue }
            let byQueue = Dictionary(grouping: jobs, by: \.queue)
            let now = String(clock.nowMillis())
            var calls: [(keys: [String], args: [String], jobs: [RunningJob])] = []
            for (queue, group) in byQueue {
                var args = [now, String(leaseMs(queue))]
                for job in group { args += [job.id, job.token] }
                calls.append(([QueueKeys(prefix: configuration.prefix, queue: queue).prefix], args, group))
            }
            let scriptCalls = calls.map { (keys: $0.keys, args: $0.args) }
            do {
                let replies = try await redis.withConnection { try $0.evalPipelined(Scripts.extend, calls: scriptCalls) }
                for (call, reply) in zip(calls, replies) {
                    let codes = reply.array ?? []
                    // 2: renewed, but a cancel was requested (a missed pub/sub message).
                    for (job, code) in zip(call.jobs, codes) where code.int == 2 { requestCancel(job.id) }
                    for (job, code) in zip(call.jobs, codes) where (code.int ?? 0) < 0 && !job.lease.lost {
                        job.lease.markLost()
                        let why = SpoolError.script(code: code.int ?? 0, "extend", queue: job.queue, job: job.id).message
                        logger.warning(
                            "lease lost; this attempt's outcome will be rejected",
                            metadata: ["job": "\(job.id)", "queue": "\(job.queue)", "reason": "\(why)"])
                    }
                }
                outage.succeeded()
            } catch {
                outage.failed(error)
            }
        }
    }
}
