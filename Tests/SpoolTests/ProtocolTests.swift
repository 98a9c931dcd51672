import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

/// docs/PROTOCOL.md is enough for a producer in another language: its
/// "Enqueue from redis-cli" block, run as written, makes a job a worker completes.
@Suite("Protocol document")
struct ProtocolTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The first ```sh block after the heading.
    static func firstShellBlock(after heading: String, in text: String) -> String? {
        guard let start = text.range(of: heading) else { return nil }
        let rest = text[start.upperBound...]
        guard let open = rest.range(of: "```sh\n") else { return nil }
        let body = rest[open.upperBound...]
        guard let close = body.range(of: "```") else { return nil }
        return String(body[..<close.lowerBound])
    }

    /// Runs `block` with bash from the repository root, `redis-cli` pointed at
    /// the test server; returns the exit status and standard output.
    static func runShell(_ block: String) async throws -> (Int32, String) {
        let redisURL = try SharedRedis.urlString
        let script = """
            set -euo pipefail
            redis-cli() { command redis-cli -u '\(redisURL)' "$@"; }
            \(block)
            """
        return try await offPool { () -> (Int32, String) in
            let shell = try ChildProcess.spawn(
                "/bin/bash", arguments: ["-c", "cd '\(Self.repo.path)' && " + script], stdin: .null, stdout: .pipe, stderr: .pipe)
            var output = Data()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(shell.stdout, $0.baseAddress!, $0.count) }
                if n <= 0 { break }
                output.append(contentsOf: buffer[0..<n])
            }
            close(shell.stdout)
            close(shell.stderr)
            let status: Int32 = if case .exited(let c) = shell.wait() { c } else { -1 }
            return (status, String(decoding: output, as: UTF8.self))
        }
    }

    /// The "Variations" block, run as written, makes a delayed job with a key,
    /// a priority job and a job enqueued by EVALSHA: no call is rejected.
    @Test func theDocsVariationsEnqueueWhatTheySay() async throws {
        let doc = try String(contentsOf: Self.repo.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
        let block = try #require(Self.firstShellBlock(after: "\nVariations:", in: doc))
        let queue = uniqueQueue("emails")
        let result = try await Self.runShell(block.replacingOccurrences(of: "emails", with: queue))
        #expect(result.0 == 0, "\(result.1)")
        let ids = result.1.split(separator: "\n").filter { $0.contains("\(queue).") }
        #expect(ids.count == 3, "one id per enqueue: \(result.1)")
        let client = SpoolClient(configuration: testConfiguration(url: try SharedRedis.url))
        let counts = try await client.counts(queue)
        #expect(counts.delayed == 1 && counts.waiting == 2, "\(counts)")
        let keys = QueueKeys(prefix: "spool", queue: queue)
        let conn = try RedisConnection(url: try SharedRedis.url)
        #expect(try conn.command(["ZCARD", keys.prioritized]).int == 1)
        #expect(try conn.command(["EXISTS", keys.unique("signup-42")]).int == 1)
    }

    @Test func aJobEnqueuedWithRedisCliFollowingTheDocIsCompletedByAWorker() async throws {
        let doc = try String(contentsOf: Self.repo.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
        let block = try #require(Self.firstShellBlock(after: "## Enqueue from redis-cli", in: doc))
        #expect(block.contains("redis-cli EVAL") && block.contains("SADD spool:queues"))

        // The doc's queue is `emails`; give this run its own.
        let queue = uniqueQueue("emails")
        let redisURL = try SharedRedis.urlString
        let result = try await Self.runShell(block.replacingOccurrences(of: "emails", with: queue) + "\necho \"ID=$id\"")
        #expect(result.0 == 0, "\(result.1)")
        let idLine = try #require(result.1.split(separator: "\n").first { $0.hasPrefix("ID=") })
        let id = String(idLine.dropFirst(3))
        #expect(JobID.queue(of: id) == queue)

        let client = SpoolClient(configuration: testConfiguration(url: try SharedRedis.url))
        let waiting = try await client.job(id)
        #expect(waiting.state == .waiting && waiting.type == "welcome" && waiting.maxAttempts == 5)
        #expect(try await client.queues().contains(queue))

        let worker = try SpoolProcess(["worker", "--queue", queue, "--exec", "welcome=cat"], environment: try testEnvironment(redis: redisURL))
        defer { worker.kill() }
        #expect(await eventually { try await client.job(id).state == .completed })
        #expect(try await client.job(id).result == #"{"to":"a@example.com"}"#)
        worker.signal(SIGTERM)
        _ = try await worker.waitForExit(timeout: 10)
    }
}
