import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

// MARK: Bad arguments change nothing
//
// What the scripts do with arguments that a producer or worker in another
// language can send: a bad one is refused before anything is written, because
// Redis keeps the writes a script made before it raised an error.
extension ScriptTests {
    func enqueueJobs(_ jobs: [String]...) throws -> RedisValue {
        try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: [String(t0)] + jobs.flatMap { $0 })
    }

    func newID(_ n: Int = 0) -> String { JobID.make(queue: queue, nowMillis: t0 + n) }

    /// claim.lua's reply for one job claimed at `t0` with a lease of `leaseMs`.
    func claimOne(_ token: String, leaseMs: Int = 1000, rate: [String] = ["0", "1000"]) throws -> RedisValue {
        try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(t0), "w", token, String(leaseMs)] + rate)
    }

    func place(_ id: String) throws -> [String] {
        var found: [String] = []
        if try conn.command(["LPOS", keys.waiting, id]).int != nil { found.append("waiting") }
        for (name, key) in [("leases", keys.leases), ("delayed", keys.delayed), ("retry", keys.retry), ("cancelled", keys.cancelled),
                            ("completed", keys.completed), ("dead", keys.dead)]
        where try conn.command(["ZSCORE", key, id]).string != nil {
            found.append(name)
        }
        return found
    }

    /// A NaN, infinite, fractional or padded "now" once passed every lease
    /// check (deadline < NaN is false) and then failed a write halfway, leaving
    /// a job in no place.
    @Test(arguments: ["nan", "inf", "1e3", " 1800000000000", "1800000000000.5", "0x10", ""])
    func aBadNowIsRefusedByEveryScriptThatTakesOne(_ now: String) throws {
        let waiting = newID(1), active = newID(2)
        #expect(try enqueueJobs(enqueueJobArgs(active), enqueueJobArgs(waiting)).array?.count == 2)
        #expect(try claimOne("T").array?.first?.array?.first?.string == active)

        let p = [keys.prefix]
        #expect(try conn.eval(Scripts.cancel, keys: p, args: [waiting, now, "", ""]).int == -8)
        #expect(try conn.eval(Scripts.cancel, keys: p, args: [active, now, "", "T"]).int == -8)
        #expect(try conn.eval(Scripts.complete, keys: p, args: [now, "-1", active, "T", "null"]).int == -8)
        #expect(try conn.eval(Scripts.fail, keys: p, args: [active, "T", now, "e", "1", "100", "500", "0.5", "-1"]).int == -8)
        #expect(try conn.eval(Scripts.progress, keys: p, args: [active, "T", now, "50", ""]).int == -8)
        #expect(try conn.eval(Scripts.extend, keys: p, args: [now, "1000", active, "T"]).int == -8)
        #expect(try conn.eval(Scripts.release, keys: p, args: [active, "T", now, "why"]).int == -8)
        #expect(try conn.eval(Scripts.claim, keys: p, args: [now, "w", "U", "1000"]).int == -8)
        #expect(try conn.eval(Scripts.reap, keys: p, args: [now, "0", "100"]).int == -8)
        #expect(try conn.eval(Scripts.retry, keys: p, args: [now, "*", "10"]).int == -8)
        #expect(try conn.eval(Scripts.promote, keys: p, args: [now, "0", "100"]).int == -8)
        #expect(try conn.eval(Scripts.trim, keys: p, args: [now, "0", "100", "0", "-1", "0", "-1", "0", "-1"]).int == -8)
        #expect(try conn.eval(Scripts.pause, keys: p, args: ["1", now]).int == -8)
        #expect(try conn.eval(Scripts.enqueue, keys: p, args: [now] + enqueueJobArgs(newID(3))).int == -8)

        #expect(try place(waiting) == ["waiting"])
        #expect(try place(active) == ["leases"])
        #expect(try conn.command(["HMGET", keys.job(active), "state", "token", "progress"])
            == .array([.string("active"), .string("T"), .null]))
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    /// fail.lua computes the retry time from the jitter and the backoff
    /// fields: a NaN there made ZADD fail after the lease was gone.
    @Test func failRefusesABadJitterOrBackoffBeforeTouchingTheJob() throws {
        let id = newID()
        _ = try enqueueJobs(enqueueJobArgs(id))
        _ = try claimOne("T")
        for (jitter, base, cap) in [("nan", "100", "500"), ("-0.5", "100", "500"), ("2", "100", "500"), ("0.5", "nan", "500"), ("0.5", "100", "1e9")] {
            let reply = try conn.eval(Scripts.fail, keys: [keys.prefix], args: [id, "T", String(t0 + 1), "e", "1", base, cap, jitter, "-1"])
            #expect(reply.int == -8, "jitter \(jitter), base \(base), cap \(cap)")
        }
        #expect(try place(id) == ["leases"])
        let reply = try conn.eval(Scripts.fail, keys: [keys.prefix], args: [id, "T", String(t0 + 1), "e", "1", "100", "500", "1", "-1"])
        #expect(reply.array?.first?.int == 1)
        #expect(try place(id) == ["retry"])
    }

    /// Numbers a producer sends are whole numbers in decimal text; each
    /// optional field at most once. A job refused alone writes nothing, and
    /// the jobs of its batch before and after it are made whole.
    @Test(arguments: [
        ["key", "k", "key_ttl_ms", "1.5"], ["key_ttl_ms", "1e20"], ["timeout_ms", "nan"], ["backoff_cap_ms", "inf"],
        ["backoff_base_ms", "-1"], ["priority", "nan"], ["priority", "101"], ["priority", "1", "priority", "2"],
    ])
    func aBadOptionalFieldRefusesItsJobAlone(_ options: [String]) throws {
        let before = newID(1), bad = newID(2), after = newID(3)
        let reply = try enqueueJobs(enqueueJobArgs(before), enqueueJobArgs(bad, options: options), enqueueJobArgs(after))
        #expect(reply == .array([.string(before), .integer(-8), .string(after)]), "\(options)")
        #expect(try conn.command(["EXISTS", keys.job(bad)]).int == 0)
        #expect(try place(before) == ["waiting"] && place(after) == ["waiting"])
    }

    @Test(arguments: [("1800000005000 ", "3"), ("soon", "3"), ("0", "inf"), ("0", "nan"), ("0", "2.5"), ("0x10", "3")])
    func aBadRunAtOrMaxAttemptsRefusesItsJobAlone(_ runAt: String, _ maxAttempts: String) throws {
        let before = newID(1), bad = newID(2)
        let reply = try enqueueJobs(enqueueJobArgs(before), [bad, "t", "{}", runAt, maxAttempts, "0"])
        #expect(reply == .array([.string(before), .integer(-8)]))
        #expect(try place(before) == ["waiting"])
        #expect(try conn.command(["EXISTS", keys.job(bad)]).int == 0)
    }

    /// unpack() in Redis's Lua stops near 8,000 values: the ids go to the
    /// waiting list in pushes of 1,000, and complete.lua takes at most 1,000 jobs.
    @Test func bigBatchesAreWholeOrRefusedWhole() throws {
        let ids = (0..<8200).map { newID($0) }
        let reply = try enqueueJobs(ids.flatMap { enqueueJobArgs($0) })
        #expect(reply.array?.count == ids.count)
        #expect(try conn.command(["LLEN", keys.waiting]).int == ids.count)
        #expect(try conn.command(["LINDEX", keys.waiting, "-1"]).string == ids[0], "oldest first")
        #expect(try conn.command(["LINDEX", keys.waiting, "0"]).string == ids.last)
        #expect(try conn.command(["LLEN", keys.wake]).int == 1)

        var held: [String] = []
        for n in 0..<2 {
            let claimed = try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(t0), "w", "B\(n)", "600000", "0", "1000", "0", "1000"])
            held += claimed.array?.compactMap { $0.array.map { "\($0[0].string ?? "")|\($0[7].string ?? "")" } } ?? []
        }
        #expect(held.count == 2000)
        func args(_ jobs: ArraySlice<String>) -> [String] {
            [String(t0 + 1), "-1"] + jobs.flatMap { job -> [String] in
                let parts = job.split(separator: "|").map(String.init)
                return [parts[0], parts[1], "null"]
            }
        }
        #expect(try conn.eval(Scripts.complete, keys: [keys.prefix], args: args(held[0..<1001])).int == -8)
        #expect(try conn.command(["ZCARD", keys.leases]).int == 2000, "a refused batch completes none of its jobs")
        let codes = try conn.eval(Scripts.complete, keys: [keys.prefix], args: args(held[0..<1000]))
        #expect(codes.array?.count == 1000 && codes.array?.allSatisfy { $0.int == 1 } == true)
        #expect(try conn.command(["ZCARD", keys.leases]).int == 1000)
        #expect(try conn.command(["ZCARD", keys.completed]).int == 1000)
    }

    /// A finished job's callback delivery job is named <id>-cb<n>, which a
    /// producer may have taken already: the next free name is used.
    @Test func aCallbackDeliveryJobNeverOverwritesATakenID() throws {
        let id = newID(1)
        _ = try enqueueJobs(enqueueJobArgs(id, options: ["callback", "http://127.0.0.1:9/x"]))
        #expect(try enqueueJobs(enqueueJobArgs(id + "-cb1", type: "mine", payload: "{\"a\":1}")) == .array([.string(id + "-cb1")]))
        #expect(try claimOne("T").array?.first?.array?.first?.string == id)
        #expect(try conn.eval(Scripts.complete, keys: [keys.prefix], args: [String(t0 + 1), "-1", id, "T", "null"]) == .array([.integer(1)]))
        #expect(try conn.command(["HMGET", keys.job(id + "-cb1"), "type", "payload"]) == .array([.string("mine"), .string("{\"a\":1}")]))
        #expect(try conn.command(["HGET", keys.job(id + "-cb2"), "type"]).string == "spool.callback")
        #expect(try conn.command(["LRANGE", keys.waiting, "0", "-1"]) == .array([.string(id + "-cb2"), .string(id + "-cb1")]))
        #expect(try InvariantChecker.violations(queue: queue, url: url).isEmpty)
    }

    /// An id in the legacy active list without a lease is redelivered, but
    /// not once its record says it ended (cancelled since it was popped).
    @Test func theReaperDoesNotReviveAPoppedJobThatWasCancelled() throws {
        let id = newID()
        _ = try enqueueJobs(enqueueJobArgs(id))
        #expect(try conn.command(["LMOVE", keys.waiting, keys.active, "RIGHT", "LEFT"]).string == id)
        #expect(try conn.eval(Scripts.cancel, keys: [keys.prefix], args: [id, String(t0), "", ""]).int == 1)
        let reaped = try conn.eval(Scripts.reap, keys: [keys.prefix], args: [String(t0 + 1), "0", "100"])
        #expect(reaped == .array([.integer(0), .integer(0), .integer(0)]))
        #expect(try place(id) == ["cancelled"])
        #expect(try conn.command(["LLEN", keys.active]).int == 0)
        #expect(try conn.command(["HGET", keys.job(id), "state"]).string == "cancelled")
    }

    /// A released job is claimed again at the same attempt: each claim still
    /// counts against the rate limit.
    @Test func aReleasedAndReclaimedJobCountsTwiceAgainstTheRateLimit() throws {
        let a = newID(1), b = newID(2)
        _ = try enqueueJobs(enqueueJobArgs(a), enqueueJobArgs(b))
        let rate = ["2", "60000"]
        #expect(try claimOne("T1", rate: rate).array?.first?.array?.first?.string == a)
        #expect(try conn.eval(Scripts.release, keys: [keys.prefix], args: [a, "T1", String(t0), "test"]).int == 1)
        #expect(try claimOne("T2", rate: rate).array?.first?.array?.first?.string == a)
        #expect(try claimOne("T3", rate: rate).array?.first?.int == -10, "two claims fill a limit of two")
        #expect(try place(b) == ["waiting"])
    }

    /// LRANGE from -0 is the whole list: a purge limit of 0 emptied the queue.
    @Test func housekeepingLimitsAreAtLeastOne() throws {
        let id = newID()
        _ = try enqueueJobs(enqueueJobArgs(id))
        let p = [keys.prefix]
        for limit in ["0", "-1", "nan"] {
            #expect(try conn.eval(Scripts.purge, keys: p, args: ["waiting", limit]).int == -8, "purge \(limit)")
            #expect(try conn.eval(Scripts.reap, keys: p, args: [String(t0), "0", limit]).int == -8, "reap \(limit)")
            #expect(try conn.eval(Scripts.promote, keys: p, args: [String(t0), "0", limit]).int == -8, "promote \(limit)")
            #expect(try conn.eval(Scripts.trim, keys: p, args: [String(t0), "0", limit]).int == -8, "trim \(limit)")
        }
        #expect(try conn.eval(Scripts.trim, keys: p, args: [String(t0), "0", "10", "1.5"]).int == -8, "a keep count")
        #expect(try place(id) == ["waiting"])
    }

    @Test func retryByHandTakesACountOfAtLeastOne() throws {
        let id = newID()
        _ = try enqueueJobs(enqueueJobArgs(id, maxAttempts: 1))
        _ = try claimOne("T")
        _ = try conn.eval(Scripts.fail, keys: [keys.prefix], args: [id, "T", String(t0 + 1), "e", "0", "100", "500", "0", "-1"])
        #expect(try place(id) == ["dead"])
        for count in ["0", "-3", "x"] {
            #expect(try conn.eval(Scripts.retry, keys: [keys.prefix], args: [String(t0 + 2), "*", count]).int == -8)
        }
        #expect(try place(id) == ["dead"])
        #expect(try conn.eval(Scripts.retry, keys: [keys.prefix], args: [String(t0 + 2), "*", "1"]).int == 1)
        #expect(try place(id) == ["waiting"])
    }

    /// A dead job's idempotency key expires; another job may take it. A
    /// retry by hand of the dead job leaves the key with that job and drops
    /// it from its own record, so its end cannot expire the other's key.
    @Test func aRetriedJobDoesNotTakeBackAKeyAnotherJobHolds() throws {
        let first = newID(1), second = newID(2)
        _ = try enqueueJobs(enqueueJobArgs(first, maxAttempts: 1, options: ["key", "K"]))
        _ = try claimOne("T")
        _ = try conn.eval(Scripts.fail, keys: [keys.prefix], args: [first, "T", String(t0 + 1), "e", "0", "100", "500", "0", "-1"])
        try conn.command(["DEL", keys.unique("K")])  // its expiry ran out
        #expect(try enqueueJobs(enqueueJobArgs(second, options: ["key", "K"])) == .array([.string(second)]))
        #expect(try conn.eval(Scripts.retry, keys: [keys.prefix], args: [String(t0 + 2), first]).int == 1)
        #expect(try conn.command(["GET", keys.unique("K")]).string == second)
        #expect(try conn.command(["TTL", keys.unique("K")]).int == -1)
        #expect(try conn.command(["HGET", keys.job(first), "key"]) == .null)
    }
}
