import Foundation
import Hiredis
import SpoolTestSupport
import Testing

@Suite("Hiredis connection against a real redis-server")
struct RedisConnectionTests {
    @Test func commandsAndReplyTypes() throws {
        let conn = try RedisConnection(url: try SharedRedis.url)
        let key = "hiredis-test:\(uniqueQueue())"
        #expect(try conn.command(["PING"]) == .status("PONG"))
        #expect(try conn.command(["SET", key, "v"]) == .status("OK"))
        #expect(try conn.command(["GET", key]) == .string("v"))
        #expect(try conn.command(["GET", key + ":missing"]) == .null)
        #expect(try conn.command(["RPUSH", key + ":l", "a", "b"]) == .integer(2))
        #expect(try conn.command(["LRANGE", key + ":l", "0", "-1"]) == .array([.string("a"), .string("b")]))
        try conn.command(["DEL", key, key + ":l"])
    }

    @Test func argumentsAreBinarySafe() throws {
        let conn = try RedisConnection(url: try SharedRedis.url)
        let key = "hiredis-test:\(uniqueQueue())"
        let value = "a\0b \"quoted\" \n ünïcødé " + String(repeating: "x", count: 100_000)
        try conn.command(["SET", key, value])
        #expect(try conn.command(["STRLEN", key]) == .integer(value.utf8.count))
        #expect(try conn.command(["GET", key]) == .string(value))
        try conn.command(["DEL", key])
    }

    @Test func errorRepliesAreThrownWithTheServersMessage() throws {
        let conn = try RedisConnection(url: try SharedRedis.url)
        let key = "hiredis-test:\(uniqueQueue())"
        try conn.command(["SET", key, "text"])
        let error = #expect(throws: RedisError.self) { try conn.command(["LPUSH", key, "x"]) }
        #expect(error?.kind == .server)
        #expect(error?.message.hasPrefix("WRONGTYPE") == true)
        // The connection stays usable after an error reply.
        #expect(try conn.command(["PING"]) == .status("PONG"))
        try conn.command(["DEL", key])
    }

    @Test func pipelineKeepsOrderAndInlineErrors() throws {
        let conn = try RedisConnection(url: try SharedRedis.url)
        let key = "hiredis-test:\(uniqueQueue())"
        let replies = try conn.pipeline([["SET", key, "1"], ["INCR", key], ["LPUSH", key, "x"], ["GET", key]])
        #expect(replies.count == 4)
        #expect(replies[1] == .integer(2))
        if case .error(let m) = replies[2] { #expect(m.hasPrefix("WRONGTYPE")) } else { Issue.record("expected an error reply") }
        #expect(replies[3] == .string("2"))
        try conn.command(["DEL", key])
    }

    @Test func scriptShaMatchesRedisAndNoScriptReloads() throws {
        let conn = try RedisConnection(url: try SharedRedis.url)
        let script = RedisScript(name: "t", source: "return {KEYS[1], ARGV[1], \(Int.random(in: 0...1_000_000))}")
        let loaded = try conn.command(["SCRIPT", "LOAD", script.source])
        #expect(loaded.string == script.sha)
        // A script the server has never seen: EVALSHA answers NOSCRIPT, eval loads it and retries.
        let fresh = RedisScript(name: "fresh", source: "return 'fresh-\(UUID().uuidString)'")
        #expect(try conn.command(["SCRIPT", "EXISTS", fresh.sha]) == .array([.integer(0)]))
        let reply = try conn.eval(fresh, keys: [], args: [])
        #expect(reply.string?.hasPrefix("fresh-") == true)
        let batch = RedisScript(name: "batch", source: "return ARGV[1] .. '-\(UUID().uuidString)'")
        let replies = try conn.evalPipelined(batch, calls: [([], ["a"]), ([], ["b"])])
        #expect(replies.compactMap(\.string).map { String($0.prefix(2)) } == ["a-", "b-"])
    }

    @Test func refusedConnectionIsAConnectionError() throws {
        let port = TestRedis.closedPort
        let error = #expect(throws: RedisError.self) {
            try RedisConnection(url: RedisURL(address: .tcp(host: "127.0.0.1", port: port)), timeouts: RedisTimeouts(connect: 1, command: 1))
        }
        #expect(error?.isConnectionLost == true)
    }

    @Test func aclUserAndDatabaseSelection() throws {
        let admin = try RedisConnection(url: try SharedRedis.url)
        let user = "spool-test-\(UInt32.random(in: 0...UInt32.max))"
        try admin.command(["ACL", "SETUSER", user, "on", ">pw-\(user)", "~*", "&*", "+@all"])
        defer { _ = try? admin.command(["ACL", "DELUSER", user]) }
        var url = try SharedRedis.url
        url.user = user
        url.password = "pw-\(user)"
        url.database = 5
        let conn = try RedisConnection(url: url)
        #expect(try conn.command(["ACL", "WHOAMI"]).string == user)
        let key = "hiredis-test:\(uniqueQueue())"
        try conn.command(["SET", key, "in-db-5"])
        #expect(try admin.command(["EXISTS", key]) == .integer(0))
        try admin.command(["SELECT", "5"])
        #expect(try admin.command(["GET", key]) == .string("in-db-5"))
        try admin.command(["DEL", key])

        url.password = "wrong"
        let error = #expect(throws: RedisError.self) { try RedisConnection(url: url) }
        #expect(error?.kind == .connection)
        #expect(error?.description.contains("wrong") == false)
    }

    @Test func clientReconnectsAfterTheServerDropsIt() async throws {
        let client = RedisClient(url: try SharedRedis.url)
        let id = try await client.command(["CLIENT", "ID"]).int
        let admin = try RedisConnection(url: try SharedRedis.url)
        try admin.command(["CLIENT", "KILL", "ID", String(id ?? -1)])
        // The first call after the kill fails (connection lost); the next reconnects.
        do {
            try await client.command(["PING"])
        } catch let error as RedisError {
            #expect(error.isConnectionLost)
        }
        #expect(try await client.command(["PING"]) == .status("PONG"))
        #expect(try await client.command(["CLIENT", "ID"]).int != id)
    }
}

@Suite("Hiredis over a unix socket")
struct UnixSocketTests {
    @Test func connectsSelectsAndAnswers() async throws {
        let server = try await offPool { try TestRedis(appendOnly: false) }
        defer { server.stop() }
        let url = try RedisURL(parsing: "unix://\(server.socketPath)?db=2")
        let conn = try RedisConnection(url: url)
        #expect(try conn.command(["SET", "k", "over-unix"]) == .status("OK"))
        let tcp = try server.connect()
        try tcp.command(["SELECT", "2"])
        #expect(try tcp.command(["GET", "k"]) == .string("over-unix"))
    }
}
