import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Collects a job's events until its stream ends (or `timeout` passes).
func collect(_ stream: AsyncThrowingStream<JobEvent, any Error>, timeout: Double = 20,
             afterFirst: @escaping @Sendable () async throws -> Void = {}) async throws -> [JobEvent] {
    try await withThrowingTaskGroup(of: [JobEvent]?.self) { group in
        group.addTask {
            var events: [JobEvent] = []
            for try await event in stream {
                events.append(event)
                if events.count == 1 { try await afterFirst() }
            }
            return events
        }
        group.addTask {
            try await Task.sleep(for: .seconds(timeout))
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        guard let events = first else { throw TestSupportError("no terminal event within \(timeout)s") }
        return events
    }
}

@Suite("Live progress and events")
struct EventTests {
    let url: RedisURL
    init() throws { url = try SharedRedis.url }

    func start(_ queue: String, concurrency: Int = 1, _ register: (inout JobHandlers) -> Void) -> (SpoolClient, RunningWorker) {
        let config = testConfiguration(url: url)
        var handlers = JobHandlers()
        register(&handlers)
        let worker = RunningWorker(
            Worker(configuration: config, options: WorkerOptions(queues: [queue], concurrency: concurrency), handlers: handlers))
        return (SpoolClient(configuration: config), worker)
    }

    @Test func progressArrivesInOrderThenCompleted() async throws {
        let queue = uniqueQueue("progress")
        let client = SpoolClient(configuration: testConfiguration(url: url))
        let id = try await client.enqueue(JobRequest(queue: queue, type: "steps"))
        let stream = client.events(job: id)
        // The worker starts once the snapshot is shown, so the snapshot shows waiting.
        let worker = Mutex<RunningWorker?>(nil)
        let events = try await collect(stream, afterFirst: {
            let started = self.start(queue) { h in
                h.register("steps") { context in
                    for step in stride(from: 0, through: 100, by: 10) {
                        context.progress(Double(step), "step \(step)")
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    return #""done""#
                }
            }.1
            worker.withLock { $0 = started }
        })
        await worker.withLock { $0 }?.stop()
        #expect(events.first?.event == "snapshot" && events.first?.state == .waiting)
        let percents = events.filter { $0.event == "progress" }.compactMap(\.percent)
        // In order, from the first to the last; under heavy load the reporter may
        // coalesce an intermediate value (newest wins), never reorder or drop the last.
        #expect(percents == percents.sorted() && Set(percents).count == percents.count, "\(percents)")
        #expect(percents.first == 0 && percents.last == 100 && percents.count >= 6, "\(percents)")
        #expect(events.filter { $0.event == "progress" }.last?.message == "step 100")
        #expect(events.last?.event == "completed" && events.last?.state == .completed)
        let seqs = events.compactMap(\.seq)
        #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count, "strictly increasing \(seqs)")
        let job = try await client.job(id)
        #expect(job.progress == 100 && job.progressMessage == "step 100")
    }

    @Test func aLateSubscriberSeesTheCurrentStateFirst() async throws {
        let queue = uniqueQueue("late")
        let gate = Gate()
        let (client, worker) = start(queue) { h in
            h.register("report") { context in
                for step in [0.0, 20, 40, 60] {
                    context.progress(step, "at \(Int(step))")
                    try await Task.sleep(for: .milliseconds(60))
                }
                await gate.wait()
                context.progress(80, "at 80")
                try await Task.sleep(for: .milliseconds(60))
                context.progress(100, "at 100")
                return nil
            }
        }
        let id = try await client.enqueue(JobRequest(queue: queue, type: "report"))
        #expect(await eventually { try await client.job(id).progress == 60 })
        let stream = client.events(job: id)
        try await Task.sleep(for: .milliseconds(200))
        gate.open()
        let events = try await collect(stream)
        await worker.stop()
        #expect(events.first?.event == "snapshot")
        #expect(events.first?.percent == 60 && events.first?.message == "at 60" && events.first?.state == .active)
        #expect(events.dropFirst().compactMap(\.percent) == [80, 100])
        #expect(events.last?.event == "completed")
    }

    @Test func twoHundredSubscribersJoiningAsJobsFinishAllSeeTheEnd() async throws {
        let queue = uniqueQueue("race")
        let (client, worker) = start(queue, concurrency: 4) { h in h.register("quick") { _ in #"1"# } }
        for round in 0..<200 {
            let id = try await client.enqueue(JobRequest(queue: queue, type: "quick"))
            if round % 3 == 1 { try await Task.sleep(for: .microseconds(Int.random(in: 0...2000))) }
            let events = try await collect(client.events(job: id), timeout: 10)
            #expect(events.last?.state == .completed, "round \(round): \(events.map(\.event))")
            #expect(events.filter(\.isTerminal).count == 1)
        }
        await worker.stop()
    }

    @Test func theQueueChannelCarriesEveryJobsEvents() async throws {
        let queue = uniqueQueue("tail")
        let client = SpoolClient(configuration: testConfiguration(url: url))
        let stream = client.events(queue: queue)
        let seen = Mutex<[JobEvent]>([])
        let reader = Task {
            for try await event in stream {
                seen.withLock { $0.append(event) }
            }
        }
        try await Task.sleep(for: .milliseconds(300))  // subscribed
        let (_, worker) = start(queue) { h in h.register("t") { _ in nil } }
        let ids = try await client.enqueue([JobRequest(queue: queue, type: "t"), JobRequest(queue: queue, type: "t")])
        #expect(await eventually { seen.withLock { $0.filter { $0.event == "completed" }.count } == 2 })
        reader.cancel()
        await worker.stop()
        let events = seen.withLock { $0 }
        for id in ids {
            #expect(events.filter { $0.id == id }.map(\.event) == ["enqueued", "active", "completed"])
        }
    }

    @Test func tenThousandProgressCallsAreCoalescedAndTheLastArrives() async throws {
        let queue = uniqueQueue("flood")
        let client = SpoolClient(configuration: testConfiguration(url: url))
        let id = try await client.enqueue(JobRequest(queue: queue, type: "flood"))
        let stream = client.events(job: id)
        let elapsed = Mutex<Duration>(.zero)
        let (_, worker) = start(queue) { h in
            h.register("flood") { context in
                let start = ContinuousClock.now
                for i in 1...10_000 {
                    context.progress(Double(i) / 100, "item \(i)")
                    if i % 1000 == 0 { try await Task.sleep(for: .milliseconds(20)) }
                }
                elapsed.withLock { $0 = start.duration(to: .now) }
                return nil
            }
        }
        let events = try await collect(stream)
        await worker.stop()
        let progress = events.filter { $0.event == "progress" }
        let seconds = Double(elapsed.withLock { $0 }.components.seconds) + Double(elapsed.withLock { $0 }.components.attoseconds) / 1e18
        // At most one publish per 50 ms, plus the first and the final flush.
        #expect(progress.count <= Int(seconds / 0.05) + 3, "\(progress.count) publishes in \(seconds)s")
        #expect(progress.count >= 1)
        #expect(progress.last?.percent == 100 && progress.last?.message == "item 10000")
        #expect(try await client.job(id).progress == 100)
    }

    @Test func execHandlersReportProgressOnDescriptorThree() async throws {
        let queue = uniqueQueue("execprog")
        let client = SpoolClient(configuration: testConfiguration(url: url))
        let id = try await client.enqueue(JobRequest(queue: queue, type: "sh"))
        let stream = client.events(job: id)
        let script = """
            echo "progress 25 reading" >&3; sleep 0.5
            echo "not a progress line" >&3
            echo "progress 75 writing" >&$SPOOL_PROGRESS_FD; sleep 0.1
            echo '"ok"'
            """
        let (_, worker) = start(queue) { h in h.register("sh", ExecHandler(argv: ["/bin/sh", "-c", script]).handler) }
        let events = try await collect(stream)
        await worker.stop()
        let progress = events.filter { $0.event == "progress" }
        // Both, in order (under heavy load the reporter may coalesce 25 into 75; never lose 75).
        #expect(progress.map(\.percent) == [25, 75] || progress.map(\.percent) == [75], "\(progress.map(\.percent))")
        #expect(progress.last?.message == "writing" && progress.allSatisfy { $0.message == "reading" || $0.message == "writing" })
        #expect(try await client.job(id).result == #""ok""#)
    }

    @Test func anUnknownJobIsAnErrorNotAHang() async throws {
        let client = SpoolClient(configuration: testConfiguration(url: url))
        await #expect(throws: SpoolError.self) { _ = try await collect(client.events(job: "\(uniqueQueue()).0000deadbeef"), timeout: 10) }
    }

    /// A purged job publishes `purged` on its own channel: the stream ends at
    /// once instead of waiting forever for an event no script will send.
    @Test func aPurgedJobEndsItsStreamAtOnce() async throws {
        let client = SpoolClient(configuration: testConfiguration(url: url))
        let queue = uniqueQueue("purged")
        let id = try await client.enqueue(JobRequest(queue: queue, type: "t", runAt: client.clock.nowMillis() + 60_000))
        do {
            _ = try await collect(client.events(job: id), timeout: 5) { _ = try await client.purge(queue, state: .delayed) }
            Issue.record("expected the stream to end with an error")
        } catch let error as SpoolError {
            #expect(error.code == .jobNotFound && error.message == "the job was purged", "\(error)")
        }
    }

    /// A record deleted some other way (by hand, or expired) publishes
    /// nothing: the renewal, every third of the listing, notices it.
    @Test func aJobWhoseRecordVanishesEndsItsStream() async throws {
        let client = SpoolClient(configuration: testConfiguration(url: url))
        let queue = uniqueQueue("vanished")
        let id = try await client.enqueue(JobRequest(queue: queue, type: "t", runAt: client.clock.nowMillis() + 60_000))
        let key = QueueKeys(prefix: "spool", queue: queue).job(id)
        let url = url
        do {
            _ = try await collect(client.events(job: id, followFor: .milliseconds(300)), timeout: 5) {
                _ = try RedisConnection(url: url).command(["DEL", key])
            }
            Issue.record("expected the stream to end with an error")
        } catch let error as SpoolError {
            #expect(error.code == .jobNotFound && error.message == "the job no longer exists", "\(error)")
        }
    }

    @Test func redisDownAtTheStartIsUnavailable() async throws {
        var config = testConfiguration(url: url)
        config.redisURL = RedisURL(address: .tcp(host: "127.0.0.1", port: TestRedis.closedPort))
        let client = SpoolClient(configuration: config)
        do {
            _ = try await collect(client.events(job: "q.00000001"), timeout: 10)
            Issue.record("expected an error")
        } catch let error as SpoolError {
            #expect(error.code == .unavailable)
        }
    }
}

/// An async latch.
final class Gate: Sendable {
    private let opened = Atomic<Bool>(false)
    func open() { opened.store(true, ordering: .relaxed) }
    func wait() async {
        while !opened.load(ordering: .relaxed) { try? await Task.sleep(for: .milliseconds(10)) }
    }
}

@Suite("Events for outside clients")
struct OutsideSubscriberTests {
    @Test func redisCliSubscribeReceivesTheDocumentedJSON() async throws {
        let url = try SharedRedis.url
        let queue = uniqueQueue("cli-sub")
        let channel = QueueKeys(prefix: "spool", queue: queue).events
        #expect(channel == "spool:{\(queue)}:events", "the channel docs/PROTOCOL.md names")
        let redisCli = try ChildProcess.spawn(
            try TestRedis.which("redis-cli"), arguments: ["-u", try SharedRedis.urlString, "SUBSCRIBE", channel], stdout: .pipe, stderr: .null)
        defer {
            redisCli.signalProcess(SIGTERM)
            _ = redisCli.wait()
        }
        let lines = LineCollector(redisCli.stdout)
        #expect(await eventually { lines.text.contains("subscribe") })

        let config = testConfiguration(url: url)
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        handlers.register("t") { context in
            context.progress(50, "half")
            try await Task.sleep(for: .milliseconds(60))
            return nil
        }
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue]), handlers: handlers))
        let id = try await client.enqueue(JobRequest(queue: queue, type: "t"))
        #expect(await eventually { lines.text.contains(#""event":"completed""#) })
        await worker.stop()

        let messages = lines.text.split(separator: "\n").filter { $0.hasPrefix("{") }
        let objects = messages.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(objects.map { $0["event"] as? String } == ["enqueued", "active", "progress", "completed"])
        for object in objects {
            #expect(object["id"] as? String == id)
            #expect(object["queue"] as? String == queue)
            #expect(object["state"] is String && object["at"] is Int && object["seq"] is Int)
        }
        #expect(objects[2]["percent"] as? Int == 50 && objects[2]["message"] as? String == "half")
    }
}

