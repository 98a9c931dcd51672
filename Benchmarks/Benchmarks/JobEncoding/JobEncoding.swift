import Benchmark
import BenchmarkInputs
import Spool

// Job encoding: what SpoolClient.enqueue does for each job before anything is
// sent: check the request (names, limits, the payload is JSON), make its id,
// and build its part of enqueue.lua's ARGV. A batch enqueue pays this per job, on
// the producer's thread. Results are per job, over 1,000 per sample.

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .spool

    let client = SpoolClient(configuration: SpoolConfiguration())  // connects only when used: never here
    let id = JobID.make(queue: "emails", nowMillis: Requests.now)

    // The arguments of a plain request: six ARGV strings after the call's `now`
    // (two integers formatted).
    Benchmark("enqueue args, plain request") { benchmark in
        for _ in benchmark.scaledIterations {
            var args = [String(Requests.now)]
            client.appendEnqueueArgs(Requests.plain, id: id, to: &args)
            blackHole(args)
        }
    }

    // Every option set (timeout, backoff, priority, idempotency key, callback):
    // the longest argument list enqueue.lua takes.
    Benchmark("enqueue args, every option") { benchmark in
        for _ in benchmark.scaledIterations {
            var args = [String(Requests.now)]
            client.appendEnqueueArgs(Requests.full, id: id, to: &args)
            blackHole(args)
        }
    }

    // A job id: 5 random bytes from the OS and hex formatting, once per job.
    Benchmark("job id") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(JobID.make(queue: "emails", nowMillis: Requests.now))
        }
    }

    // JobRequest.validate, dominated by checking that the payload is JSON: the
    // same check (JSONValidator.isValid, internal to Spool, so reached through
    // validate here) that a worker runs on every handler result before storing it.
    Benchmark("validate, 140 B payload") { benchmark in
        for _ in benchmark.scaledIterations {
            try Requests.plain.validate(payloadLimit: 512 * 1024)
        }
    }

    // The same parse on a large payload: the part that grows with its size.
    Benchmark("validate, 16 KiB payload") { benchmark in
        for _ in benchmark.scaledIterations {
            try Requests.large.validate(payloadLimit: 512 * 1024)
        }
    }
}

/// Requests as producers send them.
enum Requests {
    static let now = 1_763_800_000_000

    static let plain = JobRequest(queue: "emails", type: "send_welcome", payload: Payloads.small)

    static let full: JobRequest = {
        var r = JobRequest(queue: "emails", type: "send_welcome", payload: Payloads.small, maxAttempts: 5, timeout: 30)
        r.backoffBase = 0.5
        r.backoffCap = 60
        r.priority = JobPriority.high
        r.idempotencyKey = "welcome:user:84129"
        r.callback = "https://hooks.example.com/spool/done"
        return r
    }()

    static let large = JobRequest(queue: "orders", type: "invoice", payload: Payloads.large)
}

