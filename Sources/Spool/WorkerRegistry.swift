import Foundation
import Hiredis

/// A live worker process as it describes itself in the registry.
public struct WorkerInfo: Sendable, Codable, Equatable {
    public var id: String
    public var host: String
    public var pid: Int
    public var queues: [String]
    public var concurrency: Int
    /// Ids of the jobs it is running now.
    public var jobs: [String]
    public var processed: Int
    public var failed: Int
    /// Unix times in ms.
    public var startedAt: Int
    public var lastSeen: Int

    init?(fields: [String: String]) {
        guard let id = fields["id"], let pid = fields["pid"].flatMap({ Int($0) }) else { return nil }
        self.id = id
        self.host = fields["host"] ?? ""
        self.pid = pid
        self.queues = (fields["queues"] ?? "").split(separator: ",").map(String.init)
        self.concurrency = Int(fields["concurrency"] ?? "") ?? 0
        self.jobs = (fields["jobs"] ?? "").split(separator: ",").map(String.init)
        self.processed = Int(fields["processed"] ?? "") ?? 0
        self.failed = Int(fields["failed"] ?? "") ?? 0
        self.startedAt = Int(fields["started_at"] ?? "") ?? 0
        self.lastSeen = Int(fields["last_seen"] ?? "") ?? 0
    }
}

extension GlobalKeys {
    /// zset: worker id -> last heartbeat (ms).
    public var workers: String { prefix + ":workers" }
    /// hash: one worker's entry; expires when the worker stops heartbeating.
    public func worker(_ id: String) -> String { prefix + ":worker:" + id }
}

extension Worker {
    /// Seconds an entry outlives the worker's last heartbeat.
    static let registryTTL = 10
    /// Seconds between refreshes of the entry: three fit in one TTL, so one
    /// late refresh does not drop a live worker, and 50 idle workers cost
    /// Redis about 17 round trips a second for it.
    static let registryInterval = 3

    /// The commands that write this worker's entry; the housekeeper sends them
    /// with its sweeps, and reads the replies with ``readPeers(_:)``.
    func registryCommands() -> [[String]] {
        let keys = GlobalKeys(prefix: configuration.prefix)
        let now = clock.nowMillis()
        let jobs = running.withLock { $0.keys.sorted() }
        let (processed, failed) = counters.withLock { ($0.processed, $0.failed) }
        let fields = [
            "id", id, "host", hostname, "pid", String(getpid()), "queues", options.queues.joined(separator: ","),
            "concurrency", String(options.concurrency), "jobs", jobs.joined(separator: ","),
            "processed", String(processed), "failed", String(failed), "started_at", String(startedAt), "last_seen", String(now),
        ]
        var commands = [
            ["HSET", keys.worker(id)] + fields,
            ["PEXPIRE", keys.worker(id), String(Self.registryTTL * 1000)],
            ["ZADD", keys.workers, String(now), id],
        ]
        // Per queue: this worker's heartbeat, stale entries dropped, and how
        // many workers serve the queue now (read back for `queuePeers`).
        let since = String(now - Self.registryTTL * 1000)
        for queue in options.queues {
            let set = QueueKeys(prefix: configuration.prefix, queue: queue).workers
            commands += [
                ["ZADD", set, String(now), id],
                ["ZREMRANGEBYSCORE", set, "-inf", "(" + since],
                ["PEXPIRE", set, String(Self.registryTTL * 1000)],
                ["ZCARD", set],
            ]
        }
        return commands
    }

    /// Keeps the number of workers serving each queue from the replies to
    /// ``registryCommands()``.
    func readPeers(_ replies: ArraySlice<RedisValue>) {
        let replies = Array(replies)
        let counts = stride(from: 6, to: replies.count, by: 4).map { max(1, replies[$0].int ?? 1) }
        peers.withLock { peers in
            for (queue, n) in zip(options.queues, counts) { peers[queue] = n }
        }
    }

    /// Workers serving `queue` at the last heartbeat, this one included (1 until known).
    func queuePeers(_ queue: String) -> Int { peers.withLock { $0[queue] ?? 1 } }

    /// Removes this worker's entry (on a clean stop).
    func deregister() async {
        let keys = GlobalKeys(prefix: configuration.prefix)
        let queueSets = options.queues.map { ["ZREM", QueueKeys(prefix: configuration.prefix, queue: $0).workers, id] }
        _ = try? await client.redis.pipeline([["DEL", keys.worker(id)], ["ZREM", keys.workers, id]] + queueSets)
    }
}

extension SpoolClient {
    /// Live workers, by id. Entries whose worker stopped heartbeating have
    /// expired; their ids are dropped from the index as they are found.
    public func workers() async throws(SpoolError) -> [WorkerInfo] {
        let keys = global
        do {
            return try await redis.withConnection { conn in
                let ids = (try conn.command(["ZRANGE", keys.workers, "0", "-1"]).array ?? []).compactMap(\.string)
                if ids.isEmpty { return [] }
                let replies = try conn.pipeline(ids.map { ["HGETALL", keys.worker($0)] })
                var live: [WorkerInfo] = []
                var gone: [String] = []
                for (id, reply) in zip(ids, replies) {
                    if let info = WorkerInfo(fields: Self.fields(reply)) { live.append(info) } else { gone.append(id) }
                }
                if !gone.isEmpty { try conn.command(["ZREM", keys.workers] + gone) }
                return live.sorted { $0.id < $1.id }
            }
        } catch {
            throw SpoolError.from(error, "workers")
        }
    }
}
