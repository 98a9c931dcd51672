import Foundation
import Spool
import SpoolServer
import SpoolTestSupport
import Testing

/// Server-Sent Events read incrementally off a real socket.
@Suite("Status reader: event streams")
struct EventStreamTests {
    @Test func aJobsStreamFromEnqueueToCompletionWithProgressInOrder() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("sse")
        let enqueued = try await server.post("/queues/\(queue)/jobs", #"{"type": "steps", "payload": {"steps": 5}}"#)
        #expect(enqueued.status == 201, "\(enqueued.text)")
        let id = try #require(enqueued.json["id"] as? String)
        #expect(enqueued.headers["location"] == "/jobs/\(id)")

        let stream = try await EventStreamReader.open(port: server.port, "/jobs/\(id)/events")
        defer { stream.close() }
        #expect(stream.head.status == 200)
        #expect(stream.head.headers["content-type"]?.hasPrefix("text/event-stream") == true)
        // The snapshot comes before any worker exists: the stream is live.
        let snapshot = try #require(try await stream.next())
        #expect(snapshot.event == "snapshot" && snapshot.json["state"] as? String == "waiting", "\(snapshot)")
        #expect((snapshot.json["job"] as? [String: Any])?["id"] as? String == id)

        var handlers = JobHandlers()
        handlers.register("steps") { context in
            for step in stride(from: 0, through: 100, by: 20) {
                context.progress(Double(step), "step \(step)")
                try await Task.sleep(for: .milliseconds(80))
            }
            return #""done""#
        }
        let worker = RunningWorker(Worker(configuration: server.configuration, options: WorkerOptions(queues: [queue]), handlers: handlers))
        let rest = try await stream.all()  // returns when the server ends the stream
        await worker.stop()

        let names = rest.map(\.event)
        #expect(names.first == "active" && names.last == "completed", "\(names)")
        #expect(rest.last?.json["state"] as? String == "completed")
        let progress = rest.filter { $0.event == "progress" }
        let percents = progress.compactMap { $0.json["percent"] as? Double }
        // In order, first to last; the worker may coalesce an intermediate report, never the last.
        #expect(percents == percents.sorted() && Set(percents).count == percents.count, "\(percents)")
        #expect(percents.first == 0 && percents.last == 100 && percents.count >= 4, "\(percents)")
        #expect(progress.last?.json["message"] as? String == "step 100")
        // Each event's SSE id is its seq, and every script bumps the job's seq
        // by one: consecutive ids from the snapshot on mean no event was lost.
        let seqs = ([snapshot] + rest).compactMap { $0.id.flatMap { Int($0) } }
        #expect(seqs.count == rest.count + 1 && seqs == Array(1...(seqs.last ?? 0)), "\(seqs)")
    }

    @Test func aStreamOpenedAfterTheEndSendsTheSnapshotAndEnds() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("sse-late")
        let id = try await server.client.enqueue(JobRequest(queue: queue, type: "t"))
        try await server.client.cancel(id, reason: "not needed")
        let stream = try await EventStreamReader.open(port: server.port, "/jobs/\(id)/events")
        let events = try await stream.all()
        #expect(events.map(\.event) == ["snapshot"] && events.first?.json["state"] as? String == "cancelled", "\(events)")

        let unknown = try await HTTPTestClient.get(port: server.port, "/jobs/\(queue).00000000deadbeef/events")
        #expect(unknown.status == 404 && unknown.errorCode == "not_found")
    }

    @Test func aQueuesStreamCarriesEveryJobsEventsAndKeepsAlive() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("sse-q")
        let first = try await server.client.enqueue(JobRequest(queue: queue, type: "t"))
        let stream = try await EventStreamReader.open(port: server.port, "/queues/\(queue)/events")
        defer { stream.close() }
        #expect(stream.head.status == 200)
        try await Task.sleep(for: .milliseconds(300))  // the subscription is made
        let second = try await server.client.enqueue(JobRequest(queue: queue, type: "t"))
        try await server.client.cancel(first)
        var seen: [(String, String)] = []
        while seen.count < 2, let event = try await stream.next() {
            seen.append((event.event, event.json["id"] as? String ?? ""))
        }
        #expect(seen.map(\.0) == ["enqueued", "cancelled"] && seen.map(\.1) == [second, first], "\(seen)")
        // Idle: keep-alive comments (every second in tests) flow until the client leaves.
        #expect(try await stream.keepAlive())
        #expect(try await stream.keepAlive())

        let unknown = try await HTTPTestClient.get(port: server.port, "/queues/\(uniqueQueue("never"))/events")
        #expect(unknown.status == 404 && unknown.errorCode == "not_found")
    }

    @Test func theDashboardsStreamFollowsSeveralQueuesAtOnce() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let a = uniqueQueue("sse-a")
        let b = uniqueQueue("sse-b")
        let stream = try await EventStreamReader.open(port: server.port, "/events?queue=\(a)&queue=\(b)")
        defer { stream.close() }
        #expect(stream.head.status == 200)
        try await Task.sleep(for: .milliseconds(300))
        let ida = try await server.client.enqueue(JobRequest(queue: a, type: "t"))
        let idb = try await server.client.enqueue(JobRequest(queue: b, type: "t"))
        let e1 = try #require(try await stream.next())
        let e2 = try #require(try await stream.next())
        #expect([e1.json["id"] as? String, e2.json["id"] as? String] == [ida, idb])
        // A queue event is about no job: it has no id, not an empty one.
        #expect(try await server.client.pause(a))
        let paused = try #require(try await stream.next())
        #expect(paused.event == "paused" && paused.json["queue"] as? String == a && paused.json.keys.sorted() == ["at", "event", "queue"], "\(paused.data)")
        let none = try await HTTPTestClient.get(port: server.port, "/events")
        #expect(none.status == 400 && none.errorCode == "bad_request")
    }

    @Test func streamsEndWhenClientsLeaveAndFreeTheirSlot() async throws {
        let server = try await TestServer.start { $0.maxStreams = 1 }
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("sse-slot")
        try await server.client.enqueue(JobRequest(queue: queue, type: "t"))
        let first = try await EventStreamReader.open(port: server.port, "/queues/\(queue)/events")
        #expect(first.head.status == 200)
        #expect(try await first.keepAlive())  // its body is running and holds the slot
        let refused = try await HTTPTestClient.get(port: server.port, "/queues/\(queue)/events")
        #expect(refused.status == 503 && refused.errorCode == "unavailable", "\(refused.text)")
        first.close()
        // The server notices the client went away and frees the slot.
        var freed = false
        let deadline = Date().addingTimeInterval(10)
        while !freed && Date() < deadline {
            let attempt = try await EventStreamReader.open(port: server.port, "/queues/\(queue)/events")
            freed = attempt.head.status == 200
            attempt.close()
            if !freed { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(freed)
    }
}
