import CHiredis

#if canImport(Glibc)
    import Glibc
#endif

/// How long connecting and each command may take.
public struct RedisTimeouts: Sendable, Equatable {
    /// Seconds to establish the TCP or unix connection.
    public var connect: Double
    /// Seconds a command may take to answer. Blocking commands must block for
    /// less than this (see ``RedisConnection/blockingCommandLimit``).
    public var command: Double

    public init(connect: Double = 2, command: Double = 10) {
        self.connect = connect
        self.command = command
    }
}

/// One hiredis connection, used from one thread at a time.
///
/// 1. `init` connects, authenticates (AUTH with an ACL user when one is given)
///    and selects the database.
/// 2. Commands go through `redisCommandArgv` / `redisAppendCommandArgv`, so
///    arguments are binary safe.
/// 3. Every reply is copied into a ``RedisValue`` and freed in the same call.
/// 4. Any I/O or protocol error marks the connection broken; the owner drops it
///    and connects again (``RedisClient`` does this).
///
/// Not `Sendable`: hiredis contexts are not thread-safe. ``RedisClient`` confines
/// one to a serial queue.
public final class RedisConnection {
    private var context: UnsafeMutablePointer<redisContext>?
    public let url: RedisURL
    public let timeouts: RedisTimeouts

    /// True once an I/O error has made the context unusable.
    public private(set) var isBroken = false

    /// The longest server-side block (seconds) a blocking command may ask for on
    /// this connection: one second under the socket timeout.
    public var blockingCommandLimit: Double { max(0.1, timeouts.command - 1) }

    public init(url: RedisURL, timeouts: RedisTimeouts = RedisTimeouts()) throws(RedisError) {
        self.url = url
        self.timeouts = timeouts
        let connectTV = Self.timeval(seconds: timeouts.connect)
        let ctx: UnsafeMutablePointer<redisContext>?
        switch url.address {
        case .tcp(let host, let port):
            ctx = redisConnectWithTimeout(host, Int32(port), connectTV)
        case .unix(let path):
            ctx = redisConnectUnixWithTimeout(path, connectTV)
        }
        guard let ctx else { throw RedisError(.connection, "cannot allocate a hiredis context") }
        if spool_redis_err(ctx) != 0 {
            let message = String(cString: spool_redis_errstr(ctx))
            redisFree(ctx)
            throw RedisError(.connection, "cannot connect to \(url): \(message)")
        }
        context = ctx
        _ = redisSetTimeout(ctx, Self.timeval(seconds: timeouts.command))
        if case .tcp = url.address { _ = redisEnableKeepAlive(ctx) }
        do {
            if let password = url.password {
                if let user = url.user {
                    _ = try command(["AUTH", user, password])
                } else {
                    _ = try command(["AUTH", password])
                }
            }
            if url.database != 0 {
                _ = try command(["SELECT", String(url.database)])
            }
        } catch {
            close()
            if error.kind == .server {
                // The server's text, never the password: AUTH errors do not echo it.
                throw RedisError(.connection, "cannot log in to \(url): \(error.message)")
            }
            throw error
        }
    }

    deinit { close() }

    /// Frees the hiredis context; the connection cannot be used afterwards.
    public func close() {
        if let context { redisFree(context) }
        context = nil
        isBroken = true
    }

    /// The socket descriptor, for poll(2) in subscribe mode; -1 when closed.
    public var fileDescriptor: Int32 {
        guard let context else { return -1 }
        return spool_redis_fd(context)
    }

    /// True when the server has closed the socket (or sent something unasked)
    /// while no command was outstanding: a restart or CLIENT KILL since the last
    /// use. Checked with a zero-timeout poll, so reuse after an outage does not
    /// fail the first command.
    public var peerClosed: Bool {
        guard let context, !isBroken else { return true }
        var p = pollfd(fd: spool_redis_fd(context), events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) != 0
    }

    /// Changes the socket read/write timeout (seconds).
    public func setCommandTimeout(_ seconds: Double) {
        guard let context else { return }
        _ = redisSetTimeout(context, Self.timeval(seconds: seconds))
    }

    /// Sends one command and returns its reply. An error reply is thrown.
    @discardableResult
    public func command(_ arguments: [String]) throws(RedisError) -> RedisValue {
        let ctx = try liveContext()
        let raw = Self.withArgv(arguments) { argc, argv, lens in
            redisCommandArgv(ctx, argc, argv, lens)
        }
        guard let raw else { throw fail(ctx) }
        return try Self.copyAndFree(raw).checked()
    }

    /// Sends every command in one write and reads all replies. Error replies
    /// come back as ``RedisValue/error(_:)`` in their place; an I/O error throws.
    public func pipeline(_ commands: [[String]]) throws(RedisError) -> [RedisValue] {
        try append(commands)
        return try readReplies(commands.count)
    }

    /// Queues commands in hiredis's output buffer without waiting for replies.
    public func append(_ commands: [[String]]) throws(RedisError) {
        let ctx = try liveContext()
        for arguments in commands {
            let status = Self.withArgv(arguments) { argc, argv, lens in
                redisAppendCommandArgv(ctx, argc, argv, lens)
            }
            if status != REDIS_OK { throw fail(ctx) }
        }
    }