@Suite("A job's own channel")
struct FollowedJobTests {
    /// Scripts publish on `P:{Q}:events:<id>` only for jobs listed by
    /// watch.lua; the queue's channel gets every event either way, those of
    /// one script call in one message, one per line.
    @Test func onlyAFollowedJobGetsItsOwnChannel() async throws {
        let url = try SharedRedis.url
        let conn = try RedisConnection(url: url)
        let queue = uniqueQueue("followed")
        let keys = QueueKeys(prefix: "spool", queue: queue)
        let now = Int(Date().timeIntervalSince1970 * 1000)
        let followed = JobID.make(queue: queue, nowMillis: now)
        let other = JobID.make(queue: queue, nowMillis: now)
        let redisCli = try ChildProcess.spawn(
            try TestRedis.which("redis-cli"),
            arguments: ["-u", try SharedRedis.urlString, "SUBSCRIBE", keys.events(job: followed), keys.events(job: other), keys.events],
            stdout: .pipe, stderr: .null)
        defer {
            redisCli.signalProcess(SIGTERM)
            _ = redisCli.wait()
        }
        let lines = LineCollector(redisCli.stdout)
        let tailed = Mutex<[JobEvent]>([])
        let tail = Task {
            for try await event in SpoolClient(configuration: testConfiguration(url: url)).events(queue: queue) {
                tailed.withLock { $0.append(event) }
            }
        }
        defer { tail.cancel() }
        #expect(await eventually {
            try RedisConnection(url: url).command(["PUBSUB", "NUMSUB", keys.events]).array?.last?.int == 2
                && lines.text.components(separatedBy: "subscribe").count > 3
        })

        #expect(try conn.eval(Scripts.watch, keys: [keys.prefix], args: [followed, "60000"]) == .integer(2))
        _ = try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: [String(now)] + enqueueJobArgs(followed) + enqueueJobArgs(other))
        let claimed = try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(now), "w", "T", "60000", "0", "1000", "0", "2"])
        #expect(claimed.array?.count == 2)
        #expect(try conn.eval(Scripts.complete, keys: [keys.prefix], args: [String(now), "-1", followed, "T", "1", other, "T.2", "2"])
            == .array([.integer(1), .integer(1)]))
        #expect(await eventually { lines.text.components(separatedBy: #""event":"completed""#).count == 4 })

        // redis-cli prints a message as "message", the channel, then the
        // payload, whose own newlines split it into one line per event.
        let out = lines.text.split(separator: "\n").map(String.init)
        var perChannel: [String: [[String]]] = [:]
        for i in out.indices where out[i] == "message" && i + 2 < out.count {
            let events = out[(i + 2)...].prefix { $0.hasPrefix("{") }.map {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["event"] as? String ?? "?"
            }
            perChannel[out[i + 1], default: []].append(events)
        }
        #expect(perChannel[keys.events(job: followed)] == [["enqueued"], ["active"], ["completed"]])
        #expect(perChannel[keys.events(job: other)] == nil, "nobody follows it: nothing on its own channel")
        #expect(perChannel[keys.events] == [["enqueued", "enqueued"], ["active", "active"], ["completed", "completed"]],
                "one message per script call on the queue's channel")
        // SpoolClient.events(queue:) splits the messages back into events.
        #expect(await eventually { tailed.withLock { $0.count } >= 6 })
        #expect(tailed.withLock { $0.map(\.event) } == ["enqueued", "enqueued", "active", "active", "completed", "completed"])
        #expect(tailed.withLock { $0.map(\.id) } == [followed, other, followed, other, followed, other])
    }

    /// A job that runs longer than one listing keeps its own channel: the
    /// stream renews the listing. Without the renewal the listing lapses, the
    /// last progress and the completion are never published where the stream
    /// listens, and it times out.
    @Test func aFollowOutlivedByItsJobIsRenewed() async throws {
        let url = try SharedRedis.url
        let queue = uniqueQueue("renew")
        let config = testConfiguration(url: url)
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        handlers.register("slow") { context in
            context.progress(10, "started")
            try await Task.sleep(for: .milliseconds(1500))
            context.progress(90, "late")
            return nil
        }
        let id = try await client.enqueue(JobRequest(queue: queue, type: "slow"))
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue]), handlers: handlers))
        let events = try await collect(client.events(job: id, followFor: .milliseconds(300)), timeout: 10)
        await worker.stop()
        #expect(events.contains { $0.message == "late" }, "\(events.map(\.event))")
        #expect(events.last?.event == "completed")
    }

    /// claim and enqueue ask about the pause, other priorities, the watched
    /// set and taken ids in one EXISTS; a followed job must not be mistaken
    /// for any of the others, nor they for it.
    /// A renewal that comes after the listing lapsed (a stalled or
    /// suspended reader) gets 2 from watch.lua and reads the record again:
    /// the terminal event published in the gap never reached the job's
    /// channel, and without the new snapshot the stream would wait for ever.
    @Test func aLapsedFollowIsMadeGoodByTheRecord() async throws {
        let url = try SharedRedis.url
        let queue = uniqueQueue("lapsed")
        let keys = QueueKeys(prefix: "spool", queue: queue)
        let client = SpoolClient(configuration: testConfiguration(url: url))
        let id = try await client.enqueue(JobRequest(queue: queue, type: "t"))
        let events = try await collect(client.events(job: id, followFor: .milliseconds(600)), timeout: 5) {
            // As if the listing had lapsed: the job ends while it is not listed.
            let conn = try RedisConnection(url: url)
            _ = try conn.command(["ZREM", keys.prefix + "watched", id])
            let now = String(client.clock.nowMillis())
            _ = try conn.eval(Scripts.claim, keys: [keys.prefix], args: [now, "w", "T", "60000"])
            _ = try conn.eval(Scripts.complete, keys: [keys.prefix], args: [now, "-1", id, "T", "1"])
        }
        #expect(events.map(\.event) == ["snapshot", "snapshot"], "\(events.map(\.event))")
        #expect(events.last?.state == .completed)
    }

    @Test func aFollowedJobChangesNothingButItsChannel() throws {
        let conn = try RedisConnection(url: try SharedRedis.url)
        let queue = uniqueQueue("followed-flags")
        let keys = QueueKeys(prefix: "spool", queue: queue)
        let now = 1_800_000_000_000
        let plain = JobID.make(queue: queue, nowMillis: now)
        let urgent = JobID.make(queue: queue, nowMillis: now + 1)
        #expect(try conn.eval(Scripts.watch, keys: [keys.prefix], args: [plain, "60000"]) == .integer(2))
        // A single job: the count includes the watched set, and the id is still new.
        #expect(try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: [String(now)] + enqueueJobArgs(plain)) == .array([.string(plain)]))
        #expect(try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: [String(now)] + enqueueJobArgs(plain)) == .array([.integer(-5)]))
        #expect(try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: [String(now)] + enqueueJobArgs(urgent, options: ["priority", "9"]))
            == .array([.string(urgent)]))
        // Paused and followed: still paused.
        #expect(try conn.eval(Scripts.pause, keys: [keys.prefix], args: ["1", String(now)]) == .integer(1))
        #expect(try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(now), "w", "T", "60000"]) == .integer(-7))
        #expect(try conn.eval(Scripts.pause, keys: [keys.prefix], args: ["0", String(now)]) == .integer(1))
        // Prioritized and followed: the higher priority still goes first.
        let claimed = try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(now), "w", "T", "60000", "0", "1000", "0", "2"])
        #expect(claimed.array?.compactMap { $0.array?.first?.string } == [urgent, plain])
        // Followed, nothing prioritized: the plain path.
        let third = JobID.make(queue: queue, nowMillis: now + 2)
        _ = try conn.eval(Scripts.enqueue, keys: [keys.prefix], args: [String(now)] + enqueueJobArgs(third))
        let next = try conn.eval(Scripts.claim, keys: [keys.prefix], args: [String(now), "w", "U", "60000"])
        #expect(next.array?.first?.array?.first?.string == third)
        #expect(try InvariantChecker.violations(queue: queue, url: try SharedRedis.url).isEmpty)
    }

    @Test func aFollowLapsesAndALongerOneIsNotCutShort() async throws {
        let conn = try RedisConnection(url: try SharedRedis.url)
        let keys = QueueKeys(prefix: "spool", queue: uniqueQueue("lapse"))
        let watched = keys.prefix + "watched"
        #expect(try conn.eval(Scripts.watch, keys: [keys.prefix], args: ["a", "60000"]) == .integer(2), "newly listed")
        #expect(try conn.eval(Scripts.watch, keys: [keys.prefix], args: ["a", "100"]) == .integer(1), "listed already")
        #expect(try conn.command(["PTTL", watched]).int ?? 0 > 50_000, "the shorter request keeps the longer deadline")
        #expect(try conn.eval(Scripts.watch, keys: [keys.prefix], args: ["b", "100"]) == .integer(2))
        try await Task.sleep(for: .milliseconds(250))
        #expect(try conn.eval(Scripts.watch, keys: [keys.prefix], args: ["c", "100"]) == .integer(2))
        #expect(try conn.command(["ZRANGE", watched, "0", "-1"]) == .array([.string("c"), .string("a")]), "b lapsed and was dropped")
        #expect(try conn.eval(Scripts.watch, keys: [keys.prefix], args: ["b", "100"]) == .integer(2), "b had lapsed: read the record again")
        for bad in ["0", "3600001", "1.5", "soon", "1e3", " 100"] {
            #expect(try conn.eval(Scripts.watch, keys: [keys.prefix], args: ["d", bad]) == .integer(-8), "\(bad)")
        }
        #expect(try conn.eval(Scripts.watch, keys: [keys.prefix], args: ["", "100"]) == .integer(-8))
        #expect(try conn.command(["ZSCORE", watched, "d"]) == .null)
        let alone = QueueKeys(prefix: "spool", queue: uniqueQueue("alone"))
        #expect(try conn.eval(Scripts.watch, keys: [alone.prefix], args: ["x", "100"]) == .integer(2))
        try await Task.sleep(for: .milliseconds(250))
        #expect(try conn.command(["EXISTS", alone.prefix + "watched"]) == .integer(0), "the key expires with its last entry")
    }
}

/// Accumulates a pipe's output on its own thread.
final class LineCollector: Sendable {
    private let data = Mutex<[UInt8]>([])
    init(_ fd: Int32) {
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                if n <= 0 { break }
                data.withLock { $0.append(contentsOf: buffer[0..<n]) }
            }
            close(fd)
        }
    }
    var text: String { data.withLock { String(decoding: $0, as: UTF8.self) } }
}
