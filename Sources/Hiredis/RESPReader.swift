import CHiredis

/// Parses RESP2 bytes into ``RedisValue``s with hiredis's own protocol reader,
/// the same parser and the same copy that ``RedisConnection`` uses on a socket,
/// but fed from memory.
///
/// 1. ``feed(_:)`` appends bytes to the reader's buffer; they may end anywhere,
///    even in the middle of a reply.
/// 2. ``next()`` returns the next complete reply, or nil until more bytes come.
///    An error reply is returned as ``RedisValue/error(_:)``, not thrown.
/// 3. Bytes that are not RESP throw ``RedisError`` with kind `.protocol`; the
///    reader is then unusable, like a connection after a protocol error.
///
/// For tests and micro-benchmarks of reply decoding: no server is needed.
/// Not `Sendable`: a hiredis reader is used from one thread at a time.
public final class RESPReader {
    private let reader: UnsafeMutablePointer<redisReader>

    public init() {
        // hiredis aborts the process itself when it cannot allocate.
        reader = redisReaderCreate()
    }

    deinit { redisReaderFree(reader) }

    /// Appends raw protocol bytes to the reader's buffer.
    public func feed(_ bytes: [UInt8]) throws(RedisError) {
        let status = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisReaderFeed(reader, $0.baseAddress, $0.count) }
        }
        if status != REDIS_OK { throw failure() }
    }

    /// Appends the UTF-8 bytes of `text` (RESP written out as a string literal).
    public func feed(_ text: String) throws(RedisError) {
        try feed(Array(text.utf8))
    }

    /// The next complete reply in the buffer; nil while it is incomplete.
    public func next() throws(RedisError) -> RedisValue? {
        var raw: UnsafeMutableRawPointer?
        if redisReaderGetReply(reader, &raw) != REDIS_OK { throw failure() }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return RedisConnection.copy(raw.assumingMemoryBound(to: redisReply.self))
    }

    private func failure() -> RedisError {
        // `char errstr[128]` arrives as a tuple; read it as the C string it holds.
        let message = withUnsafeBytes(of: reader.pointee.errstr) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        return RedisError(.protocol, message.isEmpty ? "invalid RESP" : message)
    }
}
