import Foundation
import Hiredis
import Spool
import SpoolTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// libcurl and the thirty-odd libraries it brings are not linked: a worker
/// loads them when it first sends a callback, so one that never does stays
/// without them (about 6 MB less resident memory).
@Suite("libcurl loaded on first use")
struct LazyCurlTests {
    /// Whether process `pid` has libcurl mapped. /proc/PID/maps is read to its
    /// end with read(2): it reports a size of 0, and is longer than one page.
    func mapsCurl(_ pid: pid_t) throws -> Bool {
        let fd = open("/proc/\(pid)/maps", O_RDONLY)
        guard fd >= 0 else { throw TestSupportError("cannot open /proc/\(pid)/maps") }
        defer { close(fd) }
        var text: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            text += buffer[0..<n]
        }
        return String(decoding: text, as: UTF8.self).contains("/libcurl.so")
    }

    @Test func aWorkerMapsLibcurlOnlyOnceItSendsACallback() async throws {
        let queue = uniqueQueue("lazy-curl")
        let receiver = try HTTPReceiver()
        let worker = try SpoolProcess(["worker", "--queue", queue, "--exec", "t=cat"], environment: try testEnvironment(redis: try SharedRedis.urlString))
        defer { worker.kill() }
        let client = SpoolClient(configuration: testConfiguration(url: try SharedRedis.url))

        let plain = try await client.enqueue(JobRequest(queue: queue, type: "t", payload: "{}"))
        #expect(await eventually(timeout: 20) { try await client.job(plain).state == .completed })
        #expect(try !mapsCurl(worker.pid), "a job without a callback needs no libcurl")

        var request = JobRequest(queue: queue, type: "t", payload: #"{"n":1}"#)
        request.callback = receiver.url
        let id = try await client.enqueue(request)
        #expect(await eventually(timeout: 20) { try await client.job(id).callbackStatus == "delivered" })
        #expect(try mapsCurl(worker.pid), "the delivery loaded it")
        #expect(receiver.requests.count == 1 && receiver.requests.first?.body.contains(id) == true)
        worker.signal(SIGTERM)
        _ = try await worker.waitForExit(timeout: 10)
    }
}
