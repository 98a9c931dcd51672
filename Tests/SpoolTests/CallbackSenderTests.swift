import Crypto
import Foundation
import Spool
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `CallbackSender` against a real HTTP server on a loopback socket.
@Suite("CallbackSender")
struct CallbackSenderTests {
    @Test func postsTheBodyWithJSONContentTypeAndAValidSignature() async throws {
        let server = try ScriptedHTTPServer(replies: [.answer(201, body: "created")])
        defer { server.stop() }
        let sender = CallbackSender(secret: "s3cr3t", timeout: 2, userAgent: "spool-test/1")
        let body = #"{"id":"job-1","state":"completed","note":"héllo ✓"}"#

        let status = try await sender.post(url: "http://127.0.0.1:\(server.port)/hooks/done?x=1", body: body)

        #expect(status == 201)
        let request = try #require(server.requests.first)
        #expect(server.requests.count == 1)
        #expect(request.method == "POST")
        #expect(request.target == "/hooks/done?x=1")
        #expect(request.body == Array(body.utf8))
        #expect(request.headers["content-type"] == "application/json")
        #expect(request.headers["user-agent"] == "spool-test/1")
        #expect(request.headers["expect"] == nil)
        let expected = HMAC<SHA256>.authenticationCode(for: Data(body.utf8), using: SymmetricKey(data: Data("s3cr3t".utf8)))
        let expectedHex = expected.map { String(format: "%02x", $0) }.joined()
        #expect(request.headers["x-spool-signature"] == "sha256=" + expectedHex)
        #expect(sender.signature(for: body) == "sha256=" + expectedHex)
    }

    @Test func signatureMatchesTheRFC4231Vector() {
        // RFC 4231, test case 2.
        let sender = CallbackSender(secret: "Jefe")
        #expect(
            sender.signature(for: "what do ya want for nothing?")
                == "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func withoutASecretNoSignatureIsSent() async throws {
        let server = try ScriptedHTTPServer(replies: [.answer(200)])
        defer { server.stop() }
        let sender = CallbackSender(userAgent: "spool\r\nX-Injected: 1")
        #expect(sender.signature(for: "{}") == nil)
        #expect(CallbackSender(secret: "").signature(for: "{}") == nil)

        let status = try await sender.post(url: "http://127.0.0.1:\(server.port)/", body: "")

        #expect(status == 200)
        let request = try #require(server.requests.first)
        #expect(request.headers["x-spool-signature"] == nil)
        #expect(request.headers["x-injected"] == nil)
        #expect(request.headers["user-agent"] == "spoolX-Injected: 1")
        #expect(request.headers["content-length"] == "0")
        #expect(request.body.isEmpty)
    }

    @Test func aServerErrorThrowsWithTheStatusAndABodyExcerpt() async throws {
        let answer = "boom: " + String(repeating: "x", count: 194) + String(repeating: "y", count: 100)
        let server = try ScriptedHTTPServer(replies: [.answer(500, body: answer)])
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/hook"

        let error = try #require(await postError(CallbackSender(secret: "top-secret", timeout: 2), url))

        #expect(error.message.hasPrefix("HTTP 500 from \(url): boom: xxx"))
        #expect(error.message.hasSuffix(String(answer.prefix(200))))
        #expect(!error.message.contains("y"))
        #expect(!error.message.contains("top-secret"))
        #expect(error.description == error.message)
        #expect(server.requests.count == 1)
    }

    @Test func aRefusedConnectionThrowsQuicklyWithCurlsMessage() async throws {
        // A bound socket that never listens: connecting to its port is refused, and nothing else can take it meanwhile.
        let (fd, port) = try bindLoopback()
        defer { close(fd) }
        let started = ContinuousClock.now

        let error = try #require(await postError(CallbackSender(secret: "top-secret", timeout: 10), "http://127.0.0.1:\(port)/"))

        // Well inside the 10 s timeout. The margin is wide because the whole
        // suite starts at once on two cores, which can stall any test ~3 s.
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(error.message.contains("Couldn't connect to server"))
        #expect(error.message.contains("http://127.0.0.1:\(port)/"))
        #expect(!error.message.contains("top-secret"))
    }

    @Test func nonHTTPURLsAreRejectedWithoutIO() async throws {
        let server = try ScriptedHTTPServer(replies: [.answer(200)])
        defer { server.stop() }
        let sender = CallbackSender(timeout: 2)
        let base = "127.0.0.1:\(server.port)/x"
        for url in ["ftp://\(base)", "file:///etc/passwd", "gopher://\(base)", "dict://\(base)", base, "", "http://", "http:///x"] {
            let error = try #require(await postError(sender, url), "\(url) was accepted")
            #expect(error.message.hasPrefix("callback URL"), "\(error)")
        }
        #expect(await postError(sender, "http://u:pw@\(base)")?.message == nil)
        let injected = try #require(await postError(sender, "http://\(base)\r\nX: 1"))
        #expect(injected.message.contains("control characters"))

        // Only the one valid request ever reached the server.
        #expect(server.connections == 1)
        #expect(server.requests.map(\.target) == ["/x"])
        #expect(await postError(sender, "ftp://u:pw@\(base)")?.message == "callback URL must start with http:// or https://: ftp://***@\(base)")
    }

