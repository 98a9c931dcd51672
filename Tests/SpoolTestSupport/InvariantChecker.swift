import Hiredis
import Spool

/// Checks invariant 4 of SPEC.md on one queue: outside a script, every job id
/// sits in exactly one of waiting / delayed / retry / active / a terminal set,
/// in the place its state says; every id has a record and every record an id.
/// The active place is the leases set; an id in the legacy active list (which
/// claims have not written since protocol version 3) without a lease is
/// reported as active without a lease.
public enum InvariantChecker {
    /// ``violations(queue:prefix:url:)`` on a thread of its own, for async tests:
    /// it makes blocking Redis calls that must not hold the cooperative pool.
    public static func check(queue: String, prefix: String = "spool", url: RedisURL) async throws -> [String] {
        try await offPool { try violations(queue: queue, prefix: prefix, url: url) }
    }

    public static func violations(queue: String, prefix: String = "spool", url: RedisURL) throws -> [String] {
        let conn = try RedisConnection(url: url)
        let k = QueueKeys(prefix: prefix, queue: queue)
        // One MULTI so the snapshot is consistent while workers run.
        var places: [(JobState, String, Bool)] = []
        for state in JobState.allCases {
            for place in k.places(of: state) { places.append((state, place.key, place.isList)) }
        }
        var commands: [[String]] = [["MULTI"]]
        for (_, key, isList) in places {
            commands.append(isList ? ["LRANGE", key, "0", "-1"] : ["ZRANGE", key, "0", "-1"])
        }
        commands.append(["LRANGE", k.active, "0", "-1"])
        commands.append(["EXEC"])
        let replies = try conn.pipeline(commands)
        guard let exec = replies.last?.array, exec.count == places.count + 1 else {
            return ["could not read a snapshot: \(replies.last ?? .null)"]
        }
        var problems: [String] = []
        var location: [String: JobState] = [:]
        for (i, (state, _, _)) in places.enumerated() {
            for id in (exec[i].array ?? []).compactMap(\.string) {
                if let other = location[id] {
                    problems.append("\(id) is in both \(other.rawValue) and \(state.rawValue)")
                }
                location[id] = state
            }
        }
        let leased = Set(location.filter { $0.value == .active }.keys)
        var legacy: Set<String> = []
        for id in (exec[places.count].array ?? []).compactMap(\.string) where !leased.contains(id) {
            if let other = location[id] { problems.append("\(id) is in both \(other.rawValue) and the legacy active list") }
            problems.append("\(id) is active without a lease")
            legacy.insert(id)
        }

        // Records: every stored job has a place and a matching state. Read after
        // the snapshot, so only report records that exist in both reads.
        var records: Set<String> = []
        var cursor = "0"
        repeat {
            let reply = try conn.command(["SCAN", cursor, "MATCH", k.prefix + "job:*", "COUNT", "1000"])
            guard let parts = reply.array, parts.count == 2 else { break }
            cursor = parts[0].string ?? "0"
            for key in (parts[1].array ?? []).compactMap(\.string) {
                records.insert(String(key.dropFirst((k.prefix + "job:").count)))
            }
        } while cursor != "0"
        let ids = Array(location.keys)
        let states = try conn.pipeline(ids.map { ["HGET", k.job($0), "state"] })
        for (id, reply) in zip(ids, states) {
            let state = location[id]!
            let stored = reply.string
            guard let stored else {
                problems.append("\(id) is in \(state.rawValue) but has no record")
                continue
            }
            // The state may have moved on since the snapshot; only a record that
            // still sits in the snapshot's place must agree with it.
            if stored != state.rawValue {
                let still = try placeNow(of: id, conn: conn, keys: k)
                if still == state { problems.append("\(id) is in \(state.rawValue) but its record says \(stored)") }
            }
        }
        for id in records where location[id] == nil && !legacy.contains(id) {
            if try placeNow(of: id, conn: conn, keys: k) == nil, try conn.command(["EXISTS", k.job(id)]).int == 1 {
                problems.append("record \(id) is in no list or set")
            }
        }
        return problems
    }

    private static func placeNow(of id: String, conn: RedisConnection, keys k: QueueKeys) throws -> JobState? {
        for state in JobState.allCases {
            for place in k.places(of: state) {
                if place.isList {
                    if try conn.command(["LPOS", place.key, id]) != .null { return state }
                } else if try conn.command(["ZSCORE", place.key, id]) != .null {
                    return state
                }
            }
        }
        return nil
    }
}
