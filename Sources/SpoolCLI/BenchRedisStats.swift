import Foundation
import Hiredis

/// Redis's own counters, read before and after a measured stretch: socket
/// reads (INFO stats `total_reads_processed`: one per round trip, however
/// many commands it pipelines), calls per command (INFO commandstats, which
/// counts the commands scripts call too) and CPU seconds (INFO cpu, user +
/// system, all of the server's threads).
struct RedisStats: Sendable {
    let redis: RedisClient

    struct Snapshot: Sendable {
        var reads: Int
        var calls: [String: Int]
        var cpuSeconds: Double
    }

    /// Takes the snapshot that opens a stretch: CPU is read last, so the cost
    /// of this snapshot's own INFO calls stays outside the stretch.
    func begin() async throws -> Snapshot {
        try await snapshot(["commandstats", "stats", "cpu"])
    }

    /// Closes a stretch opened by `begin()`: CPU is read first, for the same
    /// reason. Our own commands in `own` are taken out, and so are every INFO
    /// call and the one read this snapshot itself costs.
    func end(since before: Snapshot, own: RedisTraffic = RedisTraffic()) async throws -> RedisDelta {
        let after = try await snapshot(["cpu", "stats", "commandstats"])
        var calls: [String: Int] = [:]
        for (command, n) in after.calls where command != "info" {
            let delta = n - (before.calls[command] ?? 0) - (own.calls[command] ?? 0)
            if delta > 0 { calls[command] = delta }
        }
        return RedisDelta(
            roundTrips: max(0, after.reads - before.reads - 1 - own.reads), calls: calls,
            cpuMicros: max(0, (after.cpuSeconds - before.cpuSeconds) * 1e6 - own.cpuMicros))
    }

    /// INFO memory `used_memory`: bytes the allocator holds for data and buffers.
    func usedMemory() async throws -> Int {
        guard let value = try await field("memory", "used_memory").flatMap({ Int($0) }) else {
            throw CLIError(.software, "INFO memory has no used_memory field")
        }
        return value
    }

    /// One field of INFO `section`, e.g. ("server", "redis_version").
    func field(_ section: String, _ name: String) async throws -> String? {
        Self.fields(try await redis.command(["INFO", section]).string ?? "")[name]
    }

    /// One pipelined round trip of INFO sections, in the order given.
    private func snapshot(_ sections: [String]) async throws -> Snapshot {
        let replies = try await redis.pipeline(sections.map { ["INFO", $0] })
        var snapshot = Snapshot(reads: 0, calls: [:], cpuSeconds: 0)
        for (section, reply) in zip(sections, replies) {
            let fields = Self.fields(reply.string ?? "")
            switch section {
            case "stats":
                snapshot.reads = fields["total_reads_processed"].flatMap { Int($0) } ?? 0
            case "cpu":
                snapshot.cpuSeconds = (Double(fields["used_cpu_sys"] ?? "") ?? 0) + (Double(fields["used_cpu_user"] ?? "") ?? 0)
            default:
                snapshot.calls = Self.commandCalls(fields)
            }
        }
        return snapshot
    }

    /// `cmdstat_NAME:calls=N,usec=…` lines as NAME -> N.
    private static func commandCalls(_ fields: [String: String]) -> [String: Int] {
        var calls: [String: Int] = [:]
        for (key, value) in fields where key.hasPrefix("cmdstat_") {
            guard let first = value.split(separator: ",").first, first.hasPrefix("calls="), let n = Int(first.dropFirst("calls=".count)) else {
                continue
            }
            calls[String(key.dropFirst("cmdstat_".count))] = n
        }
        return calls
    }

    /// The `key:value` lines of an INFO reply.
    private static func fields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":"), !line.hasPrefix("#") else { continue }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        }
        return fields
    }
}

/// Commands the bench itself sends during a measured stretch (polling a
/// counter, resuming a queue), so they can be taken out of Redis's counts.
struct RedisTraffic: Sendable {
    var reads = 0
    var calls: [String: Int] = [:]
    /// Redis CPU these commands cost, as estimated by `BenchContext.calibratePolling`.
    var cpuMicros = 0.0

    /// One round trip carrying `command` (lower case, as commandstats names it).
    mutating func record(_ command: String, cpuMicros: Double = 0) {
        reads += 1
        calls[command, default: 0] += 1
        self.cpuMicros += cpuMicros
    }
}

/// What Redis did during a stretch, the bench's own commands taken out.
struct RedisDelta: Sendable {
    var roundTrips: Int
    /// Command name -> calls, including those made from Lua.
    var calls: [String: Int]
    var cpuMicros: Double

    var commands: Int { calls.values.reduce(0, +) }
}
