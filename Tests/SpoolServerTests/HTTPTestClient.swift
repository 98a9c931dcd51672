import Foundation
import SpoolTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A response read off a real socket.
struct HTTPResult: Sendable {
    let status: Int
    /// Header names lowercased.
    let headers: [String: String]
    let body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object (empty when it is not one).
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }

    /// `error.code` of an API error body.
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
    var errorMessage: String? { (json["error"] as? [String: Any])?["message"] as? String }
}

/// A minimal HTTP/1.1 client over a blocking loopback socket: one request per
/// connection (`Connection: close`), chunked or sized bodies, and an event
/// stream reader. Blocking calls run on their own threads (`offPool`).
enum HTTPTestClient {
    static func request(
        port: Int, _ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8]? = nil, timeout: Double = 15
    ) async throws -> HTTPResult {
        try await offPool {
            let socket = try HTTPSocket(port: port, timeout: timeout)
            defer { socket.close() }
            var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
            for (name, value) in headers { head += "\(name): \(value)\r\n" }
            if let body { head += "Content-Length: \(body.count)\r\n" }
            head += "\r\n"
            // A server may answer (413) before it has read the whole body: a
            // failed write is fine as long as the answer can be read.
            let sent = socket.send(Array(head.utf8)) && socket.send(body ?? [])
            do {
                return try socket.readResponse(bodiless: method == "HEAD")
            } catch  where !sent {
                throw TestSupportError("\(method) \(path): the server closed the connection before answering")
            }
        }
    }

    static func get(port: Int, _ path: String, headers: [String: String] = [:]) async throws -> HTTPResult {
        try await request(port: port, "GET", path, headers: headers)
    }

    static func post(port: Int, _ path: String, json: String? = nil, token: String? = nil) async throws -> HTTPResult {
        var headers = ["Content-Type": "application/json"]
        if let token { headers["Authorization"] = "Bearer \(token)" }
        return try await request(port: port, "POST", path, headers: headers, body: json.map { Array($0.utf8) } ?? [])
    }
}

/// One Server-Sent Event.
struct SSEvent: Sendable, Equatable {
    var event = "message"
    var data = ""
    var id: String?

    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:] }
}

/// Reads an event stream incrementally, one event at a time, as it arrives.
final class EventStreamReader: @unchecked Sendable {
    let head: HTTPResult
    private let socket: HTTPSocket
    private var text = ""
    /// Comments (`: keep-alive`) seen so far.
    private(set) var comments = 0

    /// Connects and reads the response head; the body is read by `next()`.
    static func open(port: Int, _ path: String, timeout: Double = 15) async throws -> EventStreamReader {
        try await offPool {
            let socket = try HTTPSocket(port: port, timeout: timeout)
            let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
            guard socket.send(Array(request.utf8)) else { throw TestSupportError("cannot send the request") }
            let head = try socket.readHead()
            return EventStreamReader(head: head, socket: socket)
        }
    }

    private init(head: HTTPResult, socket: HTTPSocket) {
        self.head = head
        self.socket = socket
    }

    /// The next event; nil when the stream ended.
    func next() async throws -> SSEvent? {
        try await offPool { try self.nextBlocking() }
    }

    /// Every event until the stream ends (or `limit` events).
    func all(limit: Int = 10_000) async throws -> [SSEvent] {
        try await offPool {
            var events: [SSEvent] = []
            while events.count < limit, let event = try self.nextBlocking() { events.append(event) }
            return events
        }
    }

    func close() { socket.close() }

    /// Reads until a comment (`: keep-alive`) arrives; false if the stream ends first.
    func keepAlive() async throws -> Bool {
        try await offPool {
            let before = self.comments
            while self.comments == before {
                guard try self.nextBlocking(untilComment: true) != nil || self.comments > before else { return false }
            }
            return true
        }
    }

    private func nextBlocking(untilComment: Bool = false) throws -> SSEvent? {
        let before = comments
        while true {
            if untilComment && comments > before { return SSEvent(event: "comment") }
            if let range = text.range(of: "\n\n") {
                let block = String(text[..<range.lowerBound])
                text.removeSubrange(..<range.upperBound)
                if let event = parse(block) { return event }
                continue
            }
            guard let chunk = try socket.readChunk() else { return nil }
            text += String(decoding: chunk, as: UTF8.self)
        }
    }

