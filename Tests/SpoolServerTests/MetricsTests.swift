import Foundation
import Spool
import SpoolServer
import SpoolTestSupport
import Testing

/// `/metrics`: valid Prometheus text whose counters follow Redis.
@Suite("Status reader: metrics")
struct MetricsTests {
    @Test func metricsParseAsPrometheusTextAndMoveWhenJobsRun() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("metrics")
        try await server.client.enqueue(JobRequest(queue: queue, type: "work"))
        let before = try await server.get("/metrics")
        #expect(before.status == 200 && before.headers["content-type"]?.hasPrefix("text/plain") == true)
        try PrometheusText.validate(before.text)
        let q = "queue=\"\(queue)\""
        #expect(PrometheusText.value(before.text, "spool_jobs_enqueued_total{\(q)}") == 1, "\(before.text)")
        #expect(PrometheusText.value(before.text, "spool_jobs_completed_total{\(q)}") == 0)
        #expect(PrometheusText.value(before.text, "spool_queue_jobs{\(q),state=\"waiting\"}") == 1)

        // A worker (not the server) runs jobs; the counters follow Redis.
        var handlers = JobHandlers()
        handlers.register("work") { context in
            if context.payload == "\"fail\"" { throw JobFailure.permanent("no") }
            try await Task.sleep(for: .milliseconds(30))
            return nil
        }
        let worker = RunningWorker(Worker(configuration: server.configuration, options: WorkerOptions(queues: [queue]), handlers: handlers))
        try await server.client.enqueue(JobRequest(queue: queue, type: "work"))
        try await server.client.enqueue(JobRequest(queue: queue, type: "work", payload: "\"fail\""))
        #expect(
            await eventually {
                let counts = try await server.client.counts(queue)
                return counts.completed == 2 && counts.dead == 1
            })
        await worker.stop()

        let after = try await server.get("/metrics")
        try PrometheusText.validate(after.text)
        #expect(PrometheusText.value(after.text, "spool_jobs_enqueued_total{\(q)}") == 3, "\(after.text)")
        #expect(PrometheusText.value(after.text, "spool_jobs_completed_total{\(q)}") == 2)
        #expect(PrometheusText.value(after.text, "spool_jobs_dead_total{\(q)}") == 1)
        #expect(PrometheusText.value(after.text, "spool_queue_jobs{\(q),state=\"completed\"}") == 2)
        #expect(PrometheusText.value(after.text, "spool_queue_jobs{\(q),state=\"waiting\"}") == 0)
        #expect(PrometheusText.value(after.text, "spool_job_duration_seconds_count{\(q)}") == 2)
        let sum = PrometheusText.value(after.text, "spool_job_duration_seconds_sum{\(q)}") ?? 0
        #expect(sum >= 0.06 && sum < 10, "two jobs of at least 30 ms: \(sum)")
        #expect(after.text.contains("# TYPE spool_jobs_completed_total counter"))
        #expect(after.text.contains("# TYPE spool_job_duration_seconds histogram"))
        #expect(PrometheusText.value(after.text, "spool_redis_up") == 1)

        // A second scrape does not count the same durations twice.
        let again = try await server.get("/metrics")
        #expect(PrometheusText.value(again.text, "spool_job_duration_seconds_count{\(q)}") == 2)

        // And a parser that did not write it agrees (prometheus_client, installed by make deps).
        let check = try await PrometheusText.parseWithPython(after.text)
        #expect(check.status == 0, "prometheus_client: \(check.stderr)")
        #expect(check.stdout.contains("spool_jobs_completed counter"), "\(check.stdout)")

        // A queue that is gone (as spool bench removes its own) takes its series along.
        let keys = try await server.client.redis.command(["KEYS", server.client.keys(queue).prefix + "*"]).array?.compactMap(\.string) ?? []
        try await server.client.redis.command(["DEL"] + keys)
        try await server.client.redis.command(["SREM", GlobalKeys(prefix: server.configuration.prefix).queues, queue])
        let gone = try await server.get("/metrics")
        try PrometheusText.validate(gone.text)
        #expect(!gone.text.contains(q), "\(gone.text)")
    }
}

/// Checks and reads the Prometheus text exposition format (0.0.4).
enum PrometheusText {
    /// Throws at the first line that is not a comment, HELP, TYPE or sample.
    static func validate(_ text: String) throws {
        let name = #"[a-zA-Z_:][a-zA-Z0-9_:]*"#
        let label = #"[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*""#
        let value = #"(?:[+-]?(?:[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|Inf)|NaN)"#
        let sample = try Regex("^\(name)(?:\\{(?:\(label)(?:,\(label))*,?)?\\})? \(value)(?: -?[0-9]+)?$")
        let type = try Regex("^# TYPE \(name) (?:counter|gauge|histogram|summary|untyped)$")
        let help = try Regex("^# HELP \(name)(?: .*)?$")
        var typed: Set<String> = []
        #expect(text.hasSuffix("\n"), "the exposition ends with a newline")
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let s = String(line)
            if s.hasPrefix("# TYPE ") {
                guard s.wholeMatch(of: type) != nil else { throw TestSupportError("bad TYPE line: \(s)") }
                let family = s.split(separator: " ")[2]
                guard typed.insert(String(family)).inserted else { throw TestSupportError("TYPE given twice: \(s)") }
            } else if s.hasPrefix("# HELP ") {
                guard s.wholeMatch(of: help) != nil else { throw TestSupportError("bad HELP line: \(s)") }
            } else if s.hasPrefix("#") {
                continue
            } else if s.wholeMatch(of: sample) == nil {
                throw TestSupportError("bad sample line: \(s)")
            }
        }
    }

    /// The value of the sample whose name and labels are exactly `series`.
    static func value(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            let parts = line.split(separator: " ")
            return parts.count >= 2 ? Double(parts[1]) : nil
        }
        return nil
    }

    /// Runs Python's prometheus_client parser over `text`; prints `name type` per family.
    static func parseWithPython(_ text: String) async throws -> (status: Int32, stdout: String, stderr: String) {
        let file = NSTemporaryDirectory() + "spool-metrics-\(UUID().uuidString).txt"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let script = """
            import sys
            from prometheus_client.parser import text_string_to_metric_families
            for family in text_string_to_metric_families(open(sys.argv[1]).read()):
                for sample in family.samples:
                    float(sample.value)
                print(family.name, family.type)
            """
        return try await runTool(try Tools.which("python3"), ["-c", script, file])
    }
}

/// Runs a program to completion (on its own thread) and captures its output.
func runTool(_ path: String, _ arguments: [String], environment: [String: String]? = nil) async throws -> (
    status: Int32, stdout: String, stderr: String
) {
    try await offPool {
        let out = NSTemporaryDirectory() + "spool-tool-\(UUID().uuidString).out"
        let err = NSTemporaryDirectory() + "spool-tool-\(UUID().uuidString).err"
        defer {
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: err)
        }
        let child = try ChildProcess.spawn(path, arguments: arguments, environment: environment, stdout: .append(out), stderr: .append(err))
        let termination = child.wait()
        let status: Int32 =
            switch termination {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        return (
            status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        )
    }
}
