#if canImport(Glibc)
    import Glibc
#endif

/// Job ids name their queue: `<queue>.<suffix>`, where the suffix has no dot.
/// So any reader finds a job from its id alone, and ids are unique across queues.
///
/// Spool's suffix is 12 hex digits of milliseconds since the epoch and 10 random
/// hex digits, so ids sort by creation time.
public enum JobID {
    public static func make(queue: String, nowMillis: Int) -> String {
        var bytes = [UInt8](repeating: 0, count: 5)
        fillRandom(&bytes)
        let time = String(nowMillis, radix: 16)
        let padded = String(repeating: "0", count: max(0, 12 - time.count)) + time
        return queue + "." + padded
            + bytes.map { b in
                let s = String(b, radix: 16)
                return s.count == 1 ? "0" + s : s
            }.joined()
    }

    /// The queue part of an id, or nil when the id has no valid queue or suffix.
    public static func queue(of id: String) -> String? {
        guard let dot = id.lastIndex(of: ".") else { return nil }
        let queue = String(id[..<dot])
        let suffix = id[id.index(after: dot)...]
        guard Names.isValid(queue), (1...64).contains(suffix.utf8.count),
            suffix.utf8.allSatisfy({ c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                    || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
            })
        else { return nil }
        return queue
    }

    /// A random token in hex (lease tokens, worker ids).
    public static func randomHex(bytes count: Int) -> String {
        var bytes = [UInt8](repeating: 0, count: count)
        fillRandom(&bytes)
        return bytes.map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }

    private static func fillRandom(_ bytes: inout [UInt8]) {
        var g = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &g) }
    }
}
