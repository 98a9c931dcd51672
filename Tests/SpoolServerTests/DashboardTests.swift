import Foundation
import Spool
import SpoolServer
import SpoolTestSupport
import Testing

/// The dashboard in a real headless browser (Chromium from Debian, installed
/// by `make deps`): it loads, shows a queue's counts, a running job's live
/// progress and a dead job's error, and the browser reports no console errors.
@Suite("Status reader: dashboard")
struct DashboardTests {
    @Test(.timeLimit(.minutes(2))) func theDashboardShowsCountsLiveProgressAndDeadJobsWithoutErrors() async throws {
        let prefix = "dash\(UInt32.random(in: 0...UInt32.max))"
        let server = try await TestServer.start(prefix: prefix)
        defer { Task { await server.stop() } }
        let queue = uniqueQueue("dash")
        let done = Gate()
        let failure = "boom <b>\(UUID().uuidString)</b>"
        var handlers = JobHandlers()
        handlers.register("report") { context in
            // Reports progress until the test has seen the page, so the
            // browser's event stream has live events to show.
            var percent = 10.0
            while !done.isOpen {
                context.progress(min(percent, 95), "rendering page \(Int(percent))")
                percent += 1
                try await Task.sleep(for: .milliseconds(100))
            }
            return nil
        }
        handlers.register("broken") { _ in throw JobFailure.permanent(failure) }
        let worker = RunningWorker(
            Worker(configuration: server.configuration, options: WorkerOptions(queues: [queue], concurrency: 2), handlers: handlers))
        defer { done.open() }
        let client = server.client
        let dead = try await client.enqueue(JobRequest(queue: queue, type: "broken"))
        #expect(await eventually { try await client.job(dead).state == .dead })
        let running = try await client.enqueue(JobRequest(queue: queue, type: "report"))
        for _ in 0..<3 { try await client.enqueue(JobRequest(queue: queue, type: "later", runAt: client.clock.nowMillis() + 3_600_000)) }
        #expect(await eventually { (try await client.job(running).progress ?? 0) >= 12 })

        // The page is read once it has shown data and a live progress event moved the bar.
        let ready = "document.body.dataset.ready === '1' && !!document.querySelector('#active [data-job=\"\(running)\"][data-live=\"1\"]')"
        let page = try await Browser.load("http://127.0.0.1:\(server.port)/", until: ready)
        done.open()
        await worker.stop()

        #expect(page.error == nil, "\(page.error ?? "")")
        #expect(page.conditionMet, "the page never showed live progress: \(page.dom.prefix(5000))")
        let dom = page.dom
        #expect(dom.contains("data-ready=\"1\""), "the page finished its first read")
        // The queue's row with its counts.
        let row = try #require(Browser.element(dom, containing: "data-queue=\"\(queue)\"", tag: "tr"), "\(dom.prefix(5000))")
        #expect(row.contains("data-state=\"active\">1<"), "\(row)")
        #expect(row.contains("data-state=\"delayed\">3<"), "\(row)")
        #expect(row.contains("data-state=\"dead\">1<"), "\(row)")
        // The running job with its progress bar, moved by a live event.
        let active = try #require(Browser.element(dom, containing: "data-job=\"\(running)\"", tag: "div"), "\(dom.prefix(5000))")
        #expect(active.contains("<progress"), "\(active)")
        #expect(active.contains("data-live=\"1\""), "a progress event arrived over the event stream: \(active)")
        let percent = active.firstMatch(of: /data-percent="([0-9.]+)"/).flatMap { Double($0.1) } ?? 0
        #expect(percent >= 12 && percent <= 95, "\(active)")
        #expect(active.contains("rendering page"))
        // The dead job with its error (as text, never as markup) and a retry button.
        let deadEntry = try #require(Browser.element(dom, containing: "data-job=\"\(dead)\"", tag: "div"), "\(dom.prefix(5000))")
        let escaped = failure.replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        #expect(deadEntry.contains(escaped), "\(deadEntry)")
        #expect(deadEntry.contains("Retry"))
        // No errors: none the page recorded, none the browser reported
        // (console messages, uncaught exceptions, log entries such as CSP
        // violations, failed loads), and nothing loaded from elsewhere.
        #expect(!dom.contains("data-errors="), "\(dom.suffix(2000))")
        #expect(dom.contains("<pre id=\"errors\" hidden=\"\"></pre>"), "\(dom.suffix(2000))")
        #expect(page.console.isEmpty, "\(page.console)")
        #expect(page.exceptions.isEmpty, "\(page.exceptions)")
        #expect(page.log.isEmpty, "\(page.log)")
        #expect(page.failedLoads.isEmpty, "\(page.failedLoads)")
        let origin = "http://127.0.0.1:\(server.port)/"
        #expect(!page.requests.isEmpty && page.requests.allSatisfy { $0.hasPrefix(origin) || $0.hasPrefix("data:") }, "\(page.requests)")
        #expect(page.requests.contains { $0.hasPrefix(origin + "events?") }, "the page follows live events: \(page.requests)")
    }
}

/// Headless Chromium driven over the DevTools protocol (`--remote-debugging-pipe`)
/// by a small Python program (standard library only), because an open event
/// stream keeps `--dump-dom` and `--virtual-time-budget` from ever finishing.
enum Browser {
    struct Page {
        var conditionMet = false
        var dom = ""
        var console: [String] = []
        var exceptions: [String] = []
        var log: [String] = []
        var failedLoads: [String] = []
        var requests: [String] = []
        var error: String?
    }