    private func parse(_ block: String) -> SSEvent? {
        var event = SSEvent()
        var data: [String] = []
        var fields = 0
        for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(":") {
                comments += 1
                continue
            }
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            var value = parts.count > 1 ? String(parts[1]) : ""
            if value.hasPrefix(" ") { value.removeFirst() }
            switch name {
            case "event": event.event = value
            case "data": data.append(value)
            case "id": event.id = value
            default: continue  // retry:
            }
            fields += 1
        }
        guard !data.isEmpty else { return nil }
        event.data = data.joined(separator: "\n")
        return fields > 0 ? event : nil
    }
}

/// A blocking TCP connection to 127.0.0.1 with read and write timeouts.
final class HTTPSocket: @unchecked Sendable {
    private var fd: Int32
    private var buffer: [UInt8] = []
    private var chunked = false
    private var remaining: Int?  // bytes left of a sized body
    private var finished = false

    init(port: Int, timeout: Double) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw TestSupportError("cannot connect to 127.0.0.1:\(port): \(reason)")
        }
    }

    /// Writes everything; false when the peer closed or reset first.
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    func close() {
        if fd >= 0 {
            Glibc.shutdown(fd, Int32(SHUT_RDWR))
            Glibc.close(fd)
            fd = -1
        }
    }

    deinit { close() }

    /// Status line and headers; sets up body decoding.
    func readHead() throws -> HTTPResult {
        guard let statusLine = try readLine() else { throw TestSupportError("the server closed the connection without a response") }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw TestSupportError("bad status line: \(statusLine)")
        }
        var headers: [String: String] = [:]
        while let line = try readLine(), !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[name] = headers[name].map { $0 + ", " + value } ?? value
        }
        chunked = headers["transfer-encoding"]?.lowercased().contains("chunked") == true
        remaining = chunked ? nil : headers["content-length"].flatMap { Int($0) }
        return HTTPResult(status: status, headers: headers, body: [])
    }

    /// The response; for a HEAD request (`bodiless`), everything the server
    /// sent after the head until it closed, which should be nothing.
    func readResponse(bodiless: Bool = false) throws -> HTTPResult {
        let head = try readHead()
        var body: [UInt8] = []
        if bodiless {
            while try fill() > 0 {}
            body = buffer
            buffer = []
        } else {
            while let chunk = try readChunk() { body += chunk }
        }
        return HTTPResult(status: head.status, headers: head.headers, body: body)
    }

    /// The next piece of the body (decoded); nil at its end.
    func readChunk() throws -> [UInt8]? {
        if finished { return nil }
        if chunked {
            guard let sizeLine = try readLine() else { throw TestSupportError("the stream ended inside a chunked body") }
            guard let size = Int(sizeLine.split(separator: ";")[0].trimmingCharacters(in: .whitespaces), radix: 16) else {
                throw TestSupportError("bad chunk size line: \(sizeLine)")
            }
            if size == 0 {
                while let trailer = try readLine(), !trailer.isEmpty {}
                finished = true
                return nil
            }
            let data = try read(exactly: size)
            _ = try readLine()
            return data
        }
        if let left = remaining {
            if left == 0 {
                finished = true
                return nil
            }
            if buffer.isEmpty, try fill() == 0 { throw TestSupportError("the body ended \(left) bytes early") }
            let n = min(left, buffer.count)
            let data = Array(buffer.prefix(n))
            buffer.removeFirst(n)
            remaining = left - n
            return data
        }
        if buffer.isEmpty, try fill() == 0 {
            finished = true
            return nil
        }
        defer { buffer.removeAll() }
        return buffer
    }

    private func read(exactly count: Int) throws -> [UInt8] {
        while buffer.count < count {
            if try fill() == 0 { throw TestSupportError("the connection closed inside a chunk") }
        }
        let data = Array(buffer.prefix(count))
        buffer.removeFirst(count)
        return data
    }

    private func readLine() throws -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                var line = Array(buffer[..<newline])
                buffer.removeFirst(newline + 1)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            if try fill() == 0 {
                if buffer.isEmpty { return nil }
                defer { buffer.removeAll() }
                return String(decoding: buffer, as: UTF8.self)
            }
        }
    }

    /// Reads what is available; 0 at end of stream. Throws on timeout.
    private func fill() throws -> Int {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw TestSupportError("timed out reading from the server") }
            if n < 0 && errno == ECONNRESET { return 0 }
            if n < 0 { throw TestSupportError("recv failed: \(String(cString: strerror(errno)))") }
            buffer += chunk[0..<n]
            return n
        }
    }
}
