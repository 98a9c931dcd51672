import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

/// The Lua scripts driven directly with a chosen `now`, so lease expiry and
/// backoff are exact rather than timed.
@Suite("Lua scripts with controlled time")
struct ScriptTests {
    let conn: RedisConnection
    let url: RedisURL
    let queue: String
    let keys: QueueKeys
    let t0 = 1_800_000_000_000

    init() throws {
        url = try SharedRedis.url
        conn = try RedisConnection(url: url)
        queue = uniqueQueue("script")
        keys = QueueKeys(prefix: "spool", queue: queue)
    }

    func enqueue(maxAttempts: Int = 3, extra: [String] = []) throws -> String {
        let id = JobID.make(queue: queue, nowMillis: t0)
        let reply = try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: [String(t0)] + enqueueJobArgs(id, maxAttempts: maxAttempts, options: extra))
        #expect(reply == .array([.string(id)]))
        return id
    }

    /// The one job a claim took, as claim.lua lists it; nil when it took none.
    func claim(at now: Int, token: String, leaseMs: Int = 1000) throws -> [RedisValue]? {
        try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(now), "w-\(token)", token, String(leaseMs)]).array?.first?.array
    }

    func complete(_ id: String, token: String, at now: Int, result: String, keep: Int = -1) throws -> Int? {
        try conn.eval(Scripts.complete, keys: [keys.prefix], args: [String(now), String(keep), id, token, result]).array?.first?.int
    }

    @Test func anExpiredLeaseFencesOutItsHolder() throws {
        let id = try enqueue()
        let first = try #require(try claim(at: t0, token: "A"))
        #expect(first[0].string == id && first[3].int == 1 && first[6].int == t0 + 1000)
        // Within the lease, extend works; after it, nothing from A is accepted.
        #expect(try conn.eval(Scripts.extend, keys: [keys.prefix], args: [String(t0 + 900), "1000", id, "A"]) == .array([.integer(1)]))
        #expect(try complete(id, token: "A", at: t0 + 2001, result: "\"A\"") == -4)
        #expect(try conn.eval(Scripts.extend, keys: [keys.prefix], args: [String(t0 + 2001), "1000", id, "A"]) == .array([.integer(-4)]))
        let failArgs = [id, "A", String(t0 + 2001), "late", "1", "100", "1000", "0", "-1"]
        #expect(try conn.eval(Scripts.fail, keys: [keys.prefix], args: failArgs).int == -4)

        // The reaper redelivers it with the attempt counted; B claims it.
        let reaped = try conn.eval(Scripts.reap, keys: [keys.prefix], args: [String(t0 + 2001), "0", "100"])
        #expect(reaped == .array([.integer(1), .integer(0), .integer(0)]))
        #expect(try conn.command(["HGET", keys.job(id), "last_error"]).string?.contains("stalled") == true)
        let second = try #require(try claim(at: t0 + 2002, token: "B"))
        #expect(second[0].string == id && second[3].int == 2)

        // A's token no longer matches, even within B's lease.
        #expect(try complete(id, token: "A", at: t0 + 2003, result: "\"A\"") == -3)
        #expect(
            try conn.eval(Scripts.extend, keys: [keys.prefix], args: [String(t0 + 2003), "1000", id, "A", id, "B"])
                == .array([.integer(-3), .integer(1)]))
        #expect(try complete(id, token: "B", at: t0 + 2004, result: "\"B\"") == 1)
        #expect(try complete(id, token: "B", at: t0 + 2005, result: "\"again\"") == -2)
        #expect(try conn.command(["HGET", keys.job(id), "result"]).string == "\"B\"")
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    /// A record claimed by protocol version 1 has no lease_until: the fenced
    /// scripts fall back to its score in the leases set, so a late holder is
    /// still rejected across an upgrade.
    @Test func aRecordWithoutLeaseUntilIsFencedByTheLeasesSet() throws {
        let id = try enqueue()
        _ = try #require(try claim(at: t0, token: "A"))
        try conn.command(["HDEL", keys.job(id), "lease_until"])
        #expect(try complete(id, token: "A", at: t0 + 2001, result: "\"late\"") == -4)
        let progress = [id, "A", String(t0 + 2001), "50", ""]
        #expect(try conn.eval(Scripts.progress, keys: [keys.prefix], args: progress).int == -4)
        // Within the lease, extend renews it and writes lease_until from then on.
        #expect(try conn.eval(Scripts.extend, keys: [keys.prefix], args: [String(t0 + 900), "1000", id, "A"]) == .array([.integer(1)]))
        #expect(try conn.command(["HGET", keys.job(id), "lease_until"]).string == String(t0 + 1900))
        #expect(try complete(id, token: "A", at: t0 + 1800, result: "\"A\"") == 1)
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    /// Invariant 6 with keep >= 64, where complete trims in batches: the
    /// completed set never holds more than keep + keep/64 + 16, and every id
    /// it dropped has lost its record too.
    @Test func batchedCountTrimStaysWithinItsBound() throws {
        let keep = 100
        var ids: [String] = []
        var most = 0
        for n in 0..<300 {
            let id = try enqueue()
            ids.append(id)
            _ = try #require(try claim(at: t0 + n, token: "T\(n)"))
            #expect(try complete(id, token: "T\(n)", at: t0 + n, result: "null", keep: keep) == 1)
            most = max(most, try conn.command(["ZCARD", keys.completed]).int ?? 0)
        }
        #expect(most > keep && most <= keep + keep / 64 + 16, "at most \(most) kept")
        let kept = Set((try conn.command(["ZRANGE", keys.completed, "0", "-1"]).array ?? []).compactMap(\.string))
        for id in ids where !kept.contains(id) {
            #expect(try conn.command(["EXISTS", keys.job(id)]) == .integer(0), "\(id) was trimmed but its record stayed")
        }
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    @Test func backoffIsExponentialCappedAndJittered() throws {
        let id = try enqueue(maxAttempts: 6)
        var now = t0
        var delays: [Int] = []
        // base 100 ms, cap 500 ms, jitter 0 -> half of min(cap, base·2^(n-1)).
        for attempt in 1...5 {
            let token = "T\(attempt)"
            _ = try #require(try claim(at: now, token: token))
            let reply = try conn.eval(Scripts.fail, keys: [keys.prefix], args: [id, token, String(now), "e\(attempt)", "1", "100", "500", "0", "-1"])
            let parts = try #require(reply.array)
            #expect(parts[0].int == 1)
            let runAt = try #require(parts[1].int)
            delays.append(runAt - now)
            #expect(try conn.command(["HGET", keys.job(id), "state"]).string == "failed")
            #expect(try conn.eval(Scripts.promote, keys: [keys.prefix], args: [String(runAt - 1), "0", "100"]).array?.first?.int == 0, "not due yet")
            #expect(try conn.eval(Scripts.promote, keys: [keys.prefix], args: [String(runAt), "0", "100"]).array?.first?.int == 1)
            now = runAt
        }
        #expect(delays == [50, 100, 200, 250, 250])

        // Jitter 0.999 gives nearly the whole delay; the last attempt makes it dead.
        _ = try #require(try claim(at: now, token: "T6"))
        let last = try conn.eval(Scripts.fail, keys: [keys.prefix], args: [id, "T6", String(now), "e6", "1", "100", "500", "0.999", "-1"])
        #expect(last == .array([.integer(2), .integer(0)]))
        let errors = try #require(try conn.command(["HGET", keys.job(id), "errors"]).string)
        let decoded = try JSONDecoder().decode([AttemptError].self, from: Data(errors.utf8))
        #expect(decoded.map(\.error) == ["e1", "e2", "e3", "e4", "e5", "e6"])
        #expect(try conn.command(["ZSCORE", keys.dead, id]).int == now)

        // Per-job backoff fields override the queue's.
        let other = try enqueue(maxAttempts: 2, extra: ["backoff_base_ms", "1000", "backoff_cap_ms", "1000"])
        _ = try #require(try claim(at: t0, token: "X"))
        let reply = try conn.eval(Scripts.fail, keys: [keys.prefix], args: [other, "X", String(t0), "e", "1", "100", "500", "1", "-1"])
        #expect(reply.array?[1].int == t0 + 1000)
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    /// A cancel request stored on a running job whose worker then dies: the
    /// sweep that finds its lease expired cancels it rather than redeliver it.
    @Test func anExpiredJobWithACancelRequestIsCancelledNotRedelivered() throws {
        let id = try enqueue(extra: ["key", "K", "key_ttl_ms", "5000"])
        _ = try #require(try claim(at: t0, token: "A"))
        #expect(try conn.eval(Scripts.cancel, keys: [keys.prefix], args: [id, String(t0 + 10), "stop it", ""]).int == 2)
        let reaped = try conn.eval(Scripts.reap, keys: [keys.prefix], args: [String(t0 + 2001), "0", "100"])
        #expect(reaped == .array([.integer(0), .integer(0), .integer(0)]))
        #expect(try conn.command(["HMGET", keys.job(id), "state", "last_error", "token", "finished_at"])
            == .array([.string("cancelled"), .string("stop it"), .null, .string(String(t0 + 2001))]))
        #expect(try conn.command(["ZSCORE", keys.cancelled, id]).int == t0 + 2001)
        #expect(try conn.command(["LLEN", keys.waiting]).int == 0 && conn.command(["ZCARD", keys.leases]).int == 0)
        #expect(try conn.command(["HGET", keys.stats, "cancelled"]).int == 1)
        #expect(try conn.command(["PTTL", keys.unique("K")]).int.map { $0 > 0 && $0 <= 5000 } == true)
        #expect(try claim(at: t0 + 2002, token: "B") == nil, "nothing to run again")
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    /// A running job asked to cancel whose attempt fails before its worker
    /// acts is not retried: its next attempt would only be stopped again.
    @Test func aFailedAttemptWithACancelRequestEndsCancelledNotRetried() throws {
        let id = try enqueue(extra: ["key", "K", "key_ttl_ms", "5000"])
        _ = try #require(try claim(at: t0, token: "A"))
        #expect(try conn.eval(Scripts.cancel, keys: [keys.prefix], args: [id, String(t0 + 10), "stop it", ""]).int == 2)
        let failed = try conn.eval(Scripts.fail, keys: [keys.prefix], args: [id, "A", String(t0 + 20), "boom", "1", "100", "500", "0", "-1"])
        #expect(failed == .array([.integer(3), .integer(0)]))
        #expect(try conn.command(["HMGET", keys.job(id), "state", "last_error", "token", "finished_at"])
            == .array([.string("cancelled"), .string("stop it"), .null, .string(String(t0 + 20))]))
        #expect(try conn.command(["HGET", keys.job(id), "errors"]).string?.contains(#""error":"boom""#) == true, "the attempt's error is kept")
        #expect(try conn.command(["ZSCORE", keys.cancelled, id]).int == t0 + 20)
        #expect(try conn.command(["ZCARD", keys.prefix + "retry"]).int == 0 && conn.command(["ZCARD", keys.leases]).int == 0)
        #expect(try conn.command(["HMGET", keys.stats, "cancelled", "failed"]) == .array([.string("1"), .null]))
        #expect(try conn.command(["PTTL", keys.unique("K")]).int.map { $0 > 0 && $0 <= 5000 } == true)
        #expect(try claim(at: t0 + 60_000, token: "B") == nil, "nothing to run again")
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)

        // With no retry left the failure stands: the job is dead, as it ended.
        let last = try enqueue(maxAttempts: 1)
        _ = try #require(try claim(at: t0, token: "C"))
        #expect(try conn.eval(Scripts.cancel, keys: [keys.prefix], args: [last, String(t0 + 10), "", ""]).int == 2)
        let dead = try conn.eval(Scripts.fail, keys: [keys.prefix], args: [last, "C", String(t0 + 20), "boom", "1", "100", "500", "0", "-1"])
        #expect(dead == .array([.integer(2), .integer(0)]))
        #expect(try conn.command(["HGET", keys.job(last), "state"]).string == "dead")
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    @Test func aJobPoppedButNeverClaimedIsRecovered() throws {
        let id = try enqueue()
        // What a worker that pops with LMOVE and dies before stamping a lease leaves behind.
        #expect(try conn.command(["LMOVE", keys.waiting, keys.active, "RIGHT", "LEFT"]).string == id)
        let problems = try InvariantChecker.violations(queue: queue, url: url)
        #expect(problems.contains("\(id) is active without a lease"), "the checker must see it: \(problems)")
        let reaped = try conn.eval(Scripts.reap, keys: [keys.prefix], args: [String(t0), "0", "100"])
        #expect(reaped == .array([.integer(0), .integer(1), .integer(0)]))
        #expect(try conn.command(["LRANGE", keys.waiting, "0", "-1"]) == .array([.string(id)]))
        #expect(try conn.command(["HGET", keys.job(id), "state"]).string == "waiting")
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
        // It is claimable again, on its first counted attempt.
        #expect(try claim(at: t0, token: "C")?[3].int == 1)
    }

    @Test func theLeasesSetIsTheActivePlace() async throws {
        let id = try enqueue()
        _ = try #require(try claim(at: t0, token: "A"))
        // Protocol version 3: no list to remove the id from later (LREM is O(length)).
        #expect(try conn.command(["EXISTS", keys.active]).int == 0)
        #expect(try conn.command(["ZSCORE", keys.leases, id]).int == t0 + 1000)
        let client = SpoolClient(configuration: testConfiguration(url: url))
        #expect(try await client.counts(queue).active == 1)
        #expect(try await client.jobs(queue, state: .active).map(\.id) == [id])
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
        #expect(try complete(id, token: "A", at: t0 + 10, result: "1") == 1)
        #expect(try conn.command(["ZCARD", keys.leases]).int == 0)
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    @Test func jobsClaimedByAVersion2WorkerAreReapedOnceAndLeftRunningOtherwise() throws {
        let expiring = try enqueue()
        let running = try enqueue()
        // A version 2 claim also pushed the id to the active list.
        for (token, leaseMs) in [("OLD", 1000), ("LIVE", 60000)] {
            let id = try #require(try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(t0), "w", token, String(leaseMs)]).array?.first?.array?[0].string)
            _ = try conn.command(["LPUSH", keys.active, id])
        }
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
        let reaped = try conn.eval(Scripts.reap, keys: [keys.prefix], args: [String(t0 + 2000), "0", "100"])
        #expect(reaped == .array([.integer(1), .integer(0), .integer(0)]), "stalled once, no orphan")
        #expect(try conn.command(["LRANGE", keys.active, "0", "-1"]) == .array([.string(running)]))
        #expect(try conn.command(["LRANGE", keys.waiting, "0", "-1"]) == .array([.string(expiring)]))
        // A second sweep must not take the expired id for an orphan.
        let again = try conn.eval(Scripts.reap, keys: [keys.prefix], args: [String(t0 + 2001), "0", "100"])
        #expect(again == .array([.integer(0), .integer(0), .integer(0)]))
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    @Test func reapReArmsALostWakeTokenUnlessPaused() throws {
        let sweep = { try self.conn.eval(Scripts.reap, keys: [self.keys.prefix], args: [String(self.t0), "0", "100"]) }
        _ = try sweep()
        #expect(try conn.command(["LLEN", keys.wake]).int == 0, "nothing ready: no token")
        _ = try enqueue()
        #expect(try conn.command(["LLEN", keys.wake]).int == 1)
        // The token was taken by a worker that died before claiming.
        _ = try conn.command(["DEL", keys.wake])
        _ = try conn.command(["SET", keys.paused, String(t0)])
        _ = try sweep()
        #expect(try conn.command(["LLEN", keys.wake]).int == 0, "a paused queue gets its token on resume")
        _ = try conn.command(["DEL", keys.paused])
        _ = try sweep()
        #expect(try conn.command(["LLEN", keys.wake]).int == 1)
        _ = try sweep()
        #expect(try conn.command(["LLEN", keys.wake]).int == 1, "at most one token")
    }

    @Test func claimHonoursPauseAndPriorityInEveryCombination() throws {
        // claim asks EXISTS of both keys at once and looks closer only when one exists.
        let plain = try enqueue()
        let urgent = try enqueue(extra: ["priority", "5"])
        let pause = { (on: Bool) in _ = try self.conn.command(on ? ["SET", self.keys.paused, "1"] : ["DEL", self.keys.paused]) }
        try pause(true)
        #expect(try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(t0), "w", "A", "1000"]).int == -7, "paused, priority job waiting")
        try pause(false)
        #expect(try claim(at: t0, token: "A")?[0].string == urgent, "priority 5 first")
        try pause(true)
        #expect(try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(t0), "w", "B", "1000"]).int == -7, "paused, only the list")
        try pause(false)
        #expect(try claim(at: t0, token: "B")?[0].string == plain)
        #expect(try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(t0), "w", "C", "1000"]).int == 0, "neither key: nothing")
    }

    @Test func reapGuardAllowsOneSweepPerInterval() throws {
        let args = [String(t0), "60000", "100"]
        let first = try conn.eval(Scripts.reap, keys: [keys.prefix], args: args)
        let second = try conn.eval(Scripts.reap, keys: [keys.prefix], args: args)
        #expect(first.array?.first?.int == 0)
        #expect(second.array?.first?.int == -1, "a second sweep within the interval is skipped")
    }

    @Test func enqueueRejectsDuplicateIdsAndBadArguments() throws {
        let id = try enqueue()
        #expect(try enqueueJobs(enqueueJobArgs(id)) == .array([.integer(-5)]))
        #expect(try enqueueJobs(enqueueJobArgs(id + "x", maxAttempts: 0)) == .array([.integer(-8)]))
        #expect(try enqueueJobs(enqueueJobArgs(id, maxAttempts: 0)) == .array([.integer(-8)]), "a bad argument is found before a taken id")
        #expect(try enqueueJobs(enqueueJobArgs(id + "y", options: ["bogus", "1"])) == .array([.integer(-8)]))
        #expect(try enqueueJobs(enqueueJobArgs(id + "z", options: ["priority", "1.5"])) == .array([.integer(-8)]))
        // Arguments that do not split into jobs create nothing, not even the whole jobs before them.
        #expect(try enqueueJobs(enqueueJobArgs(id + "a"), [id + "b", "t", "{}", "0", "3", "2", "priority"]) == .integer(-8))
        #expect(try enqueueJobs(enqueueJobArgs(id + "a"), [id + "b", "t", "{}", "0", "3", "x"]) == .integer(-8))
        #expect(try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: ["soon"] + enqueueJobArgs(id + "a")) == .integer(-8))
        #expect(try conn.command(["EXISTS", keys.job(id + "a")]).int == 0)
        #expect(try conn.command(["LLEN", keys.waiting]).int == 1)
        #expect(try conn.command(["HGET", keys.stats, "enqueued"]).int == 1)

        // In a batch (where one EXISTS asks about every id at once): an id
        // already taken is refused and the rest are made; an id given twice
        // is made once; an id refused for a bad argument can come again.
        let batch = try enqueueJobs(
            enqueueJobArgs(id + "c"), enqueueJobArgs(id), enqueueJobArgs(id + "d", maxAttempts: 0),
            enqueueJobArgs(id + "d"), enqueueJobArgs(id + "c"))
        #expect(batch == .array([.string(id + "c"), .integer(-5), .integer(-8), .string(id + "d"), .integer(-5)]))
        #expect(try enqueueJobs(enqueueJobArgs(id + "e"), enqueueJobArgs(id + "e")) == .array([.string(id + "e"), .integer(-5)]))
        #expect(try conn.command(["LRANGE", keys.waiting, "0", "-1"]) == .array([.string(id + "e"), .string(id + "d"), .string(id + "c"), .string(id)]))
        #expect(try conn.command(["HGET", keys.stats, "enqueued"]).int == 4)
    }

    @Test func aBatchEnqueuesInOrderAndAnErrorStopsOnlyItsJob() throws {
        let ids = (0..<5).map { JobID.make(queue: queue, nowMillis: t0 + $0) }
        let args =
            [String(t0)] + enqueueJobArgs(ids[0]) + enqueueJobArgs(ids[0])
            + enqueueJobArgs(ids[1], options: ["key", "k"]) + enqueueJobArgs(ids[2], options: ["key", "k"])
            + enqueueJobArgs(ids[3], runAt: t0 + 5000) + enqueueJobArgs(ids[4], maxAttempts: 0)
        let reply = try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: args)
        // A duplicate id and a bad argument fail alone; the second use of a key names the first job.
        #expect(reply == .array([.string(ids[0]), .integer(-5), .string(ids[1]), .string(ids[1]), .string(ids[3]), .integer(-8)]))
        #expect(try conn.command(["LRANGE", keys.waiting, "0", "-1"]) == .array([.string(ids[1]), .string(ids[0])]), "FIFO: the first is popped first")
        #expect(try conn.command(["ZRANGE", keys.delayed, "0", "-1"]) == .array([.string(ids[3])]))
        #expect(try conn.command(["EXISTS", keys.job(ids[2]), keys.job(ids[4])]).int == 0)
        #expect(try conn.command(["LLEN", keys.wake]).int == 1, "one wake token for the batch")
        #expect(try conn.command(["HGET", keys.stats, "enqueued"]).int == 3)
        #expect(try claim(at: t0, token: "A")?[0].string == ids[0])
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    /// claim.lua with a count: the jobs in claim order (priority, then FIFO),
    /// each with its own token and lease, one ZADD for all the leases; fewer
    /// when fewer wait, none (0) when none do.
    @Test func aClaimWithACountTakesJobsInOrderEachWithItsOwnToken() throws {
        let plain = try (0..<4).map { _ in try enqueue() }
        let urgent = try enqueue(extra: ["priority", "5"])
        func claimMany(_ count: Int, token: String) throws -> RedisValue {
            try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(t0), "w", token, "1000", "0", "1000", "0", String(count)])
        }
        let first = try #require(try claimMany(3, token: "K").array?.compactMap(\.array))
        #expect(first.map { $0[0].string } == [urgent, plain[0], plain[1]])
        #expect(first.map { $0[7].string } == ["K", "K.2", "K.3"])
        for job in first {
            let id = try #require(job[0].string)
            #expect(job[6].int == t0 + 1000)
            #expect(try conn.command(["HMGET", keys.job(id), "state", "token"]) == .array([.string("active"), job[7]]))
            #expect(try conn.command(["ZSCORE", keys.leases, id]).int == t0 + 1000)
        }
        let rest = try #require(try claimMany(10, token: "L").array?.compactMap(\.array))
        #expect(rest.map { $0[0].string } == [plain[2], plain[3]], "fewer wait than asked for")
        #expect(try claimMany(10, token: "M") == .integer(0))
        #expect(try complete(plain[3], token: "L.2", at: t0 + 1, result: "1") == 1, "the token in the reply fences the job")
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    /// Under a rate limit a counted claim takes only what the window has room for.
    @Test func aClaimWithACountStopsAtTheRateLimit() throws {
        for _ in 0..<5 { _ = try enqueue() }
        func claimMany(_ token: String) throws -> RedisValue {
            try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(t0), "w", token, "1000", "2", "60000", "0", "5"])
        }
        #expect(try claimMany("A").array?.count == 2)
        let limited = try #require(try claimMany("B").array)
        #expect(limited.count == 2 && limited[0].int == -10 && (limited[1].int ?? 0) > 0, "the window is full: \(limited)")
        #expect(try conn.command(["LLEN", keys.waiting]).int == 3)
    }

    /// complete.lua with a batch: each job is fenced on its own, one job's
    /// rejection does not stop the others, and the shared writes count only
    /// the jobs completed.
    @Test func aBatchCompletesEachJobOnItsOwnLease() throws {
        let ids = try (0..<3).map { _ in try enqueue() }
        let jobs = try #require(
            try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(t0), "w", "K", "1000", "0", "1000", "0", "3"]).array?.compactMap(\.array))
        #expect(jobs.map { $0[0].string } == ids)
        // A fourth job whose 2 ms lease has run out by the time the batch comes.
        let late = try enqueue()
        #expect(try claim(at: t0, token: "L", leaseMs: 2)?[0].string == late)
        let missing = JobID.make(queue: queue, nowMillis: t0)
        let bad = try conn.eval(Scripts.complete, keys: [keys.prefix], args: [String(t0 + 5), "-1", ids[0], "K"])
        #expect(bad == .integer(-8), "arguments that do not split into jobs")
        #expect(try conn.command(["HGET", keys.job(ids[0]), "state"]).string == "active", "nothing changed")
        let args = [
            String(t0 + 5), "-1", ids[0], "K", "\"a\"", ids[1], "wrong", "null", ids[0], "K", "\"again\"", missing, "K", "null",
            late, "L", "\"late\"", ids[2], "K.3", "[3]",
        ]
        let codes = try conn.eval(Scripts.complete, keys: [keys.prefix], args: args)
        #expect(codes == .array([.integer(1), .integer(-3), .integer(-2), .integer(-1), .integer(-4), .integer(1)]))
        #expect(try conn.command(["HMGET", keys.job(late), "state", "result"]) == .array([.string("active"), .null]), "an expired lease stores nothing")
        #expect(try conn.command(["HMGET", keys.job(ids[0]), "state", "result"]) == .array([.string("completed"), .string("\"a\"")]))
        #expect(try conn.command(["HMGET", keys.job(ids[2]), "state", "result"]) == .array([.string("completed"), .string("[3]")]))
        #expect(try conn.command(["ZRANGE", keys.leases, "0", "-1"]) == .array([.string(late), .string(ids[1])]), "only the rejected jobs keep their leases")
        #expect(try conn.command(["ZCARD", keys.completed]).int == 2)
        #expect(try conn.command(["HGET", keys.stats, "completed"]).int == 2)
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    /// Invariant 6 when completions come in batches: the trim runs when the
    /// counter passes a multiple of 16, so a batch widens the bound by its size.
    @Test func batchedCompletionsKeepTheCountTrimWithinItsBound() throws {
        let keep = 100
        let batch = 5
        var most = 0
        for round in 0..<60 {
            for _ in 0..<batch { _ = try enqueue() }
            let token = "R\(round)"
            let jobs = try #require(
                try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(t0), "w", token, "1000", "0", "1000", "0", String(batch)]).array?
                    .compactMap(\.array))
            var args = [String(t0 + round), String(keep)]
            for job in jobs { args += [job[0].string ?? "", job[7].string ?? "", "null"] }
            #expect(try conn.eval(Scripts.complete, keys: [keys.prefix], args: args) == .array(Array(repeating: .integer(1), count: batch)))
            most = max(most, try conn.command(["ZCARD", keys.completed]).int ?? 0)
        }
        #expect(most > keep && most <= keep + keep / 64 + 16 + batch - 1, "at most \(most) kept")
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    @Test func delayedJobsWaitForTheirTime() throws {
        let id = JobID.make(queue: queue, nowMillis: t0)
        #expect(try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: [String(t0)] + enqueueJobArgs(id, runAt: t0 + 5000)) == .array([.string(id)]))
        #expect(try conn.command(["HGET", keys.job(id), "state"]).string == "delayed")
        #expect(try claim(at: t0, token: "D") == nil)
        #expect(
            try conn.eval(Scripts.promote, keys: [keys.prefix], args: [String(t0 + 4999), "0", "100"]) == .array([.integer(0), .integer(t0 + 5000)]))
        #expect(try conn.eval(Scripts.promote, keys: [keys.prefix], args: [String(t0 + 5000), "0", "100"]) == .array([.integer(1), .integer(-1)]))
        #expect(try claim(at: t0 + 5000, token: "D")?[0].string == id)
    }

    @Test func aStaleWorkerCannotPublishProgress() throws {
        let id = try enqueue()
        _ = try #require(try claim(at: t0, token: "A"))
        func progress(_ token: String, at now: Int, _ percent: String) throws -> Int? {
            try conn.eval(Scripts.progress, keys: [keys.prefix], args: [id, token, String(now), percent, "m-\(token)"]).int
        }
        #expect(try progress("A", at: t0 + 10, "10") == 1)
        let seqAfterA = try conn.command(["HGET", keys.job(id), "seq"]).int
        // Past the lease, and after another claim, A is rejected and nothing changes.
        #expect(try progress("A", at: t0 + 1500, "50") == -4)
        _ = try conn.eval(Scripts.reap, keys: [keys.prefix], args: [String(t0 + 1500), "0", "100"])
        _ = try #require(try claim(at: t0 + 1501, token: "B"))
        let seqAfterClaim = try conn.command(["HGET", keys.job(id), "seq"]).int
        #expect(try progress("A", at: t0 + 1502, "60") == -3)
        #expect(try conn.command(["HGET", keys.job(id), "seq"]).int == seqAfterClaim)
        // B's claim cleared attempt 1's progress, and A's rejected call set none.
        #expect(try conn.command(["HMGET", keys.job(id), "progress", "progress_message"]) == .array([.null, .null]))
        #expect(try progress("B", at: t0 + 1503, "70") == 1)
        #expect(try conn.command(["HMGET", keys.job(id), "progress", "progress_message"]) == .array([.string("70"), .string("m-B")]))
        #expect(try progress("B", at: t0 + 1504, "101") == -8)
        #expect((seqAfterA ?? 0) < (seqAfterClaim ?? 0))
    }
}