    /// Opens `url`, waits (up to `timeout` s) until the JavaScript expression
    /// `until` is true, and returns the DOM with everything the browser reported.
    static func load(_ url: String, until condition: String, timeout: Double = 30) async throws -> Page {
        let chromium = try Tools.which("chromium")
        let script = NSTemporaryDirectory() + "spool-browse-\(UUID().uuidString).py"
        try driver.write(toFile: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: script) }
        let result = try await runTool("/usr/bin/nice", ["-n", "10", try Tools.which("python3"), script, chromium, url, condition, String(timeout)])
        guard let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            return Page(error: "the browser driver failed (\(result.status)): \(result.stdout) \(result.stderr.suffix(3000))")
        }
        func texts(_ key: String) -> [String] {
            (object[key] as? [Any] ?? []).map { item in
                if let s = item as? String { return s }
                let data = (try? JSONSerialization.data(withJSONObject: item)) ?? Data()
                return String(decoding: data, as: UTF8.self)
            }
        }
        return Page(
            conditionMet: object["ok"] as? Bool ?? false, dom: object["dom"] as? String ?? "", console: texts("console"),
            exceptions: texts("exceptions"), log: texts("log"), failedLoads: texts("failed"), requests: texts("requests"),
            error: object["error"] as? String)
    }

    /// The outer HTML of the first `tag` element whose start tag contains
    /// `attribute`, up to its matching end tag.
    static func element(_ dom: String, containing attribute: String, tag: String) -> String? {
        guard let at = dom.range(of: attribute), let start = dom[..<at.lowerBound].range(of: "<\(tag)", options: .backwards) else { return nil }
        var depth = 0
        var cursor = start.lowerBound
        while let next = dom[cursor...].firstRange(of: try! Regex("</?\(tag)[ >]")) {
            depth += dom[next].hasPrefix("</") ? -1 : 1
            cursor = next.upperBound
            if depth == 0 {
                guard let close = dom[next.lowerBound...].firstIndex(of: ">") else { return nil }
                return String(dom[start.lowerBound...close])
            }
        }
        return nil
    }

    /// argv: chromium URL CONDITION TIMEOUT. Prints one JSON object: ok (the
    /// condition held), dom, console, exceptions, log, failed, requests, error.
    static let driver = #"""
        import json, os, shutil, subprocess, sys, tempfile, threading, time

        chromium, url, condition, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        profile = tempfile.mkdtemp(prefix="spool-chromium-")

        def child_fds():
            # Chromium reads commands on fd 3 and writes replies on fd 4. The pipes
            # may already be 3 and 4 (close-on-exec): copy them out of the way first.
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3, inheritable=True)
            os.dup2(b, 4, inheritable=True)

        proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--user-data-dir=" + profile, "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=child_fds, close_fds=False)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        writer = os.fdopen(to_chrome_w, "wb", buffering=0)
        reader = os.fdopen(from_chrome_r, "rb", buffering=0)
        lock = threading.Condition()
        replies, events = {}, []

        def read_loop():
            buffer = b""
            while True:
                chunk = reader.read(65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    message = json.loads(raw)
                    with lock:
                        if "id" in message:
                            replies[message["id"]] = message
                        else:
                            events.append(message)
                        lock.notify_all()

        threading.Thread(target=read_loop, daemon=True).start()
        counter = [0]

        def send(method, params=None, session=None, wait=15):
            counter[0] += 1
            mid = counter[0]
            message = {"id": mid, "method": method, "params": params or {}}
            if session:
                message["sessionId"] = session
            writer.write(json.dumps(message).encode() + b"\0")
            deadline = time.time() + wait
            with lock:
                while mid not in replies:
                    if time.time() > deadline:
                        raise RuntimeError("no reply to " + method)
                    lock.wait(timeout=0.5)
                reply = replies.pop(mid)
            if "error" in reply:
                raise RuntimeError(method + ": " + json.dumps(reply["error"]))
            return reply.get("result", {})

        def evaluate(expression, session):
            return send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session).get("result", {}).get("value")

        result = {"ok": False}
        try:
            target = send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ["Runtime", "Log", "Network", "Page"]:
                send(domain + ".enable", session=session)
            send("Page.navigate", {"url": url}, session=session)
            deadline = time.time() + timeout
            while time.time() < deadline:
                if evaluate(condition, session) is True:
                    result["ok"] = True
                    break
                time.sleep(0.2)
            time.sleep(0.3)
            result["dom"] = evaluate("document.documentElement.outerHTML", session) or ""
            with lock:
                seen = list(events)
            def params(name):
                return [e["params"] for e in seen if e.get("method") == name]
            result["console"] = params("Runtime.consoleAPICalled")
            result["exceptions"] = params("Runtime.exceptionThrown")
            result["log"] = [p["entry"] for p in params("Log.entryAdded")]
            result["requests"] = [p["request"]["url"] for p in params("Network.requestWillBeSent")]
            # A stream the page closes itself is not a failed load.
            result["failed"] = [p for p in params("Network.loadingFailed") if not p.get("canceled")]
            try:
                send("Browser.close", wait=5)
            except Exception:
                pass
        except Exception as e:
            result["error"] = str(e)
        finally:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            shutil.rmtree(profile, ignore_errors=True)
        print(json.dumps(result))
        """#
}