    @Test func aSilentServerTimesOut() async throws {
        let server = try ScriptedHTTPServer(replies: [.silence])
        defer { server.stop() }
        let started = ContinuousClock.now

        let error = try #require(await postError(CallbackSender(timeout: 0.5), "http://127.0.0.1:\(server.port)/slow"))

        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(400))
        #expect(elapsed < .seconds(5), "bounded, not hung (a loaded start can stall any test ~3 s)")
        #expect(error.message.contains("Timeout was reached"), "\(error)")
    }

    @Test func aRedirectIsNotFollowed() async throws {
        let server = try ScriptedHTTPServer(replies: [.answer(302, body: "moved", headers: ["Location: /elsewhere"]), .answer(200)])
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/hook"

        let error = try #require(await postError(CallbackSender(timeout: 2), url))

        #expect(error.message == "HTTP 302 from \(url): moved")
        #expect(server.requests.map(\.target) == ["/hook"])
        #expect(server.connections == 1)
    }
}

/// The error `post` throws, or `nil` when it succeeds.
private func postError(_ sender: CallbackSender, _ url: String, body: String = "{}") async -> CallbackError? {
    do {
        _ = try await sender.post(url: url, body: body)
        return nil
    } catch {
        return error
    }
}

/// A TCP socket bound to an ephemeral port on 127.0.0.1 (not listening yet) and that port.
private func bindLoopback() throws -> (Int32, Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ServerError("socket() failed") }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else {
        close(fd)
        throw ServerError("cannot bind a loopback port")
    }
    return (fd, Int(UInt16(bigEndian: addr.sin_port)))
}

private struct ServerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that serves one connection at a time on its own thread, records each request
/// and answers with the next scripted reply (connections beyond the script are recorded and closed unanswered).
private final class ScriptedHTTPServer: @unchecked Sendable {
    enum Reply {
        /// Answer with this status, body and extra header lines, then close.
        case answer(Int, body: String = "", headers: [String] = [])
        /// Read the request and never answer; the connection stays open until `stop()`.
        case silence
    }

    struct Request {
        let method: String
        let target: String
        /// Lowercased header names.
        let headers: [String: String]
        let body: [UInt8]
    }

    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var recorded: [Request] = []
    private var accepted = 0
    private let finished = DispatchSemaphore(value: 0)

    var requests: [Request] { lock.withLock { recorded } }
    var connections: Int { lock.withLock { accepted } }

    init(replies: [Reply]) throws {
        (listener, port) = try bindLoopback()
        guard listen(listener, 8) == 0 else {
            close(listener)
            throw ServerError("listen() failed")
        }
        Thread.detachNewThread { self.serve(replies) }
    }

    /// Stops accepting, closes every connection and waits for the server thread to end.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        finished.wait()
    }

    private func serve(_ replies: [Reply]) {
        var script = replies[...]
        var held: [Int32] = []
        while true {
            let conn = accept(listener, nil, nil)
            if conn < 0 { break }
            lock.withLock { accepted += 1 }
            var limit = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            if let request = Self.readRequest(conn) { lock.withLock { recorded.append(request) } }
            switch script.popFirst() {
            case .answer(let status, let body, let headers):
                let head = (["HTTP/1.1 \(status) Scripted", "Content-Length: \(body.utf8.count)", "Connection: close"] + headers)
                    .joined(separator: "\r\n")
                let bytes = Array((head + "\r\n\r\n" + body).utf8)
                _ = bytes.withUnsafeBytes { write(conn, $0.baseAddress, $0.count) }
                close(conn)
            case .silence:
                held.append(conn)
            case nil:
                close(conn)
            }
        }
        held.forEach { close($0) }
        close(listener)
        finished.signal()
    }

    /// Reads the request line, headers and a `Content-Length` body; `nil` if the client goes away first.
    private static func readRequest(_ conn: Int32) -> Request? {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        func fill() -> Bool {
            let n = read(conn, &chunk, chunk.count)
            guard n > 0 else { return false }
            data.append(contentsOf: chunk[..<n])
            return true
        }
        let separator = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        while headEnd == nil {
            guard fill() else { return nil }
            headEnd = data.indices.dropLast(3).first { data[$0..<$0 + 4].elementsEqual(separator) }
        }
        let lines = String(decoding: data[..<headEnd!], as: UTF8.self).components(separatedBy: "\r\n")
        let requestLine = lines[0].split(separator: " ")
        guard requestLine.count == 3 else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        let bodyStart = headEnd! + 4
        while data.count < bodyStart + length {
            guard fill() else { return nil }
        }
        return Request(
            method: String(requestLine[0]), target: String(requestLine[1]), headers: headers,
            body: Array(data[bodyStart..<bodyStart + length]))
    }
}
