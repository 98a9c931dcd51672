import Foundation
import Hiredis
import Spool
import SpoolServer
import SpoolTestSupport
import Synchronization
import Testing

/// Every JSON endpoint of the status reader, over a real socket against a
/// real Redis, with its errors.
@Suite("Status reader (HTTP)")
struct ServerTests {
    @Test func healthSaysRedisAnswers() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let r = try await server.get("/healthz")
        #expect(r.status == 200, "\(r.text)")
        #expect(r.json["status"] as? String == "ok")
        #expect((r.json["redis"] as? [String: Any])?["ok"] as? Bool == true)
        #expect(r.headers["content-type"]?.hasPrefix("application/json") == true)
    }

    @Test func queuesShowCountsStatsAndThroughput() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("http")
        let client = server.client
        try await client.enqueue(JobRequest(queue: queue, type: "t"))
        try await client.enqueue(JobRequest(queue: queue, type: "t", runAt: client.clock.nowMillis() + 60_000))

        let list = try await server.get("/queues")
        #expect(list.status == 200)
        let queues = list.json["queues"] as? [[String: Any]] ?? []
        let entry = try #require(queues.first { $0["name"] as? String == queue })
        let counts = entry["counts"] as? [String: Int] ?? [:]
        #expect(counts["waiting"] == 1 && counts["delayed"] == 1 && counts["active"] == 0 && counts.count == 7, "\(counts)")
        #expect((entry["stats"] as? [String: Int])?["enqueued"] == 2)
        #expect(entry["paused"] as? Bool == false)
        #expect(entry["throughput"] is [String: Any])

        let one = try await server.get("/queues/\(queue)")
        #expect(one.status == 200 && one.json["name"] as? String == queue)
        #expect((one.json["counts"] as? [String: Int])?["waiting"] == 1)

        let unknown = try await server.get("/queues/\(uniqueQueue("never"))")
        #expect(unknown.status == 404 && unknown.errorCode == "not_found", "\(unknown.text)")
        let bad = try await server.get("/queues/bad%20name")
        #expect(bad.status == 400 && bad.errorCode == "bad_request", "\(bad.text)")
    }

    @Test func throughputComesFromTwoSamplesOfTheStats() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("rate")
        let client = server.client
        try await client.enqueue(JobRequest(queue: queue, type: "t"))
        _ = try await server.get("/queues/\(queue)")  // first sample: 0 completed
        let worker = RunningWorker(
            Worker(
                configuration: server.configuration, options: WorkerOptions(queues: [queue], concurrency: 2),
                handlers: {
                    var h = JobHandlers(); h.register("t") { _ in nil }; return h
                }()))
        for _ in 0..<5 { try await client.enqueue(JobRequest(queue: queue, type: "t")) }
        #expect(await eventually { try await client.counts(queue).completed == 6 })
        await worker.stop()
        try await Task.sleep(for: .milliseconds(1100))
        let r = try await server.get("/queues/\(queue)")
        let throughput = r.json["throughput"] as? [String: Any] ?? [:]
        let rate = try #require(throughput["completed_per_minute"] as? Double, "\(r.text)")
        let window = try #require(throughput["window_seconds"] as? Double)
        // 6 completions since the first sample, `window` seconds ago.
        #expect(abs(rate - 6 / window * 60) < 0.01, "\(throughput)")
        #expect((r.json["stats"] as? [String: Int])?["completed"] == 6)
    }

    @Test func jobsOfAQueueByStateWithPaging() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("page")
        var ids: [String] = []
        for i in 0..<7 { ids.append(try await server.client.enqueue(JobRequest(queue: queue, type: "t", payload: "\(i)"))) }

        let first = try await server.get("/queues/\(queue)/jobs?state=waiting&limit=3")
        #expect(first.status == 200, "\(first.text)")
        #expect(first.json["total"] as? Int == 7 && first.json["limit"] as? Int == 3 && first.json["offset"] as? Int == 0)
        let page1 = (first.json["jobs"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        let second = try await server.get("/queues/\(queue)/jobs?state=waiting&limit=3&offset=3")
        let page2 = (second.json["jobs"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        let third = try await server.get("/queues/\(queue)/jobs?limit=3&offset=6")
        let page3 = (third.json["jobs"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        // Waiting jobs come oldest first, the order they will run in.
        #expect(page1 + page2 + page3 == ids, "\(page1) \(page2) \(page3)")
        let job = (first.json["jobs"] as? [[String: Any]])?.first ?? [:]
        #expect(job["payload"] as? Int == 0, "payloads are JSON values, not strings: \(job)")

        let empty = try await server.get("/queues/\(queue)/jobs?state=dead")
        #expect(empty.status == 200 && (empty.json["jobs"] as? [Any])?.isEmpty == true && empty.json["total"] as? Int == 0)
        for bad in ["state=sleeping", "limit=0", "limit=501", "offset=-1", "limit=abc"] {
            let r = try await server.get("/queues/\(queue)/jobs?\(bad)")
            #expect(r.status == 400 && r.errorCode == "bad_request", "\(bad): \(r.text)")
        }
        let unknown = try await server.get("/queues/\(uniqueQueue("never"))/jobs")
        #expect(unknown.status == 404 && unknown.errorCode == "not_found")
    }

    @Test func oneJobWithStateAttemptsTimesWorkerProgressResultAndErrors() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("job")
        let client = server.client
        var handlers = JobHandlers()
        handlers.register("flaky") { context in
            if context.attempt == 1 { throw JobFailure("first attempt fails") }
            context.progress(50, "halfway")
            try await Task.sleep(for: .milliseconds(120))
            return #"{"ok":true}"#
        }
        let worker = RunningWorker(Worker(configuration: server.configuration, options: WorkerOptions(queues: [queue]), handlers: handlers))
        let id = try await client.enqueue(JobRequest(queue: queue, type: "flaky", payload: #"{"n":1}"#, maxAttempts: 3))
        #expect(await eventually { try await client.job(id).state == .completed })
        await worker.stop()

        let r = try await server.get("/jobs/\(id)")
        #expect(r.status == 200, "\(r.text)")
        let job = r.json
        #expect(job["id"] as? String == id && job["queue"] as? String == queue && job["type"] as? String == "flaky")
        #expect(job["state"] as? String == "completed" && job["attempts"] as? Int == 2 && job["max_attempts"] as? Int == 3)
        #expect((job["payload"] as? [String: Any])?["n"] as? Int == 1)
        #expect((job["result"] as? [String: Any])?["ok"] as? Bool == true)
        #expect(job["created_at"] is Int && job["started_at"] is Int && job["finished_at"] is Int)
        #expect((job["worker"] as? String)?.isEmpty == false)
        let progress = job["progress"] as? [String: Any]
        #expect(progress?["percent"] as? Double == 50 && progress?["message"] as? String == "halfway", "\(job)")
        let errors = job["errors"] as? [[String: Any]] ?? []
        #expect(errors.count == 1 && errors.first?["error"] as? String == "first attempt fails" && errors.first?["attempt"] as? Int == 1)

        let unknown = try await server.get("/jobs/\(queue).00000000deadbeef")
        #expect(unknown.status == 404 && unknown.errorCode == "not_found" && unknown.errorMessage?.isEmpty == false)
        let malformed = try await server.get("/jobs/no-dot-here")
        #expect(malformed.status == 404 && malformed.errorCode == "not_found")
    }

    @Test func workersShowIdHostPidQueuesCurrentJobCountsAndLastSeen() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("workers")
        let gate = Gate()
        var handlers = JobHandlers()
        handlers.register("hold") { _ in
            await gate.wait()
            return nil
        }
        let worker = RunningWorker(Worker(configuration: server.configuration, options: WorkerOptions(queues: [queue]), handlers: handlers))
        let id = try await server.client.enqueue(JobRequest(queue: queue, type: "hold"))
        var mine: [String: Any] = [:]
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let all = try await server.get("/workers").json["workers"] as? [[String: Any]] ?? []
            mine = all.first { ($0["queues"] as? [String]) == [queue] } ?? [:]
            if (mine["jobs"] as? [String]) == [id] { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect((mine["jobs"] as? [String]) == [id], "worker entry with the running job: \(mine)")
        #expect(mine["pid"] as? Int == Int(getpid()))
        #expect((mine["host"] as? String)?.isEmpty == false && (mine["id"] as? String)?.isEmpty == false)
        #expect(mine["processed"] is Int && mine["last_seen"] is Int && mine["started_at"] is Int)
        gate.open()
        await worker.stop()
    }

    @Test func everyErrorIsJSONWithAStableCode() async throws {
        let server = try await TestServer.start { $0.maxBodyBytes = 4096 }
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("errors")

        let badJSON = try await server.post("/queues/\(queue)/jobs", #"{"type": "t", "payload": {nope"#)
        #expect(badJSON.status == 400 && badJSON.errorCode == "invalid_json", "\(badJSON.text)")
        // Strict JSON: Foundation's parser let trailing commas through.
        for lenient in [#"{"type": "t",}"#, #"{"type": "t", "payload": [1, 2,]}"#] {
            let reply = try await server.post("/queues/\(queue)/jobs", lenient)
            #expect(reply.status == 400 && reply.errorCode == "invalid_json", "\(lenient): \(reply.text)")
        }
        // Nesting is bounded (decoding time grows much faster than the depth).
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        let tooDeep = try await server.post("/queues/\(queue)/jobs", #"{"type": "t", "payload": "# + deep + "}")
        #expect(tooDeep.status == 400 && tooDeep.errorCode == "invalid_json" && tooDeep.errorMessage?.contains("64") == true)
        let notObject = try await server.post("/queues/\(queue)/jobs", "[1,2]")
        #expect(notObject.status == 400 && notObject.errorCode == "bad_request")
        let noType = try await server.post("/queues/\(queue)/jobs", #"{"payload": 1}"#)
        #expect(noType.status == 400 && noType.errorCode == "bad_request" && noType.errorMessage?.contains("type") == true)
        let unknownField = try await server.post("/queues/\(queue)/jobs", #"{"type": "t", "max_attempt": 3}"#)
        #expect(unknownField.status == 400 && unknownField.errorMessage?.contains("max_attempt") == true, "\(unknownField.text)")
        let wrongType = try await server.post("/queues/\(queue)/jobs", #"{"type": "t", "max_attempts": "3"}"#)
        #expect(wrongType.status == 400 && wrongType.errorCode == "bad_request")
        let badName = try await server.post("/queues/\(queue)/jobs", #"{"type": "bad/type"}"#)
        #expect(badName.status == 400 && badName.errorCode == "bad_request")

        let big = String(repeating: "x", count: 5000)
        let oversize = try await server.post("/queues/\(queue)/jobs", #"{"type": "t", "payload": ""# + big + #""}"#)
        #expect(oversize.status == 413 && oversize.errorCode == "payload_too_large", "\(oversize.text)")

        let notFound = try await server.get("/nothing/here")
        #expect(notFound.status == 404 && notFound.errorCode == "not_found")
        let longPath = try await server.get("/" + String(repeating: "a", count: 5000))
        #expect(longPath.status == 404 && (longPath.errorMessage?.count ?? 0) < 300, "the path is quoted, cut: \(longPath.body.count) bytes")
        let wrongMethod = try await HTTPTestClient.request(port: server.port, "DELETE", "/queues")
        #expect(wrongMethod.status == 405 && wrongMethod.errorCode == "method_not_allowed" && wrongMethod.headers["allow"] == "GET, HEAD")
        // HEAD: GET's status and headers, its length, no body; errors too.
        // Event streams take GET only (their handlers subscribe).
        let get = try await server.get("/openapi.json")
        let head = try await HTTPTestClient.request(port: server.port, "HEAD", "/openapi.json")
        #expect(head.status == 200 && head.body.isEmpty && head.headers["content-length"] == String(get.body.count), "\(head.headers)")
        let headMissing = try await HTTPTestClient.request(port: server.port, "HEAD", "/jobs/\(queue).00000000deadbeef")
        #expect(headMissing.status == 404 && headMissing.body.isEmpty)
        let headStream = try await HTTPTestClient.request(port: server.port, "HEAD", "/queues/\(queue)/events")
        #expect(headStream.status == 405 && headStream.headers["allow"] == "GET" && headStream.body.isEmpty)
        for r in [badJSON, notObject, oversize, notFound, wrongMethod] {
            #expect(r.headers["content-type"]?.hasPrefix("application/json") == true)
            let error = r.json["error"] as? [String: Any]
            #expect(error?.count == 2 && error?["message"] is String, "\(r.text)")
        }
        // Nothing was enqueued by any of them.
        #expect(try await server.client.counts(queue).waiting == 0)
    }

    @Test func payloadOverPayloadLimitIs422() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let limit = server.configuration.payloadLimit
        let payload = "\"" + String(repeating: "x", count: limit) + "\""
        let r = try await server.post("/queues/\(uniqueQueue("limit"))/jobs", #"{"type": "t", "payload": "# + payload + "}")
        #expect(r.status == 422 && r.errorCode == "invalid_payload" && r.errorMessage?.contains("payload_limit") == true, "\(r.text)")
    }
}

/// A one-shot latch handlers wait on.
final class Gate: Sendable {
    private let opened = Atomic<Bool>(false)
    func open() { opened.store(true, ordering: .relaxed) }
    var isOpen: Bool { opened.load(ordering: .relaxed) }
    func wait() async {
        while !opened.load(ordering: .relaxed) { try? await Task.sleep(for: .milliseconds(10)) }
    }
}
