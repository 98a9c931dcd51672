import CCurl
import Foundation
import SpoolTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The libcurl module links and speaks HTTP over a real loopback socket
/// (callbacks are built on it later).
@Suite("CCurl")
struct CurlSmokeTests {
    final class Body: @unchecked Sendable { var bytes: [UInt8] = [] }

    @Test func getFromALocalServer() async throws {
        let port = try TestRedis.freePort()
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(bound == 0)
        listen(listener, 1)
        defer { close(listener) }
        let served = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let conn = accept(listener, nil, nil)
            var request = [UInt8](repeating: 0, count: 4096)
            _ = read(conn, &request, request.count)
            let response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}"
            _ = response.withCString { write(conn, $0, strlen($0)) }
            close(conn)
            served.signal()
        }

        let (code, text) = try await offPool { () -> (Int, String) in
            let handle = try #require(curl_easy_init())
            defer { curl_easy_cleanup(handle) }
            let body = Body()
            let box = Unmanaged.passRetained(body)
            defer { box.release() }
            #expect(spool_curl_setopt_string(handle, CURLOPT_URL, "http://127.0.0.1:\(port)/health") == CURLE_OK)
            _ = spool_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, 5000)
            _ = spool_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, box.toOpaque())
            _ = spool_curl_setopt_write(handle) { data, size, count, context in
                let body = Unmanaged<Body>.fromOpaque(context!).takeUnretainedValue()
                let n = size * count
                data!.withMemoryRebound(to: UInt8.self, capacity: n) { body.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
                return n
            }
            #expect(curl_easy_perform(handle) == CURLE_OK)
            var status = 0
            _ = spool_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
            return (status, String(decoding: body.bytes, as: UTF8.self))
        }
        #expect(code == 200)
        #expect(text == #"{"ok":true}"#)
        served.wait()
    }
}
