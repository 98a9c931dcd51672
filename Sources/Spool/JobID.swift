#if canImport(Glibc)
    import Glibc
#endif

/// Job ids name their queue: `<queue>.<suffix>`, where the suffix has no dot.
/// So any reader finds a job from its id alone, and ids are unique across queues.
///
/// Spool's suffix is 17 characters of base 32 (Crockford's digits, lowercase:
/// 0-9 and a-z without i, l, o, u): 9 for the milliseconds since the epoch
/// (45 bits, good until the year 3084) and 8 random (40 bits). The digits are
/// in ASCII order, so ids of one queue sort by creation time. Every waiting
/// job carries its id twice in Redis (its key and the waiting list), so its
/// length is memory: 17 characters instead of 22 hex digits save about 20
/// bytes per job.
public enum JobID {
    public static func make(queue: String, nowMillis: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return queue + "." + base32(UInt64(max(0, nowMillis)), digits: 9) + base32(g.next() & 0xFF_FFFF_FFFF, digits: 8)
    }

    /// Crockford's base-32 digits, lowercase, in ASCII order.
    private static let base32Digits = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)

    /// `value` in base 32, zero-padded to `digits` (the low digits if it is longer).
    static func base32(_ value: UInt64, digits: Int) -> String {
        String(unsafeUninitializedCapacity: digits) { buffer in
            var v = value
            for i in stride(from: digits - 1, through: 0, by: -1) {
                buffer[i] = base32Digits[Int(v & 31)]
                v >>= 5
            }
            return digits
        }
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

    /// A random token in hex (lease tokens, worker ids): 2 × `bytes` digits.
    public static func randomHex(bytes count: Int) -> String {
        var g = SystemRandomNumberGenerator()
        var text = ""
        var left = count
        while left > 0 {
            let n = min(8, left)
            text += hex(n == 8 ? g.next() : g.next() & ((1 << (8 * UInt64(n))) - 1), digits: 2 * n)
            left -= n
        }
        return text
    }

    /// `value` in lowercase hex, zero-padded to `digits` (the low digits if it is longer).
    static func hex(_ value: UInt64, digits: Int) -> String {
        String(unsafeUninitializedCapacity: digits) { buffer in
            var v = value
            for i in stride(from: digits - 1, through: 0, by: -1) {
                let nibble = UInt8(truncatingIfNeeded: v & 0xF)
                buffer[i] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble
                v >>= 4
            }
            return digits
        }
    }
}
