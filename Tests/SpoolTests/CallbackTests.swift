import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

@Suite("Completion callbacks")
struct CallbackTests {
    let url: RedisURL
    init() throws { url = try SharedRedis.url }

    @Test func theFinalStateIsPostedSignedAndRetriedAfterA500() async throws {
        let receiver = try HTTPReceiver(statuses: [500])
        let queue = uniqueQueue("callback")
        let config = testConfiguration(url: url) { $0.callbackSecret = "s3cret" }
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        handlers.register("t") { _ in #"{"pages":3}"# }
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue]), handlers: handlers))
        var request = JobRequest(queue: queue, type: "t")
        request.callback = receiver.url
        let id = try await client.enqueue(request)

        #expect(await eventually(timeout: 20) { try await client.job(id).callbackStatus == "delivered" })
        await worker.stop()
        let posts = receiver.requests
        #expect(posts.count == 2, "the first answer was 500, so it was sent again")
        let last = try #require(posts.last)
        #expect(last.method == "POST" && last.path == "/hook")
        #expect(last.headers["content-type"] == "application/json")
        #expect(last.headers["x-spool-signature"] == CallbackSender(secret: "s3cret").signature(for: last.body))
        let body = try #require(try JSONSerialization.jsonObject(with: Data(last.body.utf8)) as? [String: Any])
        #expect(body["id"] as? String == id && body["state"] as? String == "completed" && body["queue"] as? String == queue)
        #expect((body["result"] as? [String: Any])?["pages"] as? Int == 3)
        // The delivery was a job of its own in the same queue; its first attempt's error is kept.
        let deliveries = try await client.jobs(queue, state: .completed).filter { $0.type == Worker.callbackType }
        #expect(deliveries.count == 1 && deliveries[0].errors.first?.error.contains("HTTP 500") == true)
        #expect(try await InvariantChecker.check(queue: queue, url: url).isEmpty)
    }

    @Test func deadJobsAreReportedAndDeliveryFailuresAreVisible() async throws {
        let queue = uniqueQueue("callback-dead")
        let config = testConfiguration(url: url)
        let client = SpoolClient(configuration: config)
        let receiver = try HTTPReceiver()
        var handlers = JobHandlers()
        handlers.register("bad") { _ in throw JobFailure.permanent("no such customer") }
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue]), handlers: handlers))
        var request = JobRequest(queue: queue, type: "bad")
        request.callback = receiver.url
        let dead = try await client.enqueue(request)
        // A URL nobody listens on: the failure is recorded on the job.
        request.callback = "http://127.0.0.1:\(TestRedis.closedPort)/nobody"
        let unreachable = try await client.enqueue(request)
        #expect(await eventually(timeout: 20) { try await client.job(dead).callbackStatus == "delivered" })
        #expect(await eventually(timeout: 20) { try await client.job(unreachable).callbackStatus == "failed" })
        await worker.stop()
        let body = try #require(try JSONSerialization.jsonObject(with: Data(receiver.requests[0].body.utf8)) as? [String: Any])
        #expect(body["state"] as? String == "dead" && body["error"] as? String == "no such customer")
        #expect(receiver.requests[0].headers["x-spool-signature"] == nil, "no secret, no signature")
        #expect(try await client.job(unreachable).callbackError?.isEmpty == false)
        // spool status says how each delivery went.
        let environment = try testEnvironment(redis: try SharedRedis.urlString)
        let delivered = try await runSpool(["status", dead], environment: environment).stdout
        #expect(delivered.contains("callback: \(receiver.url) (delivered)\n"), "\(delivered)")
        let failed = try await runSpool(["status", unreachable], environment: environment).stdout
        #expect(failed.contains("callback: http://127.0.0.1:\(TestRedis.closedPort)/nobody (failed: "), "\(failed)")
    }

    @Test func onlyHTTPCallbacksAreAccepted() async throws {
        let client = SpoolClient(configuration: testConfiguration(url: url))
        var request = JobRequest(queue: uniqueQueue("cb"), type: "t")
        request.callback = "file:///etc/passwd"
        await #expect(throws: SpoolError.self) { try await client.enqueue(request) }
    }
}
