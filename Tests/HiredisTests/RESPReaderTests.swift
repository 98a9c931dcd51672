import Hiredis
import Testing

/// RESP bytes parsed in memory by hiredis's reader: no server needed.
@Suite("RESP reader")
struct RESPReaderTests {
    /// The one reply that `text` holds.
    private func parse(_ text: String) throws -> RedisValue? {
        let reader = RESPReader()
        try reader.feed(text)
        return try reader.next()
    }

    @Test func integersAndStatus() throws {
        #expect(try parse(":42\r\n") == .integer(42))
        #expect(try parse(":-7\r\n") == .integer(-7))
        #expect(try parse("+OK\r\n") == .status("OK"))
    }

    @Test func bulkStringsAreBinarySafe() throws {
        #expect(try parse("$5\r\nhello\r\n") == .string("hello"))
        #expect(try parse("$0\r\n\r\n") == .string(""))
        #expect(try parse("$4\r\na\r\nb\r\n") == .string("a\r\nb"))
    }

    @Test func nilBulkAndNilArray() throws {
        #expect(try parse("$-1\r\n") == .null)
        #expect(try parse("*-1\r\n") == .null)
    }

    @Test func arrays() throws {
        #expect(try parse("*3\r\n$2\r\nid\r\n:3\r\n$-1\r\n") == .array([.string("id"), .integer(3), .null]))
        #expect(try parse("*0\r\n") == .array([]))
    }

    @Test func nestedArrays() throws {
        let reply = try parse("*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n*1\r\n+deep\r\n")
        #expect(reply == .array([.array([.integer(1), .integer(2)]), .array([.array([.status("deep")])])]))
    }

    @Test func errorRepliesAreValuesNotThrown() throws {
        #expect(try parse("-NOSCRIPT No matching script\r\n") == .error("NOSCRIPT No matching script"))
        #expect(try parse("*2\r\n:1\r\n-ERR inner\r\n") == .array([.integer(1), .error("ERR inner")]))
    }

    @Test func partialFeedWaitsForTheRestOfTheReply() throws {
        let reader = RESPReader()
        try reader.feed("*2\r\n$5\r\nhel")
        #expect(try reader.next() == nil)
        try reader.feed("lo\r\n:")
        #expect(try reader.next() == nil)
        try reader.feed("9\r\n:10\r\n")
        #expect(try reader.next() == .array([.string("hello"), .integer(9)]))
        #expect(try reader.next() == .integer(10))
        #expect(try reader.next() == nil)
    }

    @Test func protocolErrorsThrow() throws {
        let reader = RESPReader()
        try reader.feed("?what\r\n")
        #expect {
            _ = try reader.next()
        } throws: { error in
            (error as? RedisError)?.kind == .protocol
        }
    }
}
