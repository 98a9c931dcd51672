import Foundation
import Hiredis
import Spool
import SpoolServer
import SpoolTestSupport
import Testing

/// Redis going away: 503 with a JSON error, the server keeps running, and
/// everything works again when Redis is back. Secrets never leak.
@Suite("Status reader: Redis outages")
struct ServerOutageTests {
    @Test func redisStoppedGives503ThenTheServerRecovers() async throws {
        let redis = try await offPool { try TestRedis(appendOnly: true) }
        defer { redis.stop() }
        let server = try await TestServer.start(url: redis.url)
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("outage")
        let id = try await server.client.enqueue(JobRequest(queue: queue, type: "t"))
        #expect(try await server.get("/jobs/\(id)").status == 200)

        try await offPool { redis.stop() }
        for path in ["/healthz", "/queues", "/queues/\(queue)", "/queues/\(queue)/jobs", "/jobs/\(id)", "/workers", "/jobs/\(id)/events"] {
            let r = try await server.get(path)
            #expect(r.status == 503, "\(path): \(r.status) \(r.text)")
            #expect(r.errorCode == "unavailable" && r.headers["retry-after"] != nil, "\(path): \(r.text)")
        }
        let post = try await server.post("/queues/\(queue)/jobs", #"{"type": "t"}"#)
        #expect(post.status == 503 && post.errorCode == "unavailable")
        let health = try await server.get("/healthz")
        #expect(health.json["status"] as? String == "unavailable" && (health.json["redis"] as? [String: Any])?["ok"] as? Bool == false)
        // Metrics still answer, saying Redis is down and counting the errors.
        let metrics = try await server.get("/metrics")
        #expect(metrics.status == 200 && metrics.text.contains("spool_redis_up 0.0"), "\(metrics.text)")
        let errors = PrometheusText.value(metrics.text, "spool_redis_errors_total") ?? 0
        #expect(errors >= 9, "\(errors)")

        try await offPool { try redis.start() }
        #expect(await eventually(timeout: 10) { try await server.get("/healthz").status == 200 })
        let back = try await server.get("/jobs/\(id)")
        #expect(back.status == 200 && back.json["state"] as? String == "waiting", "\(back.text)")
        let again = try await server.post("/queues/\(queue)/jobs", #"{"type": "t"}"#)
        #expect(again.status == 201, "\(again.text)")
        #expect(try await server.get("/metrics").text.contains("spool_redis_up 1.0"))
    }

    @Test func theRedisPasswordNeverAppearsInResponsesOrLogs() async throws {
        let secret = "pw-\(UUID().uuidString)"
        let closed = TestRedis.closedPort
        let url = try RedisURL(parsing: "redis://spooluser:\(secret)@127.0.0.1:\(closed)/0")
        let server = try await TestServer.start(url: url) { $0.token = "tok-\(UUID().uuidString)" }
        defer { Task { await server.stop() } }
        var bodies: [String] = []
        for path in [
            "/healthz", "/queues", "/queues/q", "/queues/q/jobs", "/jobs/q.abc", "/jobs/q.abc/events", "/workers", "/metrics", "/events?queue=q",
        ] {
            let r = try await server.get(path)
            #expect(r.status == 503 || r.status == 200, "\(path): \(r.text)")
            bodies.append(r.text)
        }
        bodies.append(try await server.post("/queues/q/jobs", #"{"type": "t"}"#).text)
        #expect(!bodies.isEmpty && bodies.allSatisfy { !$0.contains(secret) }, "\(bodies)")
        // The server did log the failures, without the password.
        let log = server.log.all
        #expect(log.contains { $0.contains("127.0.0.1") }, "\(log)")
        #expect(!log.contains { $0.contains(secret) }, "\(log)")
    }
}
