import Benchmark
import BenchmarkInputs
import Hiredis

// Reply decoding: RESP bytes -> hiredis redisReply -> RedisValue, through
// RESPReader, which runs the parser and copy that RedisConnection runs on a
// socket. Every reply Spool reads pays this: each claim a worker makes, each
// outcome it stores, each id an enqueue gets back. No Redis server is involved,
// so the numbers are the client's CPU and allocations alone.
//
// Each benchmark feeds the bytes of one reply (or one pipelined batch) and
// reads the value back; results are per reply (or batch), over 1,000 per sample.

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .spool

    // The smallest reply: what most acknowledgements return.
    // The floor every reply pays (reader bookkeeping, one redisReply, one free).
    decode("integer reply", [.integer(1)])

    // What claim.lua returns for each job a worker takes: the reply on the path
    // from "job waiting" to "handler running".
    decode("claim reply, 140 B payload", [Replies.claim(payload: Payloads.small)])

    // The same with a large payload: the cost that grows with payload size
    // (copying the bulk string and checking it is UTF-8).
    decode("claim reply, 16 KiB payload", [Replies.claim(payload: Payloads.large)])

    // One pipelined enqueue of 100 jobs reads 100 bulk-string job ids back.
    decode("100 pipelined enqueue replies", (0..<100).map { .string("emails.019a4f2c3b1de3a5b7\(1000 + $0)") })
}

/// Registers a benchmark that feeds `values`, written out as RESP in one
/// buffer, to one reader (as a connection reuses its reader) and decodes them.
func decode(_ name: String, _ values: [RedisValue]) {
    let bytes = values.flatMap(RESP.encode)
    Benchmark(name) { benchmark in
        let reader = RESPReader()
        // The reader must give back what was encoded, or the numbers mean nothing.
        try reader.feed(bytes)
        for expected in values {
            let decoded = try reader.next()
            precondition(decoded == expected, "\(name): decoded a different value")
        }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try reader.feed(bytes)
            while let value = try reader.next() { blackHole(value) }
        }
    }
}

/// Replies as Spool's scripts send them.
enum Replies {
    /// claim.lua's list of one job: {{id, type, payload, attempts, max_attempts,
    /// timeout_ms, lease_deadline, token}}.
    static func claim(payload: String) -> RedisValue {
        .array([
            .array([
                .string("emails.019a4f2c3b1de3a5b7c9d1"), .string("send_welcome"), .string(payload),
                .integer(1), .integer(25), .integer(30_000), .integer(1_763_800_000_000), .string("5f0c9a2e41b7d3c8a6e19f04"),
            ])
        ])
    }
}

/// A RESP2 writer for the benchmark's inputs (the reverse of what is measured).
enum RESP {
    static func encode(_ value: RedisValue) -> [UInt8] {
        switch value {
        case .null: return Array("$-1\r\n".utf8)
        case .status(let s): return Array("+\(s)\r\n".utf8)
        case .error(let e): return Array("-\(e)\r\n".utf8)
        case .integer(let i): return Array(":\(i)\r\n".utf8)
        case .string(let s): return Array("$\(s.utf8.count)\r\n\(s)\r\n".utf8)
        case .array(let items): return Array("*\(items.count)\r\n".utf8) + items.flatMap(encode)
        }
    }
}
