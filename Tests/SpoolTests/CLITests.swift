import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `spool` executable: output for scripts, errors as one line and a sysexits code.
@Suite("spool CLI")
struct CLITests {
    let environment: [String: String]
    init() throws { environment = try testEnvironment(redis: try SharedRedis.urlString) }

    func spool(_ arguments: String..., stdin: String? = nil, env: [String: String] = [:]) async throws -> CommandResult {
        try await runSpool(arguments, environment: environment.merging(env) { $1 }, stdin: stdin)
    }

    /// One line on stderr that starts with `spool:` and says `fragment`.
    func expectError(_ r: CommandResult, status: Int32, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == status, "stderr: \(r.stderr)", sourceLocation: sourceLocation)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "one line, got: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("spool: "), sourceLocation: sourceLocation)
        #expect(r.stderr.contains(fragment), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stdout.isEmpty, sourceLocation: sourceLocation)
    }

    @Test func enqueuePrintsTheIdAloneAndStatusReadsIt() async throws {
        let queue = uniqueQueue("cli")
        let r = try await spool("enqueue", queue, "greet", "--payload", #"{"name":"Ada"}"#, "--max-attempts", "2")
        #expect(r.status == 0, "\(r.stderr)")
        let id = r.stdout.trimmingCharacters(in: .newlines)
        #expect(r.stdout == id + "\n" && JobID.queue(of: id) == queue)

        let status = try await spool("status", id, "--json")
        #expect(status.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        #expect(object?["state"] as? String == "waiting")
        #expect(object?["max_attempts"] as? Int == 2)

        let human = try await spool("status", id)
        #expect(human.stdout.contains("waiting") && human.stdout.contains("greet"))
        let counts = try await spool("status", "--json")
        #expect(counts.stdout.contains(queue))
        let listed = try await spool("jobs", queue, "--state", "waiting", "--json")
        #expect(listed.stdout.contains(id))
    }

    @Test func payloadFromStdinAndFromAFile() async throws {
        let queue = uniqueQueue("cli")
        let fromStdin = try await spool("enqueue", queue, "t", "--payload", "-", stdin: #"[1,2,3]"#)
        #expect(fromStdin.status == 0)
        let file = NSTemporaryDirectory() + "spool-payload-\(UUID().uuidString).json"
        try #"{"from":"file"}"#.write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try await spool("enqueue", queue, "t", "--payload", "@" + file)
        #expect(fromFile.status == 0)
        let client = SpoolClient(configuration: testConfiguration(url: try SharedRedis.url))
        #expect(try await client.job(fromStdin.stdout.trimmingCharacters(in: .newlines)).payload == "[1,2,3]")
        #expect(try await client.job(fromFile.stdout.trimmingCharacters(in: .newlines)).payload == #"{"from":"file"}"#)
    }

    @Test func badInputGetsOneLineAndASysexitsCode() async throws {
        let queue = uniqueQueue("cli")
        expectError(try await spool("enqueue", queue, "t", "--payload", "{nope"), status: 65, "payload is not valid JSON")
        expectError(
            try await spool("enqueue", queue, "t", "--payload", #""0123456789""#, env: ["SPOOL_PAYLOAD_LIMIT": "10"]), status: 65,
            "over the limit of 10")
        expectError(try await spool("enqueue", "bad queue", "t"), status: 64, "queue name")
        expectError(try await spool("enqueue", queue, "bad/type"), status: 64, "job type")
        // A URL path cannot carry these two: the API and the dashboard could not reach the queue.
        expectError(try await spool("enqueue", "..", "t"), status: 64, "must match [A-Za-z0-9._-]{1,64} and not be . or ..")
        expectError(try await spool("enqueue", queue, "."), status: 64, "job type \".\"")
        expectError(try await spool("enqueue", queue, "t", "--payload", "@/nonexistent/p.json"), status: 66, "/nonexistent/p.json")
        expectError(try await spool("status", "\(queue).00000000deadbeef"), status: 66, "no such job")
        expectError(try await spool("retry", "\(queue).00000000deadbeef"), status: 66, "no such job")
        expectError(try await spool("purge", queue, "--state", "active"), status: 64, "active")
        let closed = "redis://127.0.0.1:\(TestRedis.closedPort)"
        expectError(try await spool("enqueue", queue, "t", "--redis", closed), status: 69, "127.0.0.1")
        expectError(try await spool("status", env: ["SPOOL_REDIS_URL": closed]), status: 69, "127.0.0.1")
        expectError(try await spool("worker", "--queue", queue, "--redis", closed), status: 69, "Redis")
        expectError(try await spool("status", "--redis", "http://nope"), status: 64, "scheme must be redis or unix")
        expectError(try await spool("status", "--config", "/nonexistent/spool.yaml"), status: 78, "/nonexistent/spool.yaml")
        // Values that used to slip through: a timeout that rounds to 0 ms (the
        // queue's default), a callback without a host, a day that rolls over,
        // an empty scenario (all of them), a range with three dots.
        expectError(try await spool("enqueue", queue, "t", "--timeout", "0.0001"), status: 64, "timeout must be from 0.001 to 604800 seconds")
        expectError(try await spool("enqueue", queue, "t", "--callback", "http://"), status: 64, "URL with a host")
        expectError(try await spool("enqueue", queue, "t", "--callback", "https:///hook"), status: 64, "URL with a host")
        for day in ["2030-02-29T00:00:00Z", "2030-04-31T00:00:00Z", "2030-01-01T24:00:00Z", "2030-01-01T10:60:00+02:00"] {
            expectError(try await spool("enqueue", queue, "t", "--at", day), status: 64, "is not an RFC 3339 time")
        }
        expectError(try await spool("bench", "--scenario", ""), status: 64, #"--scenario "" is not one of"#)
        expectError(try await spool("bench", "--scenario", "latency,,memory"), status: 64, #"--scenario "" is not one of"#)
        expectError(try await spool("worker", "--queue", queue, "--processes", "1...3"), status: 64, "must be N or MIN..MAX")
        expectError(try await spool("watch", "\(queue).00000000deadbeef"), status: 66, "watch job \(queue).00000000deadbeef: no such job")
        expectError(try await spool("cron", "add", "n", queue, "bad/type", "every 5s"), status: 64, "cron add on queue \(queue): job type")
        // Nothing was stored by any of the rejected enqueues.
        let client = SpoolClient(configuration: testConfiguration(url: try SharedRedis.url))
        #expect(try await client.counts(queue) == QueueCounts(queue: queue))
    }

    /// argument-parser's own errors follow the same rule as Spool's: one line
    /// on stderr, exit 64, and where to read more.
    @Test func usageErrorsAreOneLineToo() async throws {
        expectError(try await spool("enqueue"), status: 64, "spool: missing expected argument '<queue>' (see 'spool enqueue --help')")
        expectError(try await spool("status", "--bogus"), status: 64, "unknown option '--bogus' (see 'spool status --help')")
        expectError(try await spool("cron", "add", "n"), status: 64, "(see 'spool cron add --help')")
        expectError(try await spool("nosuch"), status: 64, "unexpected argument 'nosuch' (see 'spool --help')")
        expectError(try await spool("enqueue", "q", "t", "--max-attempts", "x"), status: 64, "'x' is invalid for '--max-attempts <n>'")
        expectError(try await spool("enqueue", "q", "t", "1", "--payload", "2"), status: 64, "not both (see")
        let bare = try await spool()
        #expect(bare.status == 64 && bare.stdout.isEmpty && bare.stderr.contains("USAGE: spool <subcommand>"), "\(bare.stderr)")
        // A payload argument that is not UTF-8 would otherwise be stored with
        // U+FFFD in place of its bad byte.
        let queue = uniqueQueue("cli-utf8")
        let latin1 = try await runSpool(
            ["-c", #"exec "$0" enqueue "$1" t "$(printf '\351')""#, try SpoolBinary.path, queue], environment: environment,
            binaryOverride: "/bin/sh")
        expectError(latin1, status: 64, "argument 4 is not valid UTF-8")
        let client = SpoolClient(configuration: testConfiguration(url: try SharedRedis.url))
        #expect(try await client.counts(queue).waiting == 0)
        // A leap day is a day.
        let leap = try await spool("enqueue", queue, "t", "--at", "2032-02-29T12:00:00Z")
        #expect(leap.status == 0, "\(leap.stderr)")
        // A negative priority needs no `=`.
        let low = try await spool("enqueue", queue, "t", "--priority", "-10")
        #expect(low.status == 0, "\(low.stderr)")
        #expect(try await client.job(low.stdout.trimmingCharacters(in: .newlines)).priority == -10)
    }

    @Test func passwordsNeverAppearInErrors() async throws {
        let closed = "redis://app:sup3rsecret@127.0.0.1:\(TestRedis.closedPort)/0"
        let r = try await spool("status", "--redis", closed)
        #expect(r.status == 69)
        #expect(!r.stderr.contains("sup3rsecret"), "\(r.stderr)")
    }

    @Test func helpIsThereForEverySubcommand() async throws {
        for command in ["enqueue", "worker", "status", "jobs", "retry", "purge"] {
            let r = try await spool(command, "--help")
            #expect(r.status == 0, "\(command): \(r.stderr)")
            #expect(r.stdout.contains("USAGE:") && r.stdout.contains("--redis"), "\(command)")
        }
        let top = try await spool("--help")
        #expect(top.status == 0 && top.stdout.contains("SUBCOMMANDS"))
    }

    @Test func deadJobsAreListedRetriedAndPurged() async throws {
        let queue = uniqueQueue("cli")
        var ids: [String] = []
        for _ in 0..<3 { ids.append(try await spool("enqueue", queue, "fails", "--max-attempts", "1").stdout.trimmingCharacters(in: .newlines)) }
        let worker = try SpoolProcess(["worker", "--queue", queue, "--exec", "fails=false"], environment: environment)
        defer { worker.kill() }
        let client = SpoolClient(configuration: testConfiguration(url: try SharedRedis.url))
        #expect(await eventually { try await client.counts(queue).dead == 3 })
        worker.signal(SIGTERM)
        #expect(try await worker.waitForExit(timeout: 10) == .exited(0))

        let dead = try await spool("jobs", queue, "--state", "dead")
        #expect(dead.status == 0 && ids.allSatisfy { dead.stdout.contains($0) })
        let status = try await spool("status", ids[0])
        #expect(status.stdout.contains("exit status 1"), "\(status.stdout)")
        let one = try await spool("retry", ids[0])
        #expect(one.status == 0)
        expectError(try await spool("retry", ids[0]), status: 65, "not dead")
        let all = try await spool("retry", "--all-dead", queue)
        #expect(all.status == 0 && all.stdout.contains("2"))
        #expect(try await client.counts(queue).waiting == 3)
        let purged = try await spool("purge", queue, "--state", "waiting")
        #expect(purged.status == 0 && purged.stdout.contains("3"))
        #expect(try await client.counts(queue) == QueueCounts(queue: queue))
    }

    @Test func theBinaryCarriesItsScriptsAndRunsFromAnyDirectory() async throws {
        let queue = uniqueQueue("cwd")
        // A fresh server has no scripts loaded, and / has no lua/ directory.
        let server = try await offPool { try TestRedis(appendOnly: false) }
        defer { server.stop() }
        let binary = try SpoolBinary.path
        let r = try await runSpool(
            ["-c", "cd / && exec '\(binary)' enqueue \(queue) t --redis \(server.urlString)"],
            environment: environment, binaryOverride: "/bin/sh")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(JobID.queue(of: r.stdout.trimmingCharacters(in: .newlines)) == queue)
    }

    @Test func watchExitsWithTheJobsOutcome() async throws {
        let queue = uniqueQueue("watch")
        let script = try shellScript("for p in 30 60 90; do echo \"progress $p step $p\" >&3; sleep 0.1; done\necho '{\"ok\":true}'\n")
        let worker = try SpoolProcess(["worker", "--queue", queue, "--exec", "steps=\(script)", "--exec", "fails=false"], environment: environment)
        defer { worker.kill() }

        // Completed: exit 0; off a terminal, one plain line per event. The delay
        // makes sure the watch starts before the job does.
        let ok = try await spool("enqueue", queue, "steps", "--delay", "3").stdout.trimmingCharacters(in: .newlines)
        let watched = try await spool("watch", ok)
        #expect(watched.status == 0, "\(watched.stderr)")
        let lines = watched.stdout.split(separator: "\n")
        #expect(lines.first?.contains("snapshot delayed") == true, "\(watched.stdout)")
        #expect(lines.contains { $0.contains("progress active  90% step 90") }, "\(watched.stdout)")
        #expect(lines.last?.contains("completed completed") == true, "\(watched.stdout)")

        // Dead: exit 1 and the error on stderr.
        let bad = try await spool("enqueue", queue, "fails", "--max-attempts", "1").stdout.trimmingCharacters(in: .newlines)
        let dead = try await spool("watch", bad, "--json")
        #expect(dead.status == 1)
        #expect(dead.stderr == "spool: job \(bad) is dead: exit status 1\n")
        let objects = dead.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(objects.last?["state"] as? String == "dead" && objects.count >= 1)

        // enqueue --wait: the id on stdout, progress on stderr, the outcome as exit status.
        let waited = try await spool("enqueue", queue, "steps", "--wait")
        #expect(waited.status == 0)
        #expect(JobID.queue(of: waited.stdout.trimmingCharacters(in: .newlines)) == queue)
        #expect(waited.stderr.contains("completed"))
        worker.signal(SIGTERM)
        _ = try await worker.waitForExit(timeout: 10)
    }

    @Test func watchingACancelledJobExitsTwo() async throws {
        let queue = uniqueQueue("watch")
        let id = try await spool("enqueue", queue, "never").stdout.trimmingCharacters(in: .newlines)
        let env = environment
        let watching = Task { try await runSpool(["watch", id], environment: env) }
        try await Task.sleep(for: .milliseconds(500))
        let cancelled = try await spool("cancel", id, "--reason", "not needed")
        #expect(cancelled.status == 0)
        let result = try await watching.value
        #expect(result.status == 2)
        #expect(result.stderr == "spool: job \(id) was cancelled: not needed\n")
        expectError(try await spool("cancel", id), status: 65, "already finished")
    }

    /// The text form shows what the record says about how the job ended,
    /// and nothing a handler or a canceller wrote can drive the terminal.
    @Test func statusShowsACancelsReasonAndPrintsNoEscapeSequences() async throws {
        let queue = uniqueQueue("cli-status")
        let id = try await spool("enqueue", queue, "t", "--callback", "http://127.0.0.1:9/hook").stdout.trimmingCharacters(in: .newlines)
        #expect(try await spool("cancel", id, "--reason", "not \u{1B}]0;pwned\u{07}needed\u{1B}[2J").status == 0)
        let status = try await spool("status", id)
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains("reason:   not \u{FFFD}]0;pwned\u{FFFD}needed\u{FFFD}[2J\n"), "\(status.stdout)")
        #expect(!status.stdout.unicodeScalars.contains("\u{1B}") && !status.stdout.unicodeScalars.contains("\u{07}"))
        #expect(status.stdout.contains("callback: http://127.0.0.1:9/hook\n"), "a cancelled job has no delivery to report: \(status.stdout)")
        let lines = try await spool("jobs", queue, "--state", "cancelled")
        #expect(lines.stdout.contains("not \u{FFFD}]0;pwned"), "the reason is the LAST ERROR column: \(lines.stdout)")
        #expect(!lines.stdout.unicodeScalars.contains("\u{1B}"), "\(lines.stdout)")
    }

    @Test func watchingAJobThatIsPurgedExits66() async throws {
        let queue = uniqueQueue("watch")
        let id = try await spool("enqueue", queue, "later", "--delay", "60").stdout.trimmingCharacters(in: .newlines)
        let env = environment
        // timeout(1) turns a hang into exit 124.
        let spoolPath = try SpoolBinary.path
        let watching = Task { try await runSpool(["10", spoolPath, "watch", id], environment: env, binaryOverride: "/usr/bin/timeout") }
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await spool("purge", queue, "--state", "delayed").status == 0)
        let result = try await watching.value
        #expect(result.status == 66)
        #expect(result.stderr.hasSuffix("the job was purged\n") && result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    }
}

/// `spool bench`: the JSON shape scripts read, and the one-line usage error.
extension CLITests {
    @Test func benchReportsOneScenarioAsJSON() async throws {
        let r = try await spool("bench", "--scenario", "enqueue-single", "--jobs", "200", "--runs", "2", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(object?["runs"] as? Int == 2)
        #expect((object?["machine"] as? [String: Any])?["cores"] as? Int ?? 0 >= 1)
        let scenarios = object?["scenarios"] as? [[String: Any]] ?? []
        #expect(scenarios.map { $0["name"] as? String } == ["enqueue-single"])
        let jobsPerSecond = (scenarios.first?["metrics"] as? [String: Any])?["jobs_per_s"] as? [String: Any]
        #expect((jobsPerSecond?["median"] as? Double ?? 0) > 0, "\(r.stdout)")
        #expect((jobsPerSecond?["values"] as? [Any])?.count == 2)
    }

    @Test func benchRejectsAnUnknownScenario() async throws {
        expectError(try await spool("bench", "--scenario", "enqueue-everything"), status: 64, #"--scenario "enqueue-everything""#)
    }
}
