import Foundation
import Hiredis

/// A repeating job: every tick of `schedule`, one job of `type` on `queue`.
public struct CronEntry: Sendable, Codable, Equatable {
    /// Unique within its queue; a name as ``Names/isValid(_:)`` has it.
    public var name: String
    public var queue: String
    public var type: String
    /// JSON text given to every job.
    public var payload: String
    /// A cron expression (5 fields, or 6 with seconds first), a macro such as
    /// `@hourly`, or `every 30s` (see ``CronSchedule``). Times are UTC.
    public var schedule: String
    public var maxAttempts: Int?
    /// Unix ms of the next tick (read back from Redis; ignored when adding).
    public var nextRun: Int?

    public init(name: String, queue: String, type: String, payload: String = "null", schedule: String, maxAttempts: Int? = nil) {
        self.name = name
        self.queue = queue
        self.type = type
        self.payload = payload
        self.schedule = schedule
        self.maxAttempts = maxAttempts
    }

    enum CodingKeys: String, CodingKey {
        case name, queue, type, payload, schedule
        case maxAttempts = "max_attempts"
        case nextRun = "next_run"
    }
}

extension QueueKeys {
    /// hash: cron name -> the entry as JSON.
    public var cron: String { prefix + "cron" }
    /// zset: cron name -> next tick (ms).
    public var cronNext: String { prefix + "cron:next" }
}

extension SpoolClient {
    /// Registers (or replaces) a repeating job; its first tick is the first
    /// one after now. Returns the entry with `nextRun` set.
    @discardableResult
    public func addCron(_ entry: CronEntry) async throws(SpoolError) -> CronEntry {
        guard Names.isValid(entry.name) else {
            throw SpoolError(.invalidInput, "cron add", queue: entry.queue, "cron name \"\(entry.name)\" \(Names.rule)")
        }
        do {
            try JobRequest(queue: entry.queue, type: entry.type, payload: entry.payload, maxAttempts: entry.maxAttempts).validate(
                payloadLimit: configuration.payloadLimit)
        } catch { throw error.during("cron add") }
        let schedule: CronSchedule
        do { schedule = try CronSchedule(parsing: entry.schedule) } catch {
            throw SpoolError(.invalidInput, "cron add", queue: entry.queue, error.message)
        }
        guard let next = schedule.next(after: clock.nowMillis()) else {
            throw SpoolError(.invalidInput, "cron add", queue: entry.queue, "schedule \"\(entry.schedule)\" never fires")
        }
        var stored = entry
        stored.schedule = schedule.description
        stored.nextRun = nil
        let json = String(decoding: (try? JSONEncoder().encode(stored)) ?? Data(), as: UTF8.self)
        let k = keys(entry.queue)
        do {
            _ = try await redis.pipeline([
                ["MULTI"], ["HSET", k.cron, entry.name, json], ["ZADD", k.cronNext, String(next), entry.name],
                ["SADD", global.queues, entry.queue], ["EXEC"],
            ])
        } catch { throw SpoolError.from(error, "cron add", queue: entry.queue) }
        stored.nextRun = next
        return stored
    }

    /// Removes a repeating job; false when there was none of that name.
    @discardableResult
    public func removeCron(queue: String, name: String) async throws(SpoolError) -> Bool {
        guard Names.isValid(queue) else { throw SpoolError(.invalidInput, "cron remove", queue: queue, "queue name \(Names.rule)") }
        let k = keys(queue)
        do {
            let replies = try await redis.pipeline([["MULTI"], ["HDEL", k.cron, name], ["ZREM", k.cronNext, name], ["EXEC"]])
            return replies.last?.array?.first?.int == 1
        } catch { throw SpoolError.from(error, "cron remove", queue: queue) }
    }

    /// Every repeating job of `queues` (all known queues when nil), by queue and name.
    public func cronEntries(queues: [String]? = nil) async throws(SpoolError) -> [CronEntry] {
        let names: [String]
        if let queues { names = queues } else { names = try await self.queues() }
        let commands = names.flatMap { [["HGETALL", keys($0).cron], ["ZRANGE", keys($0).cronNext, "0", "-1", "WITHSCORES"]] }
        let replies: [RedisValue]
        do { replies = try await redis.pipeline(commands) } catch { throw SpoolError.from(error, "cron list") }
        var entries: [CronEntry] = []
        for i in names.indices {
            let next = Self.fields(replies[2 * i + 1]).compactMapValues { Int($0) }
            for (_, json) in Self.fields(replies[2 * i]) {
                guard var entry = try? JSONDecoder().decode(CronEntry.self, from: Data(json.utf8)) else { continue }
                entry.nextRun = next[entry.name]
                entries.append(entry)
            }
        }
        return entries.sorted { ($0.queue, $0.name) < ($1.queue, $1.name) }
    }

    /// Enqueues one job for every due tick of `queue`'s schedules and moves
    /// them to their next tick. Many processes may call this at once: the job
    /// carries the idempotency key `cron:NAME:TICK`, so each tick makes exactly
    /// one job, and `ZADD XX GT` only ever moves a schedule forward. Ticks
    /// missed while nothing ran are skipped: one job, then the next tick after now.
    @discardableResult
    public func fireDueCron(_ queue: String) async throws(SpoolError) -> Int {
        let k = keys(queue)
        let now = clock.nowMillis()
        let due: [(name: String, tick: Int)]
        do {
            let reply = try await redis.command(["ZRANGEBYSCORE", k.cronNext, "-inf", String(now), "WITHSCORES", "LIMIT", "0", "100"])
            let items = (reply.array ?? []).compactMap(\.string)
            due = stride(from: 0, to: items.count - 1, by: 2).compactMap { i in Int(items[i + 1]).map { (items[i], $0) } }
        } catch { throw SpoolError.from(error, "cron", queue: queue) }
        var fired = 0
        for (name, tick) in due {
            let json: String?
            do { json = try await redis.command(["HGET", k.cron, name]).string } catch { throw SpoolError.from(error, "cron", queue: queue) }
            guard let json, let entry = try? JSONDecoder().decode(CronEntry.self, from: Data(json.utf8)),
                let schedule = try? CronSchedule(parsing: entry.schedule)
            else {
                // Unreadable: park it a day ahead rather than retry it every sweep.
                _ = try? await redis.command(["ZADD", k.cronNext, "XX", String(now + 86_400_000), name])
                continue
            }
            var request = JobRequest(queue: queue, type: entry.type, payload: entry.payload, maxAttempts: entry.maxAttempts)
            request.idempotencyKey = "cron:\(name):\(tick)"
            do {
                try await enqueue(request)
                fired += 1
            } catch  where error.code == .invalidInput || error.code == .invalidPayload {
                // A bad entry (edited by hand) must not stop the others: skip this tick.
            }
            let next = schedule.next(after: max(tick, now)) ?? Int.max
            do {
                try await redis.command(["ZADD", k.cronNext, "XX", "GT", String(next), name])
            } catch { throw SpoolError.from(error, "cron", queue: queue) }
        }
        return fired
    }
}
