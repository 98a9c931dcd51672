import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A tiny HTTP/1.1 server on a loopback port that records every request and
/// answers with scripted statuses (then 200), for callback tests.
public final class HTTPReceiver: @unchecked Sendable {
    public struct Request: Sendable {
        public let method: String
        public let path: String
        /// Header names in lowercase.
        public let headers: [String: String]
        public let body: String
    }

    public let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var statuses: [Int]
    private var received: [Request] = []

    public init(statuses: [Int] = []) throws {
        self.statuses = statuses
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok, listen(fd, 16) == 0 else {
            close(fd)
            throw TestSupportError("cannot listen on a loopback port")
        }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread.detachNewThread { [self] in serve() }
    }

    deinit { close(listener) }

    public var url: String { "http://127.0.0.1:\(port)/hook" }
    public var requests: [Request] { lock.withLock { received } }

    private func serve() {
        while true {
            let conn = accept(listener, nil, nil)
            if conn < 0 { return }
            if let request = Self.read(conn) {
                let status = lock.withLock { () -> Int in
                    received.append(request)
                    return statuses.isEmpty ? 200 : statuses.removeFirst()
                }
                let body = status < 300 ? "ok" : "try again"
                let response = "HTTP/1.1 \(status) X\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                _ = response.withCString { write(conn, $0, strlen($0)) }
            }
            close(conn)
        }
    }

    private static func read(_ conn: Int32) -> Request? {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        var headerEnd: Int?
        var contentLength = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(conn, $0.baseAddress!, $0.count) }
            if n <= 0 { return nil }
            data += buffer[0..<n]
            if headerEnd == nil, let range = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                headerEnd = range.upperBound
                let head = String(decoding: data[..<range.lowerBound], as: UTF8.self)
                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    contentLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let end = headerEnd, data.count - end >= contentLength {
                let head = String(decoding: data[..<(end - 4)], as: UTF8.self).split(separator: "\r\n")
                let requestLine = head.first?.split(separator: " ") ?? []
                var headers: [String: String] = [:]
                for line in head.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                return Request(
                    method: requestLine.first.map(String.init) ?? "", path: requestLine.dropFirst().first.map(String.init) ?? "",
                    headers: headers, body: String(decoding: data[end..<(end + contentLength)], as: UTF8.self))
            }
        }
    }
}