    /// Reads `count` replies (flushing anything appended first).
    public func readReplies(_ count: Int) throws(RedisError) -> [RedisValue] {
        let ctx = try liveContext()
        var replies: [RedisValue] = []
        replies.reserveCapacity(count)
        for _ in 0..<count {
            replies.append(try readOne(ctx))
        }
        return replies
    }

    /// A reply already read into hiredis's buffer, without touching the socket;
    /// nil when none is complete yet.
    public func bufferedReply() throws(RedisError) -> RedisValue? {
        let ctx = try liveContext()
        var raw: UnsafeMutableRawPointer?
        if redisGetReplyFromReader(ctx, &raw) != REDIS_OK { throw fail(ctx) }
        guard let raw else { return nil }
        return Self.copyAndFree(raw)
    }

    /// Waits up to `timeout` seconds for the socket to be readable, then reads
    /// what is there into hiredis's buffer. Returns false on timeout.
    public func waitAndRead(timeout: Double) throws(RedisError) -> Bool {
        let ctx = try liveContext()
        var p = pollfd(fd: spool_redis_fd(ctx), events: Int16(POLLIN), revents: 0)
        let n = poll(&p, 1, Int32(max(0, timeout) * 1000))
        if n == 0 || (n < 0 && errno == EINTR) { return false }
        if n < 0 || redisBufferRead(ctx) != REDIS_OK { throw fail(ctx) }
        return true
    }

    /// Writes appended commands without reading replies (subscribe mode).
    public func flush() throws(RedisError) {
        let ctx = try liveContext()
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(ctx, &done) != REDIS_OK { throw fail(ctx) }
        }
    }

    /// Reads the next reply (subscribe mode pushes messages without a command).
    public func readReply() throws(RedisError) -> RedisValue {
        try readOne(try liveContext())
    }

    private func readOne(_ ctx: UnsafeMutablePointer<redisContext>) throws(RedisError) -> RedisValue {
        var raw: UnsafeMutableRawPointer?
        if redisGetReply(ctx, &raw) != REDIS_OK || raw == nil {
            throw fail(ctx)
        }
        return Self.copyAndFree(raw!)
    }

    private func liveContext() throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        guard let context, !isBroken else { throw RedisError(.connection, "connection to \(url) is closed") }
        return context
    }

    /// Marks the connection broken and describes why.
    private func fail(_ ctx: UnsafeMutablePointer<redisContext>) -> RedisError {
        isBroken = true
        let code = spool_redis_err(ctx)
        let message = String(cString: spool_redis_errstr(ctx))
        if code == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK || message.contains("temporarily unavailable")) {
            return RedisError(.timeout, "no reply from \(url) within \(timeouts.command)s")
        }
        if code == REDIS_ERR_PROTOCOL { return RedisError(.protocol, message) }
        let text = message.isEmpty ? "I/O error" : message
        return RedisError(.connection, "lost connection to \(url): \(text)")
    }

    private static func copyAndFree(_ raw: UnsafeMutableRawPointer) -> RedisValue {
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return copy(reply)
    }

    static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .string(text(r.str, r.len))
        case REDIS_REPLY_STATUS:
            return .status(text(r.str, r.len))
        case REDIS_REPLY_ERROR:
            return .error(text(r.str, r.len))
        case REDIS_REPLY_INTEGER:
            return .integer(Int(r.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ARRAY:
            var items: [RedisValue] = []
            items.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                if let element = r.element[i] { items.append(copy(element)) } else { items.append(.null) }
            }
            return .array(items)
        default:
            return .error("unknown reply type \(r.type)")
        }
    }

    private static func text(_ p: UnsafeMutablePointer<CChar>?, _ len: Int) -> String {
        guard let p, len > 0 else { return "" }
        return p.withMemoryRebound(to: UInt8.self, capacity: len) {
            String(decoding: UnsafeBufferPointer(start: $0, count: len), as: UTF8.self)
        }
    }

    /// Lays every argument end to end in one buffer and hands hiredis pointers
    /// and lengths into it, so embedded NULs and large payloads pass unchanged.
    private static func withArgv<R>(
        _ arguments: [String],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
    ) -> R {
        var lengths: [Int] = []
        lengths.reserveCapacity(arguments.count)
        var total = 1
        for a in arguments { total += a.utf8.count }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(total)
        for var a in arguments {
            a.withUTF8 { bytes.append(contentsOf: $0) }
            lengths.append(a.utf8.count)
        }
        bytes.append(0)
        return bytes.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!)
            var pointers: [UnsafePointer<CChar>?] = []
            pointers.reserveCapacity(arguments.count)
            var offset = 0
            for length in lengths {
                pointers.append((base + offset).assumingMemoryBound(to: CChar.self))
                offset += length
            }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { lens in
                    body(Int32(arguments.count), argv.baseAddress!, lens.baseAddress!)
                }
            }
        }
    }

    static func timeval(seconds: Double) -> timeval {
        let whole = max(0, seconds)
        let s = Int(whole)
        return Glibc.timeval(tv_sec: s, tv_usec: Int((whole - Double(s)) * 1_000_000))
    }
}
