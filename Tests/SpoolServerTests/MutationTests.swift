import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

/// Enqueue (one and a batch), pause, resume, cancel and retry over HTTP, each
/// refused without the bearer token.
@Suite("HTTP mutations")
struct MutationTests {
    @Test func everyMutationWorksWithTheTokenAndIsRefusedWithoutIt() async throws {
        let token = "t0ken-\(UUID().uuidString)"
        let server = try await TestServer.start { $0.token = token }
        let queue = uniqueQueue("http-mut")
        let client = server.client

        // Each mutation answers 401 without the token and changes nothing.
        for path in [
            "/queues/\(queue)/jobs", "/queues/\(queue)/jobs/batch", "/queues/\(queue)/pause", "/queues/\(queue)/resume",
            "/queues/\(queue)/dead/retry",
        ] {
            let refused = try await server.post(path, #"{"type":"t"}"#)
            #expect(refused.status == 401 && refused.errorCode == "unauthorized", "\(path): \(refused.status)")
        }
        #expect(try await client.counts(queue) == QueueCounts(queue: queue))

        // Enqueue one (with priority, key and delay) and a batch.
        let one = try await server.post(
            "/queues/\(queue)/jobs", #"{"type":"t","payload":{"n":1},"priority":5,"idempotency_key":"k-1"}"#, token: token)
        #expect(one.status == 201, "\(one.text)")
        let id = try #require(one.json["id"] as? String)
        let again = try await server.post("/queues/\(queue)/jobs", #"{"type":"t","payload":{"n":1},"idempotency_key":"k-1"}"#, token: token)
        #expect(again.json["id"] as? String == id, "the key collapses duplicates over HTTP too")
        let batch = try await server.post("/queues/\(queue)/jobs/batch", #"{"jobs":[{"type":"t"},{"type":"t","delay":60}]}"#, token: token)
        #expect(batch.status == 201)
        let ids = try #require(batch.json["ids"] as? [String])
        #expect(ids.count == 2)
        var counts = try await client.counts(queue)
        #expect(counts.waiting == 2 && counts.delayed == 1)

        // Pause and resume.
        #expect(try await server.post("/queues/\(queue)/pause", nil, token: token).status == 200)
        #expect(try await client.counts(queue).paused)
        #expect(try await server.post("/queues/\(queue)/resume", nil, token: token).status == 200)
        #expect(try await !client.counts(queue).paused)
        // The scheme in any case, with any number of spaces after it; a wrong token is refused.
        for (header, status) in [("bearer  \(token)", 200), ("BEARER \(token)", 200), ("Bearer \(token)x", 401), ("Bearer", 401)] {
            let r = try await HTTPTestClient.request(port: server.port, "POST", "/queues/\(queue)/pause", headers: ["Authorization": header], body: [])
            #expect(r.status == status, "\(header): \(r.text)")
        }
        #expect(try await server.post("/queues/\(queue)/resume", nil, token: token).status == 200)

        // Cancel: a delayed job at once (200); unknown job 404.
        let cancelled = try await server.post("/jobs/\(ids[1])/cancel", #"{"reason":"not needed"}"#, token: token)
        #expect(cancelled.status == 200 && cancelled.json["state"] as? String == "cancelled", "\(cancelled.text)")
        #expect(try await server.post("/jobs/\(queue).00000000ffff/cancel", nil, token: token).status == 404)

        // A running job: 202, then it ends cancelled; a finished one: 409.
        var handlers = JobHandlers()
        handlers.register("t") { _ in
            try await Task.sleep(for: .seconds(30))
            return nil
        }
        handlers.register("bad") { _ in throw JobFailure.permanent("nope") }
        let worker = RunningWorker(
            Worker(configuration: server.configuration, options: WorkerOptions(queues: [queue], concurrency: 2), handlers: handlers))
        #expect(await eventually { try await client.job(id).state == .active })
        let requested = try await server.post("/jobs/\(id)/cancel", nil, token: token)
        #expect(requested.status == 202, "\(requested.text)")
        #expect(await eventually(timeout: 5) { try await client.job(id).state == .cancelled })
        #expect(try await server.post("/jobs/\(id)/cancel", nil, token: token).status == 409)

        // Retry: one dead job (200), a job that is not dead (409), all dead.
        let dead = try await client.enqueue([JobRequest(queue: queue, type: "bad"), JobRequest(queue: queue, type: "bad")])
        #expect(await eventually { try await client.counts(queue).dead == 2 })
        await worker.stop()
        let retried = try await server.post("/jobs/\(dead[0])/retry", nil, token: token)
        #expect(retried.status == 200 && retried.json["state"] as? String == "waiting", "\(retried.text)")
        #expect(try await server.post("/jobs/\(dead[0])/retry", nil, token: token).status == 409)
        let all = try await server.post("/queues/\(queue)/dead/retry", nil, token: token)
        #expect(all.status == 200 && all.json["retried"] as? Int == 1, "\(all.text)")
        counts = try await client.counts(queue)
        #expect(counts.dead == 0 && counts.cancelled == 2)
        await server.stop()
    }

    /// A payload is stored and shown as it was sent: no number re-read as a
    /// `Double`, members in their order, a repeated name kept. Only
    /// whitespace and the spelling of escapes may change.
    @Test func payloadsComeBackAsTheyWereSent() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("http-exact")
        let client = server.client
        let sent = #"{ "z": 12345678901234567890, "f": 1.0, "e": 1E+2, "a": [0.10, -0, 1e400], "d": 1, "d": 2, "s": "\u00e9\ud83d\ude00\/\"\n" }"#
        let compact = #"{"z":12345678901234567890,"f":1.0,"e":1E+2,"a":[0.10,-0,1e400],"d":1,"d":2,"s":"é😀/\"\n"}"#

        let one = try await server.post("/queues/\(queue)/jobs", #"{"type": "t", "payload": "# + sent + "}")
        let id = try #require(one.json["id"] as? String, "\(one.text)")
        #expect(try await client.job(id).payload == compact, "what the worker gets")
        let shown = try await server.get("/jobs/\(id)")
        #expect(shown.text.contains(#""payload":"# + compact + ","), "\(shown.text)")

        // A payload stored by another producer (the CLI keeps its text too).
        let other = try await client.enqueue(JobRequest(queue: queue, type: "t", payload: "[1.50, 99999999999999999999, {\"b\": null, \"a\": true}]"))
        let listed = try await server.get("/queues/\(queue)/jobs?state=waiting")
        #expect(listed.text.contains(#""payload":[1.50,99999999999999999999,{"b":null,"a":true}]"#), "\(listed.text)")
        #expect(try await server.get("/jobs/\(other)").text.contains(#""payload":[1.50,99999999999999999999,"#))

        // A field given twice, at the top or in a batch item, is ambiguous; a
        // lone surrogate or bytes that are not UTF-8 are not JSON text.
        let twice = try await server.post("/queues/\(queue)/jobs", #"{"type": "t", "type": "u"}"#)
        #expect(twice.status == 400 && twice.errorMessage == #""type" is given twice"#, "\(twice.text)")
        let batch = try await server.post("/queues/\(queue)/jobs/batch", #"{"jobs": [{"type": "t"}, {"type": "t", "delay": 1, "delay": 2}]}"#)
        #expect(batch.status == 400 && batch.errorMessage == #"jobs[1]: "delay" is given twice"#, "\(batch.text)")
        let surrogate = try await server.post("/queues/\(queue)/jobs", #"{"type": "t", "payload": "\ud800"}"#)
        #expect(surrogate.status == 400 && surrogate.errorCode == "invalid_json", "\(surrogate.text)")
        let latin1 = try await HTTPTestClient.request(
            port: server.port, "POST", "/queues/\(queue)/jobs", body: Array(#"{"type": "t", "payload": "caf"#.utf8) + [0xE9, 0x22, 0x7D])
        #expect(latin1.status == 400 && latin1.errorCode == "invalid_json", "\(latin1.text)")
        // Numbers read as settings must still be numbers in range.
        let huge = try await server.post("/queues/\(queue)/jobs", #"{"type": "t", "timeout": 1e400}"#)
        #expect(huge.status == 400 && huge.errorMessage == #""timeout" must be a finite number"#, "\(huge.text)")
        let whole = try await server.post("/queues/\(queue)/jobs", #"{"type": "t", "max_attempts": 3.0, "priority": -2e1}"#)
        #expect(whole.status == 201, "\(whole.text)")
        let fraction = try await server.post("/queues/\(queue)/jobs", #"{"type": "t", "max_attempts": 2.5}"#)
        #expect(fraction.status == 400 && fraction.errorMessage?.contains("integer") == true, "\(fraction.text)")
        // JobRequest's checks hold over HTTP too, and a batch says which job broke them.
        let noHost = try await server.post("/queues/\(queue)/jobs", #"{"type": "t", "callback": "http://"}"#)
        #expect(noHost.status == 400 && noHost.errorMessage?.contains("URL with a host") == true, "\(noHost.text)")
        let tiny = try await server.post("/queues/\(queue)/jobs/batch", #"{"jobs": [{"type": "t"}, {"type": "t", "timeout": 0.0001}]}"#)
        #expect(tiny.status == 400 && tiny.errorMessage?.hasPrefix("jobs[1]: ") == true && tiny.errorMessage?.contains("0.001") == true, "\(tiny.text)")
        #expect(try await client.counts(queue).waiting == 3)
    }
}
