import Foundation
import Spool
import SpoolServer
import SpoolTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// docs/openapi.json: served as is, and checked against the running server by
/// schemathesis, a tool that did not write it.
@Suite("Status reader: OpenAPI")
struct OpenAPITests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theServedDocumentIsDocsOpenAPIJSON() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let file = try String(contentsOf: Self.repository.appendingPathComponent("docs/openapi.json"), encoding: .utf8)
        let served = try await server.get("/openapi.json")
        #expect(served.status == 200 && served.headers["content-type"]?.hasPrefix("application/json") == true)
        // The generator drops only the file's final newline.
        #expect(served.text == String(file.dropLast(file.hasSuffix("\n") ? 1 : 0)), "docs/openapi.json changed: run `make openapi`")
        #expect(served.json["openapi"] as? String == "3.1.0")
    }

    @Test func everyRouteIsDocumentedAndEveryDocumentedPathAnswers() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let document = try await server.get("/openapi.json").json
        let paths = (document["paths"] as? [String: Any] ?? [:])
        // Each documented operation exists: a request with any method the
        // document does not give for the path is 405, never 404.
        for (path, item) in paths {
            let concrete = path.replacingOccurrences(of: "{queue}", with: "q").replacingOccurrences(of: "{id}", with: "q.abc")
            let methods = Set((item as? [String: Any] ?? [:]).keys.map { $0.uppercased() })
            let r = try await HTTPTestClient.request(port: server.port, "PATCH", concrete)
            #expect(r.status == 405, "\(path)")
            let allowed = Set((r.headers["allow"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            // HEAD comes with GET (RFC 9110), undocumented, except on event streams.
            let head: Set<String> = methods.contains("GET") && !path.hasSuffix("events") ? ["HEAD"] : []
            #expect(allowed == methods.union(head), "\(path): Allow \(allowed), documented \(methods)")
        }
        #expect(paths.count == 18, "\(paths.keys.sorted())")
    }

    /// schemathesis (from PyPI, installed by `make deps`) generates requests
    /// from the document, valid and invalid, and checks every response
    /// against it: status codes, content types, schemas, headers, that valid
    /// data is accepted and invalid data rejected, that guarded operations
    /// refuse a request without the token, that unknown methods get 405.
    /// Event streams are left out (they do not end); EventStreamTests covers them.
    @Test(.timeLimit(.minutes(3))) func schemathesisFindsNoFailures() async throws {
        let token = "st-\(UUID().uuidString)"
        let prefix = "st\(UInt32.random(in: 0...UInt32.max))"
        let server = try await TestServer.start(prefix: prefix) { $0.token = token }
        defer { Task { await server.stop() } }
        // A job of each interesting kind so the generated requests meet real data.
        let queue = "st-queue"
        let client = server.client
        try await client.enqueue(JobRequest(queue: queue, type: "t"))
        let tool = try Tools.find("schemathesis")
        let work = NSTemporaryDirectory() + "spool-schemathesis-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let arguments = [
            "run", "http://127.0.0.1:\(server.port)/openapi.json", "--checks", "all", "--exclude-path-regex", "events$",
            "--header", "Authorization: Bearer \(token)", "--max-examples", "15", "--workers", "1", "--request-timeout", "10",
            "--seed", "1", "--no-color",
        ]
        // One worker: hypothesis is not thread-safe on CPython 3.11 (ast.parse).
        // In a scratch directory: hypothesis keeps its example database in the working directory.
        // Niced: on two cores, other suites' timing-sensitive tests come first.
        let command = "cd '\(work)' && exec nice -n 10 '\(tool)' " + arguments.map { "'\($0)'" }.joined(separator: " ")
        let result = try await runTool("/bin/sh", ["-c", command])
        let tail = result.stdout.split(separator: "\n").suffix(80).joined(separator: "\n")
        #expect(result.status == 0, "schemathesis exit \(result.status):\n\(tail)\n\(result.stderr)")
        #expect(result.stdout.contains("passed") || result.stdout.contains("No issues found"), "\(tail)")
        let keys = try await client.redis.command(["KEYS", prefix + ":*"])
        #expect((keys.array?.count ?? 0) > 0, "schemathesis enqueued through the API")
    }
}

/// Programs the tests run that `make deps` installs.
enum Tools {
    /// The first `name` on PATH.
    static func which(_ name: String) throws -> String {
        guard let path = ChildProcess.which(name) else {
            throw TestSupportError("\(name) is not on PATH: run `make deps` (scripts/deps.sh installs it)")
        }
        return path
    }

    /// `name` on PATH, or where python3's pip puts scripts (system or user).
    static func find(_ name: String) throws -> String {
        if let path = ChildProcess.which(name) { return path }
        let out = NSTemporaryDirectory() + "spool-which-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let child = try ChildProcess.spawn(
            try which("python3"),
            arguments: ["-c", "import site, sysconfig; print(sysconfig.get_path('scripts')); print(site.getuserbase() + '/bin')"],
            stdout: .append(out), stderr: .null)
        _ = child.wait()
        let dirs = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n")
        for dir in dirs where access("\(dir)/\(name)", X_OK) == 0 { return "\(dir)/\(name)" }
        throw TestSupportError("\(name) is not installed: run `make deps` (scripts/deps.sh installs it)")
    }
}