// MARK: Retention at zero

extension ScriptTests {
    @Test func keepingNothingLeavesNoStrayRecord() throws {
        let now = t0
        for (i, outcome) in ["complete", "fail"].enumerated() {
            let id = JobID.make(queue: queue, nowMillis: now + i)
            _ = try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: [String(now)] + enqueueJobArgs(id, maxAttempts: 1))
            _ = try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(now), "w", "T\(i)", "1000"])
            if outcome == "complete" {
                #expect(try conn.eval(Scripts.complete, keys: [keys.prefix], args: [String(now), "0", id, "T\(i)", "1"]) == .array([.integer(1)]))
            } else {
                let args = [id, "T\(i)", String(now), "e", "1", "100", "1000", "0", "0"]
                #expect(try conn.eval(Scripts.fail, keys: [keys.prefix], args: args).array?.first?.int == 2)
            }
            #expect(try conn.command(["EXISTS", keys.job(id)]) == .integer(0), "\(outcome) with keep 0 must not leave a record")
        }
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }
}

// MARK: Retry by hand: priority, key and cancel request

extension ScriptTests {
    @Test func aRetriedDeadJobReturnsAtItsPriorityAndOwnsItsKeyAgain() throws {
        let now = t0
        let id = JobID.make(queue: queue, nowMillis: now)
        let args = [String(now)] + enqueueJobArgs(id, maxAttempts: 1, options: ["priority", "5", "key", "k1", "key_ttl_ms", "60000"])
        #expect(try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: args) == .array([.string(id)]))
        _ = try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(now), "w", "T", "1000"])
        _ = try conn.eval(Scripts.fail, keys: [keys.prefix], args: [id, "T", String(now), "e", "0", "100", "1000", "0", "-1"])
        #expect(try conn.command(["PTTL", keys.unique("k1")]).int ?? -1 > 0, "dead: the key expires")
        #expect(try conn.eval(Scripts.retry, keys: [keys.prefix], args: [String(now), id, "1"]).int == 1)
        #expect(try conn.command(["ZSCORE", keys.prioritized, id]) != .null, "back at priority 5")
        #expect(try conn.command(["LLEN", keys.waiting]).int == 0)
        #expect(try conn.command(["PTTL", keys.unique("k1")]).int == -1, "the key names it again, without expiry")
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
        #expect(try conn.eval(Scripts.purge, keys: [keys.prefix], args: ["waiting", "100"]).int == 1)
        #expect(try conn.command(["EXISTS", keys.unique("k1")]).int == 0, "purge drops the key")
    }

    @Test func aRetryByHandForgetsAnEarlierCancelRequest() throws {
        let now = t0
        let id = JobID.make(queue: queue, nowMillis: now)
        _ = try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: [String(now)] + enqueueJobArgs(id, maxAttempts: 1))
        _ = try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(now), "w", "T1", "60000"])
        // Cancel without a token: only a request, which this worker ignores.
        #expect(try conn.eval(Scripts.cancel, keys: [keys.prefix], args: [id, String(now), "stop it"]).int == 2)
        #expect(try conn.eval(Scripts.extend, keys: [keys.prefix], args: [String(now), "60000", id, "T1"]) == .array([.integer(2)]))
        _ = try conn.eval(Scripts.fail, keys: [keys.prefix], args: [id, "T1", String(now), "e", "0", "100", "1000", "0", "-1"])
        #expect(try conn.command(["HGET", keys.job(id), "state"]) == .string("dead"))
        #expect(try conn.eval(Scripts.retry, keys: [keys.prefix], args: [String(now), id, "1"]).int == 1)
        #expect(try conn.command(["HMGET", keys.job(id), "cancel_requested", "cancel_reason"]) == .array([.null, .null]))
        _ = try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(now), "w", "T2", "60000"])
        #expect(try conn.eval(Scripts.extend, keys: [keys.prefix], args: [String(now), "60000", id, "T2"]) == .array([.integer(1)]),
                "the retried attempt runs: the old request is gone")
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }
}
