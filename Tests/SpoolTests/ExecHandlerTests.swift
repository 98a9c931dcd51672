import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

@Suite("Exec handlers")
struct ExecHandlerTests {
    let url: RedisURL
    init() throws { url = try SharedRedis.url }

    /// Runs one job of `type` through a worker whose handlers are `exec`, and returns it finished.
    func run(_ exec: [String: [String]], type: String, payload: String = "{}", timeout: Double? = nil, maxAttempts: Int = 1) async throws -> Job {
        let queue = uniqueQueue("exec")
        let config = testConfiguration(url: url)
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        for (t, argv) in exec { handlers.register(t, ExecHandler(argv: argv).handler) }
        var request = JobRequest(queue: queue, type: type, payload: payload, maxAttempts: maxAttempts)
        request.timeout = timeout
        let id = try await client.enqueue(request)
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue]), handlers: handlers))
        _ = await eventually(timeout: 20) { try await client.job(id).state.isTerminal }
        await worker.stop()
        #expect(try await InvariantChecker.check(queue: queue, url: url).isEmpty)
        return try await client.job(id)
    }

    @Test func payloadOnStdinAndJSONStdoutBecomesTheResult() async throws {
        let job = try await run(["copy": ["cat"]], type: "copy", payload: #"{"to":"a@example.com","n":[1,2]}"#)
        #expect(job.state == .completed)
        #expect(job.result == #"{"to":"a@example.com","n":[1,2]}"#)
    }

    @Test func environmentNamesTheJob() async throws {
        let script =
            #"printf '{"id":"%s","queue":"%s","attempt":%s,"worker":"%s"}' "$SPOOL_JOB_ID" "$SPOOL_QUEUE" "$SPOOL_ATTEMPT" "$SPOOL_WORKER_ID""#
        let job = try await run(["env": ["/bin/sh", "-c", script]], type: "env")
        #expect(job.result == #"{"id":"\#(job.id)","queue":"\#(job.queue)","attempt":1,"worker":"\#(job.worker ?? "")"}"#)
    }

    @Test func textThatIsNotJSONIsStoredAsAString() async throws {
        let job = try await run(["say": ["echo", "hello", "world"]], type: "say")
        #expect(job.result == #""hello world""#)
    }

    @Test func argumentsAreNeverGivenToAShell() async throws {
        // With a shell, `$HOME; echo hacked` would expand and run; as argv it is literal.
        let job = try await run(["lit": ExecHandler.split("echo $HOME;echo hacked")], type: "lit")
        #expect(job.result == #""$HOME;echo hacked""#)
    }

    @Test func nonZeroExitFailsWithTheTailOfStderr() async throws {
        let job = try await run(["bad": ["/bin/sh", "-c", "echo noise; echo 'disk full' >&2; exit 3"]], type: "bad")
        #expect(job.state == .dead)
        #expect(job.errors.first?.error == "exit status 3: disk full")
    }

    @Test func aSignalFailsTheAttempt() async throws {
        let job = try await run(["crash": ["/bin/sh", "-c", "kill -SEGV $$"]], type: "crash")
        #expect(job.errors.first?.error.hasPrefix("killed by signal 11") == true)
    }

    @Test func passingTheTimeoutKillsTheCommand() async throws {
        let marker = NSTemporaryDirectory() + "spool-exec-\(UUID().uuidString)"
        // The child records its pid, then sleeps far past the 0.5 s timeout.
        let job = try await run(["hang": ["/bin/sh", "-c", "echo $$ > \(marker); exec sleep 30"]], type: "hang", timeout: 0.5)
        #expect(job.state == .dead)
        #expect(job.errors.first?.error == "timed out after 0.5s")
        let pid = try #require(Int32(try String(contentsOfFile: marker, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(kill(pid, 0) != 0, "the timed-out child is gone")
    }

    @Test func aMissingProgramFailsClearly() async throws {
        let job = try await run(["nope": ["/nonexistent/tool"]], type: "nope")
        #expect(job.errors.first?.error == "cannot run /nonexistent/tool: not found or not executable")
    }
}

@Suite("Exec handlers run side by side")
struct ExecConcurrencyTests {
    @Test func idleSlotsAllPickUpJobsEnqueuedTogether() async throws {
        let url = try SharedRedis.url
        let queue = uniqueQueue("side")
        let dir = NSTemporaryDirectory() + "spool-barrier-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // Each job checks in, then waits (at most 10 s) until all four have: they
        // can only all complete if four slots run them at the same time.
        let barrier = """
            touch "\(dir)/$SPOOL_JOB_ID"; i=0
            while [ "$(ls "\(dir)" | wc -l)" -lt 4 ]; do i=$((i+1)); [ $i -gt 200 ] && exit 7; sleep 0.05; done
            echo '"met"'
            """
        let config = testConfiguration(url: url)
        let client = SpoolClient(configuration: config)
        var handlers = JobHandlers()
        handlers.register("meet", ExecHandler(argv: ["/bin/sh", "-c", barrier]).handler)
        let worker = RunningWorker(Worker(configuration: config, options: WorkerOptions(queues: [queue], concurrency: 4), handlers: handlers))
        // Let all four slots go idle and block first.
        try await Task.sleep(for: .milliseconds(300))
        let ids = try await client.enqueue((0..<4).map { _ in JobRequest(queue: queue, type: "meet", maxAttempts: 1) })
        #expect(await eventually(timeout: 20) { try await client.counts(queue).completed == 4 })
        await worker.stop()
        for id in ids { #expect(try await client.job(id).result == #""met""#) }
    }
}
