import Hiredis
import Testing

@Suite("Redis URLs")
struct RedisURLTests {
    @Test func parsesHostPortDatabaseAndCredentials() throws {
        let url = try RedisURL(parsing: "redis://app:s3cr%40t@10.1.2.3:6380/4")
        #expect(url.address == .tcp(host: "10.1.2.3", port: 6380))
        #expect(url.user == "app")
        #expect(url.password == "s3cr@t")
        #expect(url.database == 4)
    }

    @Test func defaultsAndPasswordOnlyForm() throws {
        let plain = try RedisURL(parsing: "redis://localhost")
        #expect(plain.address == .tcp(host: "localhost", port: 6379))
        #expect(plain.database == 0 && plain.user == nil && plain.password == nil)
        let old = try RedisURL(parsing: "redis://:pw@127.0.0.1:7000")
        #expect(old.user == nil && old.password == "pw")
        let v6 = try RedisURL(parsing: "redis://[::1]:6390/2")
        #expect(v6.address == .tcp(host: "::1", port: 6390) && v6.database == 2)
    }

    @Test func unixSockets() throws {
        let url = try RedisURL(parsing: "unix:///run/redis.sock?db=3")
        #expect(url.address == .unix(path: "/run/redis.sock"))
        #expect(url.database == 3)
    }

    @Test func descriptionNeverShowsThePassword() throws {
        let url = try RedisURL(parsing: "redis://app:hunter2@127.0.0.1:6379/1")
        #expect(!url.description.contains("hunter2"))
        #expect(url.description == "redis://app:***@127.0.0.1:6379/1")
    }

    @Test(arguments: ["http://x", "redis://h:0", "redis://h:99999", "redis://h/abc", "unix://relative.sock", "nonsense"])
    func rejectsBadURLs(_ text: String) {
        #expect(throws: RedisURLError.self) { try RedisURL(parsing: text) }
    }
}
