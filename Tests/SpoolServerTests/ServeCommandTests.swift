import Foundation
import Spool
import SpoolTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `spool serve` executable: its listening line, its refusal to bind
/// beyond loopback without a token, its token, and a clean stop on SIGTERM
/// with a stream open.
@Suite("spool serve")
struct ServeCommandTests {
    let environment: [String: String]
    init() throws { environment = try testEnvironment(redis: try SharedRedis.urlString) }

    /// Starts `spool serve ARGS` and waits for its listening line; returns the process and port.
    func serve(_ arguments: [String], env: [String: String] = [:]) async throws -> (SpoolProcess, Int) {
        let process = try SpoolProcess(["serve"] + arguments, environment: environment.merging(env) { $1 })
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let match = process.log.firstMatch(of: /spool serve: listening on http:\/\/127\.0\.0\.1:([0-9]+)\n/), let port = Int(match.1) {
                return (process, port)
            }
            if process.child.poll() != nil { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        process.kill()
        throw TestSupportError("spool serve did not print its listening line: \(process.log)")
    }

    @Test func servesOnAnEphemeralPortWithATokenAndStopsOnSIGTERM() async throws {
        let token = "t-\(UUID().uuidString)"
        let (process, port) = try await serve(["--port", "0"], env: ["SPOOL_TOKEN": token])
        defer { process.kill() }
        #expect(port > 0)
        #expect(try await HTTPTestClient.get(port: port, "/healthz").status == 200)
        let queue = uniqueQueue("serve")
        let refused = try await HTTPTestClient.post(port: port, "/queues/\(queue)/jobs", json: #"{"type": "t"}"#)
        #expect(refused.status == 401 && refused.errorCode == "unauthorized" && refused.headers["www-authenticate"] != nil)
        let wrong = try await HTTPTestClient.post(port: port, "/queues/\(queue)/jobs", json: #"{"type": "t"}"#, token: token + "x")
        #expect(wrong.status == 401)
        let accepted = try await HTTPTestClient.post(port: port, "/queues/\(queue)/jobs", json: #"{"type": "t"}"#, token: token)
        #expect(accepted.status == 201, "\(accepted.text)")
        // Reads need no token.
        #expect(try await HTTPTestClient.get(port: port, "/queues/\(queue)").status == 200)
        // The binary bootstraps swift-metrics, so Hummingbird's request metrics join Spool's.
        let metrics = try await HTTPTestClient.get(port: port, "/metrics")
        #expect(metrics.text.contains("spool_jobs_enqueued_total{queue=\"\(queue)\"} 1"), "\(metrics.text.prefix(3000))")
        #expect(metrics.text.contains("hb_requests"), "\(metrics.text.prefix(3000))")

        // SIGTERM with an event stream open: the stream ends and the process exits 0.
        let stream = try await EventStreamReader.open(port: port, "/queues/\(queue)/events")
        defer { stream.close() }
        #expect(stream.head.status == 200)
        process.signal(SIGTERM)
        let ended = try await stream.all()
        #expect(ended.isEmpty)
        let exit = try await process.waitForExit(timeout: 15)
        #expect(exit == .exited(0), "\(String(describing: exit)): \(process.log)")
        #expect(!process.log.contains(token), "the token is never printed")
    }

    @Test func refusesANonLoopbackAddressWithoutAToken() async throws {
        var env = environment
        env.removeValue(forKey: "SPOOL_TOKEN")
        let r = try await runSpool(["serve", "--host", "0.0.0.0", "--port", "0"], environment: env)
        #expect(r.status == 64, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && r.stderr.hasPrefix("spool: serve: refusing to listen on 0.0.0.0 without a token"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    @Test func theRedisPasswordIsNeverPrinted() async throws {
        let secret = "pw-\(UUID().uuidString)"
        let url = "redis://someone:\(secret)@127.0.0.1:\(TestRedis.closedPort)/0"
        let (process, port) = try await serve(["--port", "0", "--redis", url])
        defer { process.kill() }
        for path in ["/healthz", "/queues", "/jobs/q.abc", "/metrics"] {
            let r = try await HTTPTestClient.get(port: port, path)
            #expect(!r.text.contains(secret), "\(path): \(r.text)")
        }
        process.signal(SIGTERM)
        _ = try await process.waitForExit(timeout: 15)
        #expect(process.log.contains("127.0.0.1"), "the failures were logged: \(process.log)")
        #expect(!process.log.contains(secret), "\(process.log)")
    }
}
